"""Where studies live: Optuna storages from a URL, plus heartbeats that survive dead workers.

* ``sqlite:///…`` (the embedded default, one process), ``postgresql://…`` / ``mysql://…``
  (many workers on many machines): Optuna's RDB storage.
* ``journal:PATH``: Optuna's journal file storage, for several processes on one machine without a
  server (SQLite locks up under concurrent writers).

Heartbeats are ours rather than Optuna's, so they work the same on every storage (Optuna's journal
storage has none): a running trial stamps ``heartbeat`` every few seconds; any worker that finds a
RUNNING trial whose stamp is older than the grace period tells it FAIL (only one worker can win
that race) and enqueues a retry with the same values, linked by ``retry_of``.

A storage that goes away (a database restarting, a full disk under SQLite or a journal file) is waited
for: :func:`patient` retries a call for ``patience`` seconds, then raises :class:`StorageLost`. A
worker whose heartbeats cannot be written stops training its trial before the grace period ends
(:meth:`Heartbeat.check`), so no other worker retries a trial that is still training.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, TypeVar

import optuna

from budgetnas import compat
from budgetnas.errors import ConfigError, RunError

HEARTBEAT_S = 5.0
GRACE_S = 30.0
PATIENCE_S = 120.0  # how long a search waits for an unreachable storage before it stops (resumable)

log = logging.getLogger("budgetnas.storage")
T = TypeVar("T")


class StorageLost(RunError):
    """The study's storage could not be reached for the whole patience period."""


class HeartbeatLost(Exception):
    """Raised inside a trial whose heartbeats could not be written for most of the grace period."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a storage that is away (connection lost, server down, disk full), not a bug.

    Optuna wraps SQLAlchemy's errors of a failed commit in ``StorageInternalError``; the journal storage
    raises ``OSError`` itself.
    """
    import sqlalchemy.exc

    return isinstance(exc, (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError,
                            sqlalchemy.exc.InterfaceError, OSError))


def describe(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__ if isinstance(exc, optuna.exceptions.StorageInternalError) else None
    exc = cause or exc
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300]


def patient(call: Callable[..., T], *args: Any, patience: float = PATIENCE_S, what: str = "", **kwargs: Any) -> T:
    """``call(*args, **kwargs)``, retried with growing pauses while the storage is away, for ``patience`` s.

    Raises:
        StorageLost: still away after ``patience`` seconds (the message says what was being done).
    """
    started, pause = None, 0.5
    while True:
        try:
            result = call(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc):
                raise
            now = time.monotonic()
            if started is None:
                started = now
                log.warning("storage unreachable%s (%s); retrying for up to %.0f s",
                            f" while {what}" if what else "", describe(exc), patience)
            if now - started >= patience:
                raise StorageLost(f"storage unreachable for {patience:.0f} s{f' while {what}' if what else ''} "
                                  f"({describe(exc)})") from None
            time.sleep(min(pause, max(0.0, patience - (now - started))))
            pause = min(pause * 2, 10.0)
            continue
        if started is not None:
            log.warning("storage reachable again after %.0f s", time.monotonic() - started)
        return result


# Processes that open an empty database together (the first workers of a run) all create Optuna's tables; all
# but one fail with one of these. The tables exist by then: opening again succeeds.
_SCHEMA_RACE = ("already exists", "duplicate key value violates unique constraint")
_SCHEMA_TRIES = 5

_SERVERS: dict[str, Any] = {}  # one RDB storage (one connection pool) per database-server URL and process


def open_storage(url: str):
    """An Optuna storage for ``url`` (see the module docstring for the schemes).

    A database server's storage is opened once per process and shared: each RDB storage holds its own
    connection pool, and a caller that polls (a notebook refreshing a leaderboard, a test waiting on a
    worker) would otherwise run a server out of connections.
    """
    if "://" in url and not url.startswith("sqlite") and url in _SERVERS:
        return _SERVERS[url]
    store = _open(url)
    if "://" in url and not url.startswith("sqlite"):
        _SERVERS[url] = store
    return store


def _open(url: str):
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = url[len("journal:"):].removeprefix("//")
        if not path:
            raise ConfigError(f"--storage {url!r}: journal storage needs a file path, e.g. journal:reports/run.log")
        return JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise ConfigError(f"--storage {url!r}: use sqlite:///FILE, postgresql://…, or journal:FILE")
    for attempt in range(_SCHEMA_TRIES):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True} if not url.startswith(
                "sqlite") else None)
        except (ImportError, ModuleNotFoundError):
            raise ConfigError(f"--storage {url.split('://')[0]}://…: database driver missing "
                              "(pip install 'budgetnas[postgres]' for PostgreSQL)") from None
        except Exception as exc:  # SQLAlchemy's connection errors are many
            if attempt + 1 < _SCHEMA_TRIES and any(s in str(exc) for s in _SCHEMA_RACE):
                time.sleep(0.2 * (attempt + 1))
                continue
            raise ConfigError(f"--storage: cannot open {url.split('@')[-1]}: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0]}") from None


class Heartbeat:
    """Stamps ``heartbeat`` on a running trial from a background thread.

    A stamp that cannot be written is logged (once per outage) and tried again at the next beat;
    :meth:`check`, called by the training loop, stops the trial once the stamps have been silent for
    ``grace`` less two beats at any time during it (past ``grace`` another worker may fail it and train
    its retry; the stamp that ends a long outage races with that worker's check, so it does not count),
    or once another worker has failed it.
    """

    def __init__(self, trial: optuna.Trial, interval: float = HEARTBEAT_S, grace: float = GRACE_S):
        self.trial, self.interval, self.grace = trial, interval, grace
        self.limit = max(grace - 2 * interval, interval)
        self.last_ok = time.monotonic()
        self.lapse = 0.0  # the longest silence so far
        self.taken = False  # another worker failed the trial
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _beat(self) -> None:
        try:
            self.trial.set_user_attr("heartbeat", time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            self.taken = True  # finished meanwhile (by another worker): nothing left to stamp
            self._stop.set()
            return
        except Exception as exc:
            if not self._failing:
                log.warning("trial %d: heartbeat not written (%s); trying again every %.0f s",
                            self.trial.number, describe(exc), self.interval)
            self._failing = True
            return
        now = time.monotonic()
        if self._failing:
            log.warning("trial %d: heartbeats written again after %.0f s", self.trial.number, now - self.last_ok)
        self._failing = False
        self.lapse = max(self.lapse, now - self.last_ok)
        self.last_ok = now

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

    def check(self) -> None:
        """Raise :class:`HeartbeatLost` when the heartbeats have been silent too long to go on training."""
        if self.taken:
            raise HeartbeatLost("another worker failed this trial (its heartbeats came late)")
        silent = max(self.lapse, time.monotonic() - self.last_ok)
        if silent > self.limit:
            raise HeartbeatLost(f"heartbeats could not be written for {silent:.0f} s")

    def __enter__(self):
        self._beat()
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
    failed = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        beat = t.user_attrs.get("heartbeat")
        started = t.datetime_start.timestamp() if t.datetime_start else now
        if now - (beat if beat is not None else started) <= grace:
            continue
        reason = f"worker {t.user_attrs.get('worker', '?')} stopped sending heartbeats (none for {grace:.0f}s); retried"
        try:
            compat.set_trial_user_attrs(store, study.study_name, t.number, {"status": "failed", "reason": reason})
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            continue  # finished meanwhile, or another worker got there first
        if t.user_attrs.get("retry_of") is None:  # one retry per original trial
            study.enqueue_trial(dict(t.params), user_attrs=retry_attrs(t))
        failed.append(t.number)
    return failed


def carried_attrs(trial: optuna.Trial | optuna.trial.FrozenTrial) -> dict:
    """The user attributes every rerun of ``trial`` (a retry, or a resume after an interrupt) keeps: the original
    trial it stands for if it was itself a retry (``retry_of``, which alone counts toward ``--trials``) and the
    start point it trains, if any (``start``: ``retrain --start`` and the report name it)."""
    return {key: trial.user_attrs[key] for key in ("retry_of", "start") if key in trial.user_attrs}


def retry_attrs(trial: optuna.Trial | optuna.trial.FrozenTrial) -> dict:
    """The user attributes a retry of ``trial`` is enqueued with: it stands for ``trial`` (or the original
    ``trial`` itself stood for), with what :func:`carried_attrs` keeps."""
    return {"retry_of": trial.number, **carried_attrs(trial)}
