"""Faults a long search must survive: real signals mid-trial, kill -9 mid-write, files cut afterwards.

Each test drives the real command line in a subprocess (signals) or in-process (damaged files) on the tiny
real dataset, and checks what a user relies on: the planned number of trials is trained in the end,
the printed resume command works as printed, and a damaged file is one line naming it, exit code 2.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from budgetnas.cli import main
from budgetnas.errors import ConfigError
from budgetnas.storage import open_storage
from tests.conftest import ROOT, copy_run

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` leaves this module out


def _default_sigint() -> None:
    # A background job of a non-interactive shell (CI may start one) inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*argv, cwd=ROOT) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "budgetnas", *map(str, argv)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_default_sigint)


def study_of(run: Path):
    from budgetnas.run.folder import load_meta

    meta = load_meta(run)  # run.json names the run's own study relative to its folder
    return optuna.load_study(study_name=meta.study, storage=open_storage(meta.storage))


def wait_training(run: Path, proc: subprocess.Popen, after: int = -1, timeout: float = 180) -> int:
    """The number of a trial (> ``after``) that is past its first epoch, once one is."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()[0]
        if (run / "run.json").exists():
            try:
                for t in study_of(run).get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                    if t.number > after and t.intermediate_values:
                        return t.number
            except (KeyError, ConfigError, optuna.exceptions.StorageInternalError):
                pass  # the study (or its database schema) is still being created
        time.sleep(0.3)
    raise AssertionError("no trial started training in time")


def resume_command(out: str) -> list[str]:
    line = next(line for line in out.splitlines() if "continue with `" in line)
    command = shlex.split(line.split("continue with `", 1)[1].rstrip("`"))
    assert command[0] == "budgetnas"
    return command[1:]


def test_ctrl_c_twice_and_resumed_twice_trains_the_planned_trials(tmp_path, tiny_budgets):
    """Ctrl-C in a trial, resume, Ctrl-C in a trial, resume: four trials planned, four trained, none lost, and
    the same report as an uninterrupted run. (SIGTERM: the retrain test below.)"""
    reports = tmp_path / "elsewhere"  # not ./reports: the printed command must carry the folder
    run = reports / "faulty"
    first = start("--budgets", tiny_budgets, "search", "--budget", "tiny-long", "--name", "faulty", "--reports-dir",
                  reports, "--trials", 4, "--no-retrain", "--seed", 3)
    stopped = [wait_training(run, first, after=0)]  # trial 1 or later: trial 0 finished before it
    first.send_signal(signal.SIGINT)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 130, out
    assert "Traceback" not in out and "interrupted (Ctrl-C): finished trials are saved" in out
    again = resume_command(out)
    assert again == ["search", "--budget", "tiny-long", "--name", "faulty", "--resume", "--reports-dir", str(reports)]

    # the command exactly as printed, from another folder (it names the reports folder itself)
    second = start(*again, cwd=tmp_path)
    stopped.append(wait_training(run, second, after=stopped[0]))
    second.send_signal(signal.SIGINT)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 130, out
    assert "Traceback" not in out and "interrupted (Ctrl-C)" in out
    assert f"trial(s) {stopped[0]}, stopped before they finished, train again" in out
    assert resume_command(out) == again

    third = start(*again, cwd=tmp_path)
    out, _ = third.communicate(timeout=300)
    assert third.returncode == 0, out

    trials = study_of(run).get_trials(deepcopy=False)
    interrupted = [t for t in trials if t.user_attrs.get("status") == "interrupted"]
    assert [t.number for t in interrupted] == stopped
    assert all(t.state == optuna.trial.TrialState.FAIL for t in interrupted)
    counted = [t for t in trials if t.user_attrs.get("status") != "interrupted"]
    assert len(counted) == 4  # exactly the planned trials, each finished
    assert all(t.user_attrs["status"] in ("complete", "pruned", "rejected", "duplicate") for t in counted)
    for t in interrupted:  # each trained again: same values, its own seed
        [repl] = [r for r in trials if r.user_attrs.get("resumes") == t.number]
        assert repl.params == t.params and repl.user_attrs["seed_of"] == t.user_attrs.get("seed_of", t.number)
    # the resumed sampler did not replay the first process's proposals as duplicates
    assert not [t for t in counted if t.user_attrs["status"] == "duplicate" and "resumes" not in t.user_attrs]
    assert "2 interrupted (trained again on resume)" in out
    # the printed command carries no --no-retrain: the last resume retrained the finalist and reported,
    # as an uninterrupted run does
    report = (run / "report.md").read_text()
    assert "## Finalists" in report and (run / "finalists.json").exists() and (run / "report.html").exists()


def test_kill_9_mid_trial_then_resume(tmp_path, tiny_budgets):
    """A process killed outright leaves its trial RUNNING; --resume trains it again (no handler ran)."""
    reports = tmp_path / "reports"
    run = reports / "killed"
    for _ in range(3):  # a tiny trial's epochs are short: the kill may land after the trial seen training ended,
        proc = start("--budgets", tiny_budgets, "search", "--budget", "tiny-long", "--name", "killed",
                     "--reports-dir", reports, "--trials", 2, "--no-retrain")
        wait_training(run, proc)
        proc.kill()
        proc.wait()
        # so the victim is the trial the kill left RUNNING; none (it fell between two trials): a fresh run
        running = study_of(run).get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if running:
            break
        shutil.rmtree(run)
    [victim] = [t.number for t in running]
    code = main(["search", "--budget", "tiny-long", "--name", "killed", "--reports-dir", str(reports), "--resume",
                 "--no-retrain"])  # the trials are the point here; resume's retrain: the Ctrl-C test above
    assert code == 0
    trials = study_of(run).get_trials(deepcopy=False)
    dead = trials[victim]
    assert dead.state == optuna.trial.TrialState.FAIL and dead.user_attrs["status"] == "interrupted"
    assert "its process ended while it trained" in dead.user_attrs["reason"]
    counted = [t for t in trials if t.user_attrs.get("status") != "interrupted"]
    assert len(counted) == 2 and all(t.state != optuna.trial.TrialState.RUNNING for t in trials)


def test_second_ctrl_c_while_the_first_is_recorded_leaves_the_study_whole(tmp_path, tiny_budgets):
    reports = tmp_path / "reports"
    run = reports / "twice"
    proc = start("--budgets", tiny_budgets, "search", "--budget", "tiny-long", "--name", "twice", "--reports-dir",
                 reports, "--trials", 2, "--no-retrain")
    wait_training(run, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    trials = study_of(run).get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    code = main(["search", "--budget", "tiny-long", "--name", "twice", "--reports-dir", str(reports), "--resume",
                 "--no-retrain"])
    assert code == 0
    trials = study_of(run).get_trials(deepcopy=False)
    assert len([t for t in trials if t.user_attrs.get("status") != "interrupted"]) == 2


def _children(pid: int) -> list[int]:
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"\nPPid:\t{pid}\n" in status.read_text():
                out.append(int(status.parent.name))
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def test_sigterm_during_the_finalists_retrain_stops_the_seeds_and_resumes(tmp_path, tiny_budgets):
    """SIGTERM while two seed processes train: both stop, and `search --resume` finishes the retrain."""
    reports = tmp_path / "reports"
    run = reports / "seeds"
    proc = start("--budgets", tiny_budgets, "search", "--budget", "tiny-long", "--name", "seeds", "--reports-dir",
                 reports, "--trials", 1, "--jobs", 2)
    end = time.monotonic() + 240
    while not list((run / "finalists").glob("*_seed*.resume/history.json")):  # a seed finished an epoch
        assert time.monotonic() < end and proc.poll() is None, proc.communicate()[0]
        time.sleep(0.2)
    seeds = _children(proc.pid)
    assert seeds
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    assert "Traceback" not in out and "stopped by SIGTERM: the search and every finished seed are saved" in out
    time.sleep(1)
    assert not [p for p in seeds if _alive(p)], "seed processes outlived the search"
    again = resume_command(out)
    assert again == ["search", "--budget", "tiny-long", "--name", "seeds", "--resume", "--reports-dir", str(reports)]
    assert main(again) == 0
    [fin] = json.loads((run / "finalists.json").read_text())["finalists"]
    assert [s["seed"] for s in fin["seeds"]] == [0, 1] and (run / "report.md").exists()


# ------------------------------------------------------------------ files cut mid-write
_WRITER = """
import sys
from budgetnas import files
i = 0
while True:
    i += 1
    files.write_text(sys.argv[1], '{"n": %d, "pad": "%s"}' % (i, "x" * 200000))
"""


def test_kill_9_mid_write_leaves_a_whole_file(tmp_path):
    """kill -9 at arbitrary moments of a writer that rewrites a 200 kB JSON file: it always parses."""
    target = tmp_path / "finalists.json"
    for delay in (0.05, 0.11, 0.17, 0.23, 0.31):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], cwd=ROOT)
        time.sleep(0.5 + delay)
        proc.kill()
        proc.wait()
        data = json.loads(target.read_text())
        assert data["n"] >= 1 and len(data["pad"]) == 200000
    # a kill between the write and the rename leaves only a hidden temporary beside it, never a cut target
    assert all(p.name.startswith(".tmp") for p in tmp_path.iterdir() if p.name != "finalists.json")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_budgets):
    """A finished tiny run (2 trials, 1 finalist seed); each test damages a copy of it."""
    reports = tmp_path_factory.mktemp("faults") / "reports"
    assert main(["--budgets", str(tiny_budgets), "search", "--budget", "tiny", "--name", "done", "--reports-dir",
                 str(reports), "--trials", "2", "--max-epochs", "1", "--no-retrain"]) == 0
    assert main(["retrain", "done", "--reports-dir", str(reports), "--seeds", "1", "--epochs", "1", "--jobs", "1"]) == 0
    return reports / "done"


def _copy(run: Path, tmp_path: Path) -> Path:
    return copy_run(run, tmp_path / "reports")


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


COMMANDS = {
    "report": ["report", "done"],
    "leaderboard": ["leaderboard", "done"],
    "retrain --resume": ["retrain", "done", "--seeds", "1", "--epochs", "1", "--jobs", "1", "--resume"],
    "export": ["export", "done", "--format", "keras"],
    "search --resume": ["search", "--budget", "tiny", "--name", "done", "--resume", "--no-retrain"],
}
DAMAGE = [  # (file, how, commands that read it)
    ("run.json", _cut, list(COMMANDS)),
    ("budget.json", _cut, ["report", "retrain --resume", "export", "search --resume"]),
    ("budget.json", lambda p: p.write_text('{"table": {}}'), ["report", "retrain --resume", "export"]),
    ("finalists.json", _cut, ["report", "retrain --resume", "export"]),
    ("finalists.json", lambda p: p.write_text('{"protocol": {}}'), ["report", "export"]),
    ("space.toml", _cut, ["report", "retrain --resume", "export", "search --resume"]),
    ("study.db", _cut, ["report", "leaderboard", "retrain --resume", "search --resume"]),
]


@pytest.mark.parametrize("name, damage, commands", DAMAGE,
                         ids=[f"{d[0]}-{'cut' if d[1] is _cut else 'keys'}" for d in DAMAGE])
def test_a_damaged_file_is_one_line_naming_it(name, damage, commands, finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    damage(run / name)
    for command in commands:
        code = main([*COMMANDS[command], "--reports-dir", str(run.parent)])
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code == 2, (command, out, err)
        assert len(lines) == 1 and lines[0].startswith("budgetnas: error: ") and name in lines[0], (command, err)


def test_a_damaged_epoch_checkpoint_is_one_line_naming_its_folder(finished_run, tmp_path, capsys):
    """A seed stopped mid-retrain whose checkpoint was cut afterwards: report and --resume name it."""
    run = _copy(finished_run, tmp_path)
    folder = run / "finalists" / "trial_0_seed1.resume"
    folder.mkdir()
    (folder / "history.json").write_text('{"loss": [0.5], "val')
    code = main(["report", "done", "--reports-dir", str(run.parent)])
    err = capsys.readouterr().err
    assert code == 2 and "history.json" in err and len(err.strip().splitlines()) == 1


def test_an_interrupted_write_keeps_the_old_file(tmp_path):
    from budgetnas import files

    target = files.write_text(tmp_path / "finalists.json", '{"old": true}')
    with pytest.raises(RuntimeError):
        with files.replacing(target) as tmp:
            tmp.write_text('{"new": tr')  # the process dies here
            raise RuntimeError
    assert json.loads(target.read_text()) == {"old": True} and list(tmp_path.iterdir()) == [target]


# ------------------------------------------------------------------ a storage that goes away
def _postgres():
    url, stop, start_ = (os.environ.get(f"BUDGETNAS_TEST_POSTGRES{k}") for k in ("", "_STOP", "_START"))
    if not (url and stop and start_):
        if os.environ.get("CI"):
            raise RuntimeError("CI must provide BUDGETNAS_TEST_POSTGRES, _STOP and _START (see .ci/postgres.sh)")
        pytest.skip("BUDGETNAS_TEST_POSTGRES(_STOP, _START) not set")
    return url, stop, start_


def _published(run: Path) -> bool:
    try:
        return bool(study_of(run).user_attrs)
    except (KeyError, ConfigError, optuna.exceptions.StorageInternalError):
        return False


@pytest.fixture
def away(request, tmp_path):
    """(storage URL, command that takes it away, command that brings it back) for each kind of storage."""
    if request.param == "postgres":
        yield _postgres()
        return
    if os.geteuid() != 0:
        pytest.skip("remounting a tmpfs read-only needs root (CI runs as root)")
    disk = tmp_path / "journal-disk"  # a read-only file system: file permissions do not stop root
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(disk)], check=True)
    try:
        yield (f"journal:{disk / 'study.log'}", f"mount -o remount,ro {disk}", f"mount -o remount,rw {disk}")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("away", ["postgres", "journal-readonly"], indirect=True)
def test_storage_away_and_back_mid_search(away, tmp_path, tiny_budgets):
    """The storage goes away for longer than the heartbeat grace while a search and a worker train: the
    PostgreSQL server stopped, or the journal file's file system made read-only.

    Both wait for it, stop the trials whose heartbeats went unwritten (so neither trains the other's trial
    twice), retry those, and end with exactly the planned trials; nothing finished is lost or told twice.
    """
    url, stop, start_ = away
    name = f"away{os.getpid()}{int(time.time())}"
    beat = ["--heartbeat", "1", "--grace", "6", "--patience", "90"]
    first = start("--budgets", tiny_budgets, "search", "--budget", "tiny-long", "--name", name, "--reports-dir",
                  tmp_path / "r1", "--storage", url, "--trials", 6, "--no-retrain", *beat)
    run = tmp_path / "r1" / name
    end = time.monotonic() + 120
    while not (run / "run.json").exists() or not _published(run):  # the worker joins from the study
        assert time.monotonic() < end and first.poll() is None
        time.sleep(0.3)
    second = start("worker", name, "--storage", url, "--reports-dir", tmp_path / "r2", *beat)

    def both_training():
        workers = {t.user_attrs.get("worker", "").split(":")[-1] for t in study_of(run).get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)) if t.intermediate_values}
        return {str(first.pid), str(second.pid)} <= workers

    end = time.monotonic() + 180
    while not both_training():
        assert time.monotonic() < end and second.poll() is None and first.poll() is None
        time.sleep(0.3)
    subprocess.run(stop, shell=True, check=True, capture_output=True)
    time.sleep(12)  # longer than the grace: both trials' heartbeats go unwritten
    subprocess.run(start_, shell=True, check=True, capture_output=True)
    outs = [p.communicate(timeout=400)[0] for p in (first, second)]
    for p, out in zip((first, second), outs):
        assert p.returncode == 0, out
        assert "Traceback" not in out and "storage unreachable" in out and "storage reachable again" in out

    trials = study_of(run).get_trials(deepcopy=False)
    assert all(t.state.name in ("COMPLETE", "PRUNED", "FAIL") for t in trials)
    counted = [t for t in trials if "retry_of" not in t.user_attrs]
    assert len(counted) == 6
    stopped = [t for t in trials if "stopped so that no other worker trains it twice" in t.user_attrs.get("reason", "")]
    assert stopped, "no trial was stopped for want of heartbeats"
    for t in trials:
        if t.state.name == "FAIL" and t.user_attrs.get("retry_of") is None:  # retried until one finished, once
            retries = [r for r in trials if r.user_attrs.get("retry_of") == t.number]
            assert [r.state.name in ("COMPLETE", "PRUNED") for r in retries].count(True) == 1
            assert all(r.params == t.params for r in retries)
        if "retry_of" in t.user_attrs:  # a retry only of a trial that did not finish itself
            assert trials[t.user_attrs["retry_of"]].state.name == "FAIL"


def test_postgres_gone_for_good_is_one_line_and_a_resume_command(tmp_path, tiny_budgets):
    url, stop, start_ = _postgres()
    name = f"gone{os.getpid()}{int(time.time())}"
    proc = start("--budgets", tiny_budgets, "search", "--budget", "tiny-long", "--name", name, "--reports-dir",
                 tmp_path, "--storage", url, "--trials", 3, "--no-retrain", "--heartbeat", "1", "--grace", "6",
                 "--patience", "4")
    wait_training(tmp_path / name, proc)
    subprocess.run(stop, shell=True, check=True, capture_output=True)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        subprocess.run(start_, shell=True, check=True, capture_output=True)
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    [line] = [line for line in out.splitlines() if line.startswith("budgetnas: error:")]
    assert "storage unreachable for 4 s" in line
    assert resume_command(line.replace("once it is back, continue with", "continue with")) == [
        "search", "--budget", "tiny-long", "--name", name, "--resume", "--reports-dir", str(tmp_path)]
    code = main(["search", "--budget", "tiny-long", "--name", name, "--resume", "--reports-dir", str(tmp_path),
                 "--no-retrain"])
    assert code == 0
    trials = study_of(tmp_path / name).get_trials(deepcopy=False)
    assert len([t for t in trials if "retry_of" not in t.user_attrs and t.user_attrs.get("status") != "interrupted"]) == 3


# ------------------------------------------------------------------ a full disk
def test_a_full_disk_mid_search_stops_with_one_line_and_resumes(tmp_path, tiny_budgets):
    """The reports folder on a 3 MB tmpfs; it fills while a trial trains. SQLite's own journal keeps the
    study whole; the search stops with one line, and resumes to the planned trials once space is free."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], check=True)
    try:
        proc = start("--budgets", tiny_budgets, "search", "--budget", "tiny-long", "--name", "full",
                     "--reports-dir", disk, "--trials", 3, "--no-retrain", "--patience", "3")
        wait_training(disk / "full", proc)
        filler = disk / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 2, out
        assert "Traceback" not in out
        [line] = [line for line in out.splitlines() if line.startswith("budgetnas: error:")]
        assert "storage unreachable for 3 s" in line and "disk is full" in line
        filler.unlink()
        import sqlite3

        with sqlite3.connect(disk / "full" / "study.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        code = main(["search", "--budget", "tiny-long", "--name", "full", "--resume", "--reports-dir", str(disk),
                     "--no-retrain"])
        assert code == 0
        trials = study_of(disk / "full").get_trials(deepcopy=False)
        assert len([t for t in trials if t.user_attrs.get("status") != "interrupted"]) == 3
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
