"""The default driver: Optuna's seeded TPE proposes, a Hyperband pruner stops weak candidates.

Rejections: the gate repairs over-budget samples by shrinking widths, so TPE learns the score of
what its sample turns into (a deterministic mapping; nothing is hidden from it). A candidate the
gate still rejects is told to Optuna as FAIL, which TPE leaves out of its model, so rejections
neither count as bad scores nor bias the sampler towards shallow nets (as raising TrialPruned
would). Such trials are recorded with status ``rejected``, their reasons and zero steps.

Duplicates: a candidate that builds exactly the values of a completed or pruned trial (workers asking
at once, TPE late in a search, several samples repaired to one network) is not trained again; it is
told to Optuna as that trial ended and recorded with status ``duplicate``, out of the leaderboard.
"""

from __future__ import annotations

import json
import os
import socket
import time
import zlib
from typing import Any, Callable

import optuna

from search import storage
from search.drivers.common import Pruned, SearchContext, evaluate
from search.runs import TrialRecord
from search.space import Param


def suggest(trial: optuna.trial.BaseTrial, p: Param) -> Any:
    """Ask Optuna for one parameter, keeping numeric ranges ordered for TPE."""
    d = p.domain
    if d.is_range and all(isinstance(o, int) for o in d.options):
        return trial.suggest_int(p.name, int(d.low), int(d.high), step=int(d.step))
    if d.is_range:
        v = trial.suggest_float(p.name, float(d.low), float(d.high), step=float(d.step))
        return min(d.options, key=lambda o: abs(o - v))
    return trial.suggest_categorical(p.name, list(d.options))


def make_study(url: str, study_name: str, seed: int, min_epochs: int, max_epochs: int,
               load_if_exists: bool) -> optuna.Study:
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=8)
    pruner = optuna.pruners.HyperbandPruner(min_resource=min_epochs, max_resource=max_epochs,
                                            reduction_factor=3)
    return optuna.create_study(storage=storage.open_storage(url), study_name=study_name, direction="maximize",
                               sampler=sampler, pruner=pruner, load_if_exists=load_if_exists)


def record_attrs(trial: optuna.Trial, rec: TrialRecord) -> None:
    for key, value in rec.as_dict().items():
        if key not in ("number", "worker", "retry_of"):  # those two are set when the trial starts
            trial.set_user_attr(key, value)


def finished_with(study: optuna.Study, values: dict[str, Any]) -> TrialRecord | None:
    """The first completed or pruned trial that built exactly ``values`` (after repair), if any.

    Several workers asking at once, TPE late in a search and the repair (many samples, one network)
    all propose networks already trained; those are scored from the earlier trial instead.
    """
    want = json.loads(json.dumps(values))  # as stored: the comparison must survive the JSON round trip
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for t in study.get_trials(deepcopy=False, states=done):
        attrs = t.user_attrs
        if attrs.get("status") in ("complete", "pruned") and attrs.get("values") == want:
            return TrialRecord(number=t.number, status=attrs["status"], val_accuracy=attrs.get("val_accuracy"))
    return None


def fail_stale(study: optuna.Study) -> int:
    """Tell trials left RUNNING by a dead process as failed (on --resume). Returns how many."""
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in stale:
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    return len(stale)


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_seed(seed: int) -> int:
    """A sampler seed for one extra worker: the run's seed and this process, hashed."""
    return zlib.crc32(f"{seed}:{_worker_id()}".encode())


def run(ctx: SearchContext, study: optuna.Study, trials: int, timeout_s: float | None,
        on_start: Callable[[int], None] | None = None,
        on_epoch: Callable[[int, int, float], None] | None = None,
        on_batch: Callable[[int, dict], None] | None = None,
        on_done: Callable[[TrialRecord], None] | None = None,
        heartbeat: float = storage.HEARTBEAT_S, grace: float = storage.GRACE_S) -> None:
    """Run trials until ``trials`` original trials exist (retries of dead ones come on top).

    Any number of workers may run this on one study. Each finished trial is committed before the
    next starts, so Ctrl-C or a crash loses at most the running one: Ctrl-C tells it failed; a
    killed worker stops its heartbeat and a live worker fails and retries its trial.
    """
    t0 = time.monotonic()
    while True:
        storage.fail_dead_trials(study, grace)
        existing = study.get_trials(deepcopy=False)
        waiting = any(t.state == optuna.trial.TrialState.WAITING for t in existing)
        originals = sum(1 for t in existing if "retry_of" not in t.user_attrs)
        if not waiting and originals >= trials:
            if not any(t.state == optuna.trial.TrialState.RUNNING for t in existing):
                break
            time.sleep(heartbeat)  # other workers are busy: stay to retry their trial if they die
            continue
        if timeout_s and time.monotonic() - t0 > timeout_s:
            break
        trial = study.ask()
        trial.set_user_attr("worker", _worker_id())
        values = {p.name: suggest(trial, p) for p in ctx.params}
        if on_start is not None:
            on_start(trial.number)

        def report(epoch: int, acc: float) -> None:
            trial.report(acc, epoch)
            if on_epoch is not None:
                on_epoch(trial.number, epoch, acc)
            # The last epoch has nothing left to save: such a trial completes, never counts as pruned.
            if epoch < ctx.epochs and trial.should_prune():
                raise Pruned()

        prior: list[TrialRecord | None] = []  # what `seen` found, kept for telling Optuna below

        def seen(v: dict[str, Any]) -> TrialRecord | None:
            prior.append(finished_with(study, v))
            return prior[-1]

        try:
            with storage.Heartbeat(trial, heartbeat):
                rec = evaluate(ctx, trial.number, values, on_epoch=report, on_batch=on_batch, seen=seen)
        except KeyboardInterrupt:
            trial.set_user_attr("status", "failed")
            trial.set_user_attr("reason", "interrupted (Ctrl-C)")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        try:
            record_attrs(trial, rec)
            if rec.status == "duplicate":  # scored as the trial it repeats: TPE learns nothing false
                complete = prior[-1].status == "complete"
                study.tell(trial, rec.val_accuracy if complete else None,
                           state=optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.PRUNED)
            elif rec.status == "complete":
                study.tell(trial, rec.val_accuracy)
            elif rec.status == "pruned":
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            # We were too slow to send heartbeats: another worker failed this trial and retries it.
            rec.status, rec.reason = "failed", "failed by another worker (heartbeat late); retried there"
        if on_done is not None:
            rec.worker = trial.user_attrs.get("worker", "")
            rec.retry_of = trial.user_attrs.get("retry_of")
            on_done(rec)
