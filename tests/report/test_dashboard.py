"""`budgetnas dashboard RUN` serves the run's study; its trials are read back through the HTTP API."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow  # starts a server process

from budgetnas.cli import main
from tests.conftest import ROOT

pytest.importorskip("optuna_dashboard")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_dashboard_shows_every_trial_with_what_was_built(tmp_path, tiny_budgets, capsys):
    assert main(["--budgets", str(tiny_budgets), "search", "--budget", "tiny", "--name", "d", "--reports-dir",
                 str(tmp_path), "--trials", "2", "--max-epochs", "1", "--no-retrain"]) == 0
    capsys.readouterr()
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "budgetnas", "dashboard", "d", "--reports-dir", str(tmp_path),
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline, studies = time.monotonic() + 60, None
        while studies is None and time.monotonic() < deadline:
            try:
                studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.5)
        assert studies is not None and [s["study_name"] for s in studies] == ["d"]
        trials = _get(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}?after=0")["trials"]
        assert len(trials) == 2
        for t in trials:
            attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
            assert {"architecture", "values", "params", "status", "reason"} <= set(attrs)
            assert attrs["status"] in ("complete", "pruned") and "|" in attrs["architecture"]
            assert int(attrs["params"]) <= 15000 and "blocks[0].channels" in attrs["values"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode is not None  # stopped


def test_dashboard_of_a_missing_run_is_one_line(capsys, tmp_path):
    assert main(["dashboard", "nope", "--reports-dir", str(tmp_path), "--port", str(_free_port())]) == 2
    assert "no such run" in capsys.readouterr().err
