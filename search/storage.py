"""Where studies live: Optuna storages from a URL, plus heartbeats that survive dead workers.

* ``sqlite:///…`` (the embedded default, one process), ``postgresql://…`` / ``mysql://…``
  (many workers on many machines): Optuna's RDB storage.
* ``journal:PATH``: Optuna's journal file storage, for several processes on one machine without a
  server (SQLite locks up under concurrent writers).

Heartbeats are ours rather than Optuna's, so they work the same on every storage (Optuna's journal
storage has none): a running trial stamps ``heartbeat`` every few seconds; any worker that finds a
RUNNING trial whose stamp is older than the grace period tells it FAIL (only one worker can win
that race) and enqueues a retry with the same values, linked by ``retry_of``.
"""

from __future__ import annotations

import threading
import time

import optuna

from budgetnas.errors import ConfigError

HEARTBEAT_S = 5.0
GRACE_S = 30.0


def open_storage(url: str):
    """An Optuna storage for ``url`` (see the module docstring for the schemes)."""
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = url[len("journal:"):].removeprefix("//")
        if not path:
            raise ConfigError(f"--storage {url!r}: journal storage needs a file path, e.g. journal:reports/run.log")
        return JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise ConfigError(f"--storage {url!r}: use sqlite:///FILE, postgresql://…, or journal:FILE")
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True} if not url.startswith(
            "sqlite") else None)
    except (ImportError, ModuleNotFoundError):
        raise ConfigError(f"--storage {url.split('://')[0]}://…: database driver missing "
                          "(pip install 'budgetnas[postgres]' for PostgreSQL)") from None
    except Exception as exc:  # SQLAlchemy's connection errors are many
        raise ConfigError(f"--storage: cannot open {url.split('@')[-1]}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0]}") from None


class Heartbeat:
    """Stamps ``heartbeat`` on a running trial from a background thread."""

    def __init__(self, trial: optuna.Trial, interval: float = HEARTBEAT_S):
        self.trial, self.interval = trial, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.trial.set_user_attr("heartbeat", time.time())
            except Exception:  # the trial finished meanwhile: nothing left to stamp
                return

    def __enter__(self):
        self.trial.set_user_attr("heartbeat", time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def fail_dead_trials(study: optuna.Study, store, grace: float = GRACE_S) -> list[int]:
    """Fail RUNNING trials whose heartbeat is older than ``grace`` s and enqueue one retry each.

    ``store`` is an Optuna storage on the study's URL (:func:`open_storage`): a ``Study`` offers no
    public way to touch another process's trial, the storage API does. Returns the numbers of the
    trials this call failed.
    """
    now = time.time()
    study_id = None
    failed = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        beat = t.user_attrs.get("heartbeat")
        started = t.datetime_start.timestamp() if t.datetime_start else now
        if now - (beat if beat is not None else started) <= grace:
            continue
        reason = f"worker {t.user_attrs.get('worker', '?')} stopped sending heartbeats (none for {grace:.0f}s); retried"
        try:
            study_id = study_id if study_id is not None else store.get_study_id_from_name(study.study_name)
            trial_id = store.get_trial_id_from_study_id_trial_number(study_id, t.number)
            store.set_trial_user_attr(trial_id, "status", "failed")
            store.set_trial_user_attr(trial_id, "reason", reason)
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            continue  # finished meanwhile, or another worker got there first
        if t.user_attrs.get("retry_of") is None:  # one retry per original trial
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
        failed.append(t.number)
    return failed
