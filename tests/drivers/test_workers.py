"""Several workers on one study; one is SIGKILLed mid-trial. Journal file storage and PostgreSQL.

The PostgreSQL variant needs a server: .ci/run starts a throw-away cluster on loopback and sets
BUDGETNAS_TEST_POSTGRES; outside CI it is skipped when that variable is unset.
"""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from budgetnas.storage import open_storage
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` leaves this module out


def storages(tmp_path):
    yield "journal", f"journal:{tmp_path / 'study.log'}"


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _kill_leftover_workers():
    # a test that fails midway must not leave its workers training (and holding database connections)
    # under the tests that follow
    yield
    while _STARTED:
        p = _STARTED.pop()
        if p.poll() is None:
            p.kill()
            p.communicate()


def cli(*args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "budgetnas", *map(str, args)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    _STARTED.append(p)
    return p


def wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def study_or_none(name, url):
    try:
        return optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        return None


def postgres_url():
    url = os.environ.get("BUDGETNAS_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            raise RuntimeError("CI must provide BUDGETNAS_TEST_POSTGRES (see .ci/run)")
        pytest.skip("BUDGETNAS_TEST_POSTGRES is not set")
    return url


@pytest.mark.parametrize("kind", ["journal", "postgres"])
def test_three_workers_one_killed(kind, tmp_path, tiny_budgets):
    name = f"w{kind}{os.getpid()}{int(time.time())}"
    url = f"journal:{tmp_path / 'study.log'}" if kind == "journal" else postgres_url()
    reports = tmp_path / "reports"
    trials = 8
    beat = ["--heartbeat", "1", "--grace", "8"]
    first = cli("--budgets", tiny_budgets, "search", "--budget", "tiny", "--name", name, "--reports-dir", reports,
                "--storage", url, "--trials", trials, "--max-epochs", 2, "--no-retrain", *beat)
    wait_for(lambda: study_or_none(name, url) is not None and study_or_none(name, url).user_attrs, 120,
             "the first worker to create the study")
    second = cli("worker", name, "--storage", url, "--reports-dir", tmp_path / "r2", *beat)
    victim = cli("worker", name, "--storage", url, "--reports-dir", tmp_path / "r3", *beat)

    def victims_running_trial():
        study = study_or_none(name, url)
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            # a heartbeat means its values are chosen and it is training
            if t.user_attrs.get("worker", "").endswith(f":{victim.pid}") and "heartbeat" in t.user_attrs:
                return t.number
        return None

    killed = wait_for(victims_running_trial, 180, "the victim to start a trial")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    outs = []
    for p in (first, second):
        out, _ = p.communicate(timeout=400)
        outs.append(out)
        assert p.returncode == 0, out

    study = study_or_none(name, url)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert len(by_number) == len(study.get_trials(deepcopy=False))  # no number twice
    assert all(t.state.name in ("COMPLETE", "PRUNED", "FAIL") for t in by_number.values())
    dead = by_number[killed]
    assert dead.state.name == "FAIL" and dead.user_attrs["status"] == "failed"
    assert "stopped sending heartbeats" in dead.user_attrs["reason"]
    retries = [t for t in by_number.values() if t.user_attrs.get("retry_of") == killed]
    # a retry of a network another worker has finished meanwhile is a duplicate: scored, not trained
    assert len(retries) == 1 and retries[0].user_attrs["status"] in ("complete", "pruned", "rejected", "duplicate")
    assert retries[0].params == dead.params
    originals = [t for t in by_number.values() if "retry_of" not in t.user_attrs]
    assert len(originals) >= trials
    # each worker's sampler has a seed of its own: with the run's seed, every worker's first proposal
    # (and the next ones) was the same network
    firsts = {}
    for t in sorted(originals, key=lambda t: t.number):
        firsts.setdefault(t.user_attrs["worker"], json.dumps(t.params, sort_keys=True))
    assert len(firsts) >= 2 and len(set(firsts.values())) == len(firsts)

    lb = subprocess.run([sys.executable, "-m", "budgetnas", "leaderboard", name, "--reports-dir", reports,
                         "--storage", url, "--json"], cwd=ROOT, capture_output=True, text=True)
    assert lb.returncode == 0, lb.stderr
    board = json.loads(lb.stdout)
    assert {t["number"] for t in board["trials"]} == set(by_number)
    finished = [t for t in board["trials"] if t["status"] in ("complete", "pruned", "duplicate")]
    workers = {t["worker"].split(":")[-1] for t in finished}
    assert {str(first.pid), str(second.pid)} <= workers | {str(victim.pid)}
    assert len(workers) >= 2


def test_polling_a_postgres_storage_keeps_one_connection_pool():
    # a caller that polls a run (these tests, a notebook refreshing a leaderboard) opens the storage again and
    # again: each RDB storage is a connection pool, so a fresh one per call ran the server out of connections
    import sqlalchemy

    name = f"poll{os.getpid()}{int(time.time())}"
    # connections are counted by the client's name, so workers of other tests on the same server do not count
    url = f"{postgres_url()}?application_name={name}"
    optuna.create_study(study_name=name, storage=open_storage(url))
    assert open_storage(url) is open_storage(url)
    for _ in range(40):
        study_or_none(name, url).get_trials(deepcopy=False)
    probe = sqlalchemy.create_engine(postgres_url(), poolclass=sqlalchemy.pool.NullPool)
    with probe.connect() as conn:
        count = conn.execute(sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                             {"name": name})
        connections = count.scalar_one()
    assert 1 <= connections <= 2  # the one pool's connection (the pool may keep a second one idle)


def test_workers_opening_an_empty_postgres_database_together_all_get_it():
    # the first workers of a run open a database that has no tables yet, at the same moment: each creates
    # Optuna's tables, and all but one failed ("relation studies already exists") before open_storage retried
    import sqlalchemy

    base = postgres_url()
    db = f"race{os.getpid()}{int(time.time())}"
    admin = sqlalchemy.create_engine(base, poolclass=sqlalchemy.pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {db}"))
    url = f"{base.rsplit('/', 1)[0]}/{db}"
    code = "import sys; from budgetnas.storage import open_storage; open_storage(sys.argv[1]); print('opened')"
    try:
        procs = [subprocess.Popen([sys.executable, "-c", code, url], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(6)]
        _STARTED.extend(procs)
        outs = [p.communicate(timeout=120)[0] for p in procs]
        assert all(p.returncode == 0 and "opened" in out for p, out in zip(procs, outs)), outs
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {db}"))
