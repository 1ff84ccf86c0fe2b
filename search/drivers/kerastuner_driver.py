"""The keras-tuner driver: keras-tuner's oracles (Hyperband, Bayesian, random) propose; we do the rest.

* The space is mapped onto ``HyperParameters`` from the same :class:`~search.space.Space` (no second
  description); a block's ``channels`` / ``depth_multiplier`` sit in a conditional scope of its
  ``kind`` choice when only some kinds use them.
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

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import keras_tuner as kt
import optuna

from search.drivers.common import SearchContext, evaluate
from search.runs import TrialRecord
from search.space import CONV_KINDS, Domain, Param, Space

ALGORITHMS = ("hyperband", "bayesian", "random")
_NEEDS = {"channels": ("conv", "separable", "pointwise"), "depth_multiplier": ("separable", "depthwise")}


def _condition(space: Space, p: Param) -> tuple[str, list[str]] | None:
    """(parent kind parameter, kinds under which ``p`` matters) for kind-dependent block fields."""
    if not p.name.startswith("blocks["):
        return None
    block, field = p.name.split(".", 1)
    kinds = space.blocks[int(block[7:-1])].fields["kind"]
    if field not in _NEEDS or not isinstance(kinds, Domain):
        return None
    active = [k for k in kinds.options if k in _NEEDS[field]]
    if len(active) == len(kinds.options) or not all(k in CONV_KINDS for k in kinds.options):
        return None
    return f"{block}.kind", active


def _declare(hp: kt.HyperParameters, p: Param) -> None:
    d = p.domain
    if d.is_range and all(isinstance(o, int) for o in d.options):
        hp.Int(p.name, int(d.low), int(d.high), step=int(d.step))
    elif d.is_range:
        hp.Float(p.name, float(d.low), float(d.high), step=float(d.step))
    else:
        hp.Choice(p.name, list(d.options))


def hyperparameters(space: Space, params: tuple[Param, ...]) -> kt.HyperParameters:
    """keras-tuner's view of the space: kind choices first, dependent fields in conditional scopes."""
    hp = kt.HyperParameters()
    ordered = sorted(params, key=lambda p: not p.name.endswith(".kind"))
    for p in ordered:
        cond = _condition(space, p)
        if cond is None:
            _declare(hp, p)
        else:
            with hp.conditional_scope(*cond):
                _declare(hp, p)
    return hp


def values_from(hp: kt.HyperParameters, params: tuple[Param, ...]) -> dict[str, Any]:
    """Our values from keras-tuner's; an inactive field takes its first option (it builds nothing)."""
    out = {}
    for p in params:
        v = hp.values.get(p.name) if hp.is_active(p.name) else None
        if v is None:
            v = p.domain.options[0]
        elif p.domain.is_range and isinstance(v, float):
            v = min(p.domain.options, key=lambda o: abs(o - v))
        out[p.name] = v
    return out


def distributions(params: tuple[Param, ...]) -> dict[str, optuna.distributions.BaseDistribution]:
    out = {}
    for p in params:
        d = p.domain
        if d.is_range and all(isinstance(o, int) for o in d.options):
            out[p.name] = optuna.distributions.IntDistribution(int(d.low), int(d.high), step=int(d.step))
        else:
            out[p.name] = optuna.distributions.CategoricalDistribution(list(d.options))
    return out


def make_oracle(algorithm: str, space: Space, params, trials: int, max_epochs: int, seed: int):
    objective = kt.Objective("val_accuracy", "max")
    hp = hyperparameters(space, params)
    common = dict(objective=objective, hyperparameters=hp, seed=seed, tune_new_entries=False,
                  max_consecutive_failed_trials=trials + 1)  # rejections never abort a search
    if algorithm == "hyperband":
        # Enough Hyperband iterations that the trial count, not the bracket schedule, ends the search.
        oracle = kt.oracles.HyperbandOracle(max_epochs=max_epochs, factor=3, hyperband_iterations=max(1, trials),
                                            **common)
        oracle.max_trials = trials  # Hyperband has no such argument; the base oracle honours it
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
        self.dists = distributions(ctx.params)

    def _mirrored(self, kt_id: str) -> bool:
        return any(t.user_attrs.get("kt_trial_id") == kt_id for t in self.study.get_trials(deepcopy=False))

    def run_trial(self, trial, *args, **kwargs):
        on_start, on_epoch, on_batch, on_done = self.hooks
        hp = trial.hyperparameters
        epochs = int(hp.values.get("tuner/epochs", self.ctx.epochs))
        values = values_from(hp, self.ctx.params)
        number = len(self.study.get_trials(deepcopy=False))
        if on_start is not None:
            on_start(number)
        rec = evaluate(replace(self.ctx, epochs=epochs), number, values,
                       on_epoch=(lambda e, a: on_epoch(number, e, a)) if on_epoch else None, on_batch=on_batch)
        if rec.status == "complete" and epochs < self.ctx.epochs:
            rec.status, rec.reason = "pruned", f"hyperband rung of {epochs} epoch(s)"
        self._mirror(trial.trial_id, values, rec)
        if on_done is not None:
            on_done(rec)
        if rec.status in ("rejected", "failed"):
            raise kt.errors.FailedTrialError(rec.reason)
        return {"val_accuracy": rec.val_accuracy}

    def _mirror(self, kt_id: str, values: dict[str, Any], rec: TrialRecord) -> None:
        if self._mirrored(kt_id):
            return
        state = {"complete": optuna.trial.TrialState.COMPLETE,
                 "pruned": optuna.trial.TrialState.PRUNED}.get(rec.status, optuna.trial.TrialState.FAIL)
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
