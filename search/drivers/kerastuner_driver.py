"""The keras-tuner driver: keras-tuner's oracles (Hyperband, Bayesian, random) propose; we do the rest.

* The space is mapped onto ``HyperParameters`` from the same :class:`~budgetnas.space.Space` (no second
  description; types from :mod:`budgetnas.drivers.domains`); an optional block's fields sit in a
  conditional scope of its ``repeat``, and ``channels`` / ``depth_multiplier`` / ``kernel`` in one of
  its ``kind`` when only some kinds use them, so absent choices are never sampled.
* Duplicates are recognised by the built network + recipe key, as with Optuna: a repeat of a trial
  that trained at least as many epochs is scored from it, not trained again.
* Every candidate goes through the same gate as with Optuna (exact Keras Total params, BatchNorm
  statistics included; nothing unbuilt counts as size 0) with the shared repair step, so the search
  never stalls; a rejected candidate is a FailedTrialError for keras-tuner, and the limit of three
  consecutive failures is lifted.
* Each finished trial is mirrored into the run's Optuna study (same records, same storage), so
  ``leaderboard``, ``retrain``, ``report`` and ``export`` do not care which driver ran.
* Hyperband here is keras-tuner's: a trial trains ``tuner/epochs`` epochs from scratch (no warm start
  from the previous rung's checkpoint); a trial on a lower rung is recorded as pruned early.
* Resume: keras-tuner reloads its oracle from ``reports/<RUN>/keras_tuner``; trials already mirrored
  (by keras-tuner trial id) are never recorded twice.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import keras_tuner as kt
import optuna

from budgetnas import compat
from budgetnas.budget import RECIPE_PREFIX
from budgetnas.drivers import domains
from budgetnas.drivers.common import SearchContext, evaluate, finished_with, network_key
from budgetnas.run.folder import TrialRecord
from budgetnas.space import KIND_FIELDS, Domain, Param, Space



def _conditions(space: Space, p: Param) -> list[tuple[str, list]]:
    """(parent parameter, values under which ``p`` is active) for each condition on a block field.

    The same rule as :meth:`Space.is_active`: a field of an optional block depends on its repeat
    being non-zero (``shared`` on two or more repeats); ``channels`` / ``depth_multiplier`` / ``kernel`` on the
    block's kind.
    ``defaults.*`` stay unconditional (their activity depends on several blocks at once, which one
    keras-tuner parent cannot say); :func:`values_from` still sets an unused one to its first option.
    """
    if not p.name.startswith("blocks["):
        return []
    index, fld = p.name[7:].split("].", 1)
    block, out = space.blocks[int(index)], []
    repeat, kinds = block.fields["repeat"], block.fields["kind"]
    if fld == "shared" and isinstance(repeat, Domain):  # one application shares nothing
        out.append((f"blocks[{index}].repeat", [o for o in repeat.options if o >= 2]))
    elif fld != "repeat" and isinstance(repeat, Domain) and 0 in repeat.options:
        out.append((f"blocks[{index}].repeat", [o for o in repeat.options if o != 0]))
    if fld in KIND_FIELDS and isinstance(kinds, Domain):
        active = [k for k in kinds.options if k in KIND_FIELDS[fld]]
        if len(active) < len(kinds.options):
            out.append((f"blocks[{index}].kind", active))
    return out


def hyperparameters(space: Space, params: tuple[Param, ...]) -> kt.HyperParameters:
    """keras-tuner's view of the space: parents first, dependent fields in (nested) conditional scopes."""
    hp = kt.HyperParameters()
    names = {p.name for p in params}
    ordered = [p for p in space.ask_order() if p.name in names] + [p for p in params if p.name.startswith(RECIPE_PREFIX)]
    for p in ordered:
        with ExitStack() as scopes:
            for parent, active in _conditions(space, p):
                scopes.enter_context(hp.conditional_scope(parent, active))
            domains.declare(hp, p)
    return hp


def values_from(hp: kt.HyperParameters, space: Space, params: tuple[Param, ...]) -> dict[str, Any]:
    """Our values from keras-tuner's; an inactive field takes its first option (it builds nothing)."""
    out = {}
    for p in params:
        v = hp.values.get(p.name) if hp.is_active(p.name) else None
        out[p.name] = p.domain.options[0] if v is None else domains.snap(p.domain, v)
    return space.canonical(out)


def make_oracle(algorithm: str, space: Space, params, trials: int, max_epochs: int, seed: int):
    objective = kt.Objective("val_accuracy", "max")
    hp = hyperparameters(space, params)
    common = dict(objective=objective, hyperparameters=hp, seed=seed, tune_new_entries=False,
                  max_consecutive_failed_trials=trials + 1)  # rejections never abort a search
    if algorithm == "hyperband":
        # Enough Hyperband iterations that the trial count, not the bracket schedule, ends the search.
        oracle = kt.oracles.HyperbandOracle(max_epochs=max_epochs, factor=3, hyperband_iterations=max(1, trials),
                                            **common)
        compat.set_max_trials(oracle, trials)  # Hyperband has no such argument; the base oracle honours it
        return oracle
    if algorithm == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=trials, num_initial_points=4, **common)
    return kt.oracles.RandomSearchOracle(max_trials=trials, **common)


class BudgetTuner(kt.Tuner):
    """Runs each keras-tuner trial through the budget gate and our trainer; mirrors it to Optuna."""

    def __init__(self, oracle, ctx: SearchContext, study: optuna.Study, directory: Path, overwrite: bool,
                 on_start=None, on_epoch=None, on_batch=None, on_done=None):
        super().__init__(oracle=oracle, directory=str(directory), project_name="keras_tuner", overwrite=overwrite)
        self.ctx, self.study = ctx, study
        self.hooks = (on_start, on_epoch, on_batch, on_done)
        self.dists = {p.name: domains.distribution(p.domain) for p in ctx.params}

    def _mirrored(self, kt_id: str) -> bool:
        return any(t.user_attrs.get("kt_trial_id") == kt_id for t in self.study.get_trials(deepcopy=False))

    def run_trial(self, trial, *args, **kwargs):
        on_start, on_epoch, on_batch, on_done = self.hooks
        hp = trial.hyperparameters
        epochs = int(hp.values.get("tuner/epochs", self.ctx.epochs))
        values = values_from(hp, self.ctx.space, self.ctx.params)
        number = len(self.study.get_trials(deepcopy=False))
        if on_start is not None:
            on_start(number)
        prior: list[TrialRecord | None] = []

        def seen(key: str) -> TrialRecord | None:
            # a repeat counts only if the earlier trial trained at least this rung's epochs
            prior.append(finished_with(self.study, key, lambda v: network_key(self.ctx, v), min_epochs=epochs))
            return prior[-1]

        rec = evaluate(replace(self.ctx, epochs=epochs), number, values,
                       on_epoch=(lambda e, a: on_epoch(number, e, a)) if on_epoch else None, on_batch=on_batch,
                       seen=seen)
        if rec.status == "complete" and epochs < self.ctx.epochs:
            rec.status, rec.reason = "pruned", f"hyperband rung of {epochs} epoch(s)"
        complete = rec.status == "complete" or (rec.status == "duplicate" and prior[-1].status == "complete")
        self._mirror(trial.trial_id, values, rec, complete)
        if on_done is not None:
            on_done(rec)
        if rec.status in ("rejected", "failed"):
            raise kt.errors.FailedTrialError(rec.reason)
        return {"val_accuracy": rec.val_accuracy}

    def _mirror(self, kt_id: str, values: dict[str, Any], rec: TrialRecord, complete: bool) -> None:
        if self._mirrored(kt_id):
            return
        state = (optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.PRUNED
                 if rec.status in ("pruned", "duplicate") else optuna.trial.TrialState.FAIL)
        attrs = {k: v for k, v in rec.as_dict().items() if k != "number"}
        attrs["kt_trial_id"] = kt_id
        self.study.add_trial(optuna.trial.create_trial(
            state=state, value=rec.val_accuracy if state == optuna.trial.TrialState.COMPLETE else None,
            params=values, distributions=self.dists, user_attrs=attrs,
            intermediate_values={i + 1: v for i, v in enumerate(rec.curve)}))


def run(ctx: SearchContext, study: optuna.Study, trials: int, algorithm: str, directory: Path, resume: bool,
        on_start: Callable | None = None, on_epoch: Callable | None = None,
        on_batch: Callable | None = None, on_done: Callable | None = None) -> None:
    oracle = make_oracle(algorithm, ctx.space, ctx.params, trials, ctx.epochs, ctx.seed)
    tuner = BudgetTuner(oracle, ctx, study, directory, overwrite=not resume, on_start=on_start,
                        on_epoch=on_epoch, on_batch=on_batch, on_done=on_done)
    tuner.search(verbose=0)


def run_search(ctx: SearchContext, study: optuna.Study, meta, path: Path, *, resume: bool, events: dict,
               heartbeat: float, grace: float, patience: float) -> None:
    """The registry's entry (:mod:`budgetnas.drivers.base`): keras-tuner keeps no heartbeat (one process)."""
    run(ctx, study, meta.trials, meta.algorithm, path, resume=resume, **events)
