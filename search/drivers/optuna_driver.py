"""The default driver: Optuna's seeded TPE proposes, a successive-halving pruner stops weak candidates.

Sampling is define-by-run and active-only (:func:`~budgetnas.drivers.common.propose`): a block's
fields are asked for only when the block is present, a kind's fields only for that kind. TPE then
models only choices that change the network, and one network has one spelling.

Why this sampler and pruner. Measured (``benchmarks/ranking/proxy_table.md``, mnist-8k): a full
3-epoch trial on 20k images ranks 28 networks with Kendall τ 0.70-0.75 against full training with
another seed (as in a search), the 1-epoch rung τ 0.46-0.63, so the rung prunes on a weaker but real
signal; a two-seed mean of the score ranks no better. Against random sampling at equal trials
and fidelity (``benchmarks/search_vs_random/table.md``: 9 searches each, picks trained at full
fidelity) TPE's picks average 0.01 points more validation accuracy, with a 0.05-point standard
error (the same searches stopped after 8, 12, 16 trials: +0.05, +0.00, -0.02). TPE is kept as no
worse, not shown better: the score's own noise leaves any sampler 0.07-0.10 points of headroom
(``proxy_table.md``). Its settings rest on:

* One successive-halving bracket, not Hyperband. Optuna's TPE keeps a separate history per
  Hyperband bracket, and each bracket needs ``n_startup_trials`` trials of its own before TPE models
  it: with two brackets and 8 start-up trials, 16 of a 24-trial search were random samples.
* ``n_startup_trials = STARTUP_TRIALS`` (6): a CPU search affords 12-24 trials; the model-based
  phase starts with the 7th. ``multivariate`` + ``group`` model the joint, conditional space
  (group keeps the parameters of present and absent blocks apart); ``constant_liar`` keeps parallel
  workers from proposing the same point.
* ``--algorithm random``: the same search with Optuna's ``RandomSampler``, the baseline it is
  measured against.

Rejections: the gate repairs over-budget samples by shrinking widths, so TPE learns the score of
what its sample turns into (a deterministic mapping; nothing is hidden from it). A candidate the
gate still rejects is told to Optuna as FAIL, which TPE leaves out of its model, so rejections
neither count as bad scores nor bias the sampler towards shallow nets (as raising TrialPruned
would). Such trials are recorded with status ``rejected``, their reasons and zero steps.

Interrupts: a trial stopped by Ctrl-C or SIGTERM is recorded ``interrupted`` (told FAIL, so TPE leaves
it out) and does not count toward the trial budget; on ``--resume`` (:func:`resume_interrupted`) it is
enqueued again with the same values and trains from its own seed, and the resumed sampler is reseeded
(:func:`reseed`), so it does not replay the proposals of the first process as duplicates.

Fronts (``--objective front``, :mod:`budgetnas.front`): the study has two objectives, validation
accuracy (maximised) and total params or MACs (minimised), and Optuna's multi-objective TPE (or random
sampling) proposes. Optuna refuses to prune a multi-objective study, so this driver prunes it itself:
each epoch's accuracy is kept on the trial (``curve``) beside its cost, and at a rung of the same
successive-halving schedule (:func:`rungs`) a candidate goes on only if :func:`budgetnas.front.promote`
puts it among the best third, by non-dominated sorting, of the candidates that reached that rung.

Duplicates: a candidate whose built network and recipe (its key) match a completed or pruned trial
(workers asking at once, TPE late in a search, several samples repaired to one network) is not
trained again; it is told to Optuna as that trial ended and recorded with status ``duplicate``, out
of the leaderboard.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
import zlib
from typing import Any, Callable

import optuna

from budgetnas import compat, front, interrupts, storage
from budgetnas.drivers import domains
from budgetnas.drivers.common import Pruned, SearchContext, evaluate, finished_with, network_key, propose
from budgetnas.run.folder import TrialRecord

STARTUP_TRIALS = 6
REDUCTION_FACTOR = 3


def make_sampler(algorithm: str, seed: int) -> optuna.samplers.BaseSampler:
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # multivariate and group are marked experimental; both are pinned in tests
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS, multivariate=True,
                                          group=True, constant_liar=True)


def make_study(url: str, study_name: str, seed: int, min_epochs: int, max_epochs: int,
               load_if_exists: bool, algorithm: str = "tpe", objective: str = "accuracy",
               cost: str = "params") -> optuna.Study:
    """The run's study: one objective (validation accuracy, pruned by successive halving), or for a front
    two (accuracy up, ``cost`` down), pruned by this driver (:func:`rungs`). Its metrics are named, so
    optuna-dashboard labels its plots (and draws the Pareto front of a front study)."""
    if objective == "front":
        pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()  # Optuna cannot prune multi-objective
        directions, names = ["maximize", "minimize"], ["val accuracy", cost]
    else:
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=min_epochs, reduction_factor=REDUCTION_FACTOR)
        directions, names = ["maximize"], ["val accuracy"]
    study = optuna.create_study(storage=storage.open_storage(url), study_name=study_name, directions=directions,
                                sampler=make_sampler(algorithm, seed), pruner=pruner, load_if_exists=load_if_exists)
    if not load_if_exists:
        with warnings.catch_warnings():  # experimental since Optuna 3.2; the names only label plots
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    return study


def enqueue_start(study: optuna.Study, space, names: list[str]) -> None:
    """Enqueue the space's start points called ``names`` as the study's first trials, with their active
    parameters only (an inactive one is never asked for)."""
    points = dict(space.start)
    for name in names:
        values: dict = {}
        for p in space.ask_order():
            if space.is_active(p.name, values):
                values[p.name] = points[name][p.name]
        study.enqueue_trial(values, user_attrs={"start": name}, skip_if_exists=True)


def rungs(min_epochs: int, max_epochs: int) -> list[int]:
    """The epochs at which a front search may stop a candidate: ``min_epochs`` × 3^k, before the last epoch
    (the rungs of Optuna's ``SuccessiveHalvingPruner`` with the same settings)."""
    out, e = [], max(1, min_epochs)
    while e < max_epochs:
        out.append(e)
        e *= REDUCTION_FACTOR
    return out


def company(study: optuna.Study, number: int, epoch: int, cost: str) -> list[front.Point]:
    """(accuracy at ``epoch``, cost) of every other trial that trained that far: running, completed or pruned
    (not duplicates, rejections, failures or interrupted trials, whose replacement counts instead)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        curve = a.get("curve") or []
        if t.number != number and a.get("status") in (None, "complete", "pruned") and len(curve) >= epoch \
                and a.get(cost) is not None:
            out.append(front.Point(curve[epoch - 1], a[cost]))
    return out


def record_attrs(trial: optuna.Trial, rec: TrialRecord) -> None:
    for key, value in rec.as_dict().items():
        if key not in ("number", "worker", "retry_of", "start"):  # those are set when the trial starts
            trial.set_user_attr(key, value)


INTERRUPTED = "interrupted"


def counts_toward_budget(t: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial is one of the ``--trials`` asked for: not a dead worker's retry (the dead trial counts),
    not an interrupted trial (its replacement counts)."""
    return "retry_of" not in t.user_attrs and t.user_attrs.get("status") != INTERRUPTED


def fail_stale(study: optuna.Study, store) -> int:
    """Tell trials left RUNNING by a dead process (killed, or stopped twice) as interrupted, on --resume.

    They are trained again like a Ctrl-C'd trial (:func:`resume_interrupted`). ``store``: an Optuna storage on
    the study's URL (a ``Study`` cannot set attributes of a trial it did not ask). Returns how many.
    """
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in stale:
        compat.set_trial_user_attrs(store, study.study_name, t.number, {
            "status": INTERRUPTED, "reason": "its process ended while it trained; trained again on --resume"})
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    return len(stale)


def resume_interrupted(study: optuna.Study) -> list[int]:
    """Enqueue every interrupted trial not yet replaced, with its values and seed. Returns their numbers.

    The replacement carries ``resumes`` (the trial it replaces) and ``seed_of`` (whose seed it trains
    with: the first trial of the chain), and ``retry_of`` when the interrupted trial was itself a retry,
    so the count of trials toward ``--trials`` is what it was before the interrupt.
    """
    trials = study.get_trials(deepcopy=False)
    replaced = {t.user_attrs["resumes"] for t in trials if "resumes" in t.user_attrs}
    out = []
    for t in trials:
        if t.user_attrs.get("status") != INTERRUPTED or t.number in replaced:
            continue
        attrs = {"resumes": t.number, "seed_of": t.user_attrs.get("seed_of", t.number),
                 **storage.carried_attrs(t)}
        study.enqueue_trial(dict(t.params), user_attrs=attrs, skip_if_exists=False)
        out.append(t.number)
    return out


def reseed(study: optuna.Study, algorithm: str, seed: int) -> None:
    """A resumed study's sampler, seeded apart from the first process's: a seeded sampler started again
    replays its proposals from the start, and every replayed network would be a duplicate."""
    n = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(algorithm, zlib.crc32(f"{seed}:resume:{n}".encode()))


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
        heartbeat: float = storage.HEARTBEAT_S, grace: float = storage.GRACE_S,
        storage_url: str | None = None, patience: float = storage.PATIENCE_S) -> None:
    """Run trials until ``trials`` of them count toward the budget (:func:`counts_toward_budget`).

    Any number of workers may run this on one study. Each finished trial is committed before the
    next starts, so Ctrl-C or a crash loses at most the running one: Ctrl-C and SIGTERM record it
    interrupted (trained again on resume); a killed worker stops its heartbeat and a live worker fails
    and retries its trial (``storage_url``: the study's storage, opened once more to reach other
    workers' trials). Every storage call waits up to ``patience`` seconds for a storage that is away
    (:func:`budgetnas.storage.patient`); a trial whose heartbeats cannot be written meanwhile is
    stopped, told failed and retried, so no other worker trains it a second time.

    Raises:
        budgetnas.storage.StorageLost: the storage stayed away for ``patience`` seconds.
    """
    def s(call, *args, what: str = "", **kwargs):
        return storage.patient(call, *args, patience=patience, what=what, **kwargs)

    t0 = time.monotonic()
    store = s(storage.open_storage, storage_url) if storage_url else None  # to fail other workers' dead trials
    while True:
        if store is not None:
            s(storage.fail_dead_trials, study, store, grace, what="checking other workers' heartbeats")
        existing = s(study.get_trials, deepcopy=False, what="reading the study")
        waiting = any(t.state == optuna.trial.TrialState.WAITING for t in existing)
        originals = sum(1 for t in existing if counts_toward_budget(t))
        if not waiting and originals >= trials:
            if not any(t.state == optuna.trial.TrialState.RUNNING for t in existing):
                break
            time.sleep(heartbeat)  # other workers are busy: stay to retry their trial if they die
            continue
        if timeout_s and time.monotonic() - t0 > timeout_s:
            break
        trial = s(study.ask, what="starting a trial")
        s(trial.set_user_attr, "worker", _worker_id(), what="starting a trial")
        # suggesting a parameter twice returns its first value: retrying the whole proposal is safe
        values = s(propose, ctx, lambda p: domains.suggest(trial, p), what=f"proposing trial {trial.number}")
        if on_start is not None:
            on_start(trial.number)
        beat = storage.Heartbeat(trial, heartbeat, grace)
        curve: list[float] = []
        own: dict[str, Any] = {}

        def built(rec: TrialRecord) -> None:  # a front's company reads the cost of running trials
            own.update(params=rec.params, macs=rec.macs)
            if ctx.front:
                for k in ("params", "macs"):
                    s(trial.set_user_attr, k, own[k], what=f"starting trial {trial.number}")

        def report(epoch: int, acc: float) -> None:
            beat.check()
            curve.append(acc)
            try:
                if ctx.front:  # no intermediate values in a multi-objective study: the curve is an attribute
                    s(trial.set_user_attr, "curve", list(curve), what=f"reporting trial {trial.number}")
                else:
                    s(trial.report, acc, epoch, what=f"reporting trial {trial.number}")
            except optuna.exceptions.UpdateFinishedTrialError:
                raise storage.HeartbeatLost("another worker failed this trial (its heartbeats came late)") from None
            beat.check()  # the report may have waited out an outage
            if on_epoch is not None:
                on_epoch(trial.number, epoch, acc)
            # The last epoch has nothing left to save: such a trial completes, never counts as pruned.
            if epoch >= ctx.epochs:
                return
            if ctx.front:
                if epoch in rungs(ctx.min_epochs, ctx.epochs):
                    others = s(company, study, trial.number, epoch, ctx.cost, what="reading the rung")
                    if not front.promote(front.Point(acc, own[ctx.cost]), others, REDUCTION_FACTOR):
                        raise Pruned()
            elif s(trial.should_prune, what=f"asking the pruner about trial {trial.number}"):
                raise Pruned()

        def batch(step: int, logs: dict) -> None:
            beat.check()
            if on_batch is not None:
                on_batch(step, logs)

        prior: list[TrialRecord | None] = []  # what `seen` found, kept for telling Optuna below

        def seen(key: str) -> TrialRecord | None:
            prior.append(s(finished_with, study, key, lambda v: network_key(ctx, v), what="looking for duplicates"))
            return prior[-1]

        try:
            with beat:
                rec = evaluate(ctx, trial.number, values, on_epoch=report, on_batch=batch, seen=seen,
                               seed_of=trial.user_attrs.get("seed_of"), on_built=built)
        except KeyboardInterrupt as exc:
            with interrupts.deferred():  # a second Ctrl-C waits until the record is whole
                try:  # briefly: the user is waiting; a trial left RUNNING is trained again on resume all the same
                    storage.patient(_record_interrupted, study, trial, interrupts.reason(exc), patience=5.0)
                except storage.StorageLost:
                    pass
            raise
        except storage.HeartbeatLost as exc:
            rec = TrialRecord(number=trial.number, status="failed", values=values,
                              reason=f"{exc}: stopped so that no other worker trains it twice; retried")
            s(_abandon, study, trial, rec.reason, what=f"recording trial {trial.number} as stopped")
        else:
            with interrupts.deferred():  # trained: record it whole before stopping for a Ctrl-C that came meanwhile
                s(_tell, study, trial, rec, prior, ctx, what=f"recording trial {trial.number}")
        if on_done is not None:
            rec.worker = trial.user_attrs.get("worker", "")
            rec.retry_of = trial.user_attrs.get("retry_of")
            on_done(rec)


def _record_interrupted(study: optuna.Study, trial: optuna.Trial, why: str) -> None:
    trial.set_user_attr("status", INTERRUPTED)
    trial.set_user_attr("reason", f"{why}; trained again on --resume")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _abandon(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Tell a trial failed that this worker stopped for want of heartbeats, and enqueue a retry (unless
    another worker failed it first, and retries it). A stopped retry is retried too: its network never
    failed, the storage did; the new retry names the same original trial, which alone counts."""
    try:
        trial.set_user_attr("status", "failed")
        trial.set_user_attr("reason", reason)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return
    study.enqueue_trial(dict(trial.params), user_attrs=storage.retry_attrs(trial))


def objective_values(ctx: SearchContext, rec: TrialRecord) -> float | list[float]:
    """What Optuna is told for a completed trial: its validation accuracy, and for a front its cost too."""
    if ctx.front:
        return [rec.val_accuracy, float(front.cost_of(rec, ctx.cost))]
    return rec.val_accuracy


def _tell(study: optuna.Study, trial: optuna.Trial, rec: TrialRecord, prior: list[TrialRecord | None],
          ctx: SearchContext) -> None:
    try:
        record_attrs(trial, rec)
        if rec.status == "duplicate":  # scored as the trial it repeats: TPE learns nothing false
            complete = prior[-1].status == "complete"
            study.tell(trial, objective_values(ctx, rec) if complete else None,
                       state=optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.PRUNED)
        elif rec.status == "complete":
            study.tell(trial, objective_values(ctx, rec))
        elif rec.status == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        # We were too slow to send heartbeats: another worker failed this trial and retries it.
        rec.status, rec.reason = "failed", "failed by another worker (heartbeat late); retried there"


def run_search(ctx: SearchContext, study: optuna.Study, meta, path, *, resume: bool, events: dict,
               heartbeat: float, grace: float, patience: float) -> None:
    """The registry's entry (:mod:`budgetnas.drivers.base`): :func:`run` with the run's settings."""
    run(ctx, study, meta.trials, meta.timeout * 60 if meta.timeout else None, **events, heartbeat=heartbeat,
        grace=grace, storage_url=meta.storage, patience=patience)
