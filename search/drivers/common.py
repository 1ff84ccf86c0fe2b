"""What every driver shares: the search context and the evaluation of one candidate.

A driver proposes values; :func:`evaluate` sends them through the budget gate and, only if the
gate admits them, through the trainer, and returns a :class:`~budgetnas.run.folder.TrialRecord`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Mapping

from budgetnas import gate
from budgetnas.build import build_model
from budgetnas.budget import Budget, Candidate
from budgetnas.data import Arrays
from budgetnas.errors import TrialFailed
from budgetnas.run.folder import TrialRecord
from budgetnas.space import Param, Space


@dataclass(frozen=True)
class SearchContext:
    budget: Budget
    space: Space
    train: Arrays  # what candidates train on (maybe a stratified subset)
    val: Arrays  # the validation split: the only data that scores candidates
    classes: int
    epochs: int  # the most epochs a candidate trains during the search
    seed: int
    repair: bool = True
    full_train: Arrays | None = None  # the whole training split ``train`` was drawn from (re-scoring trains on it)
    objective: str = "accuracy"  # or "front": validation accuracy up, ``cost`` down (budgetnas.front)
    cost: str = "params"  # the front's second objective: "params" or "macs"
    min_epochs: int = 1  # the first pruning rung (≥ epochs: no pruning)

    @property
    def front(self) -> bool:
        return self.objective == "front"

    @property
    def params(self) -> tuple[Param, ...]:
        return self.space.params + self.budget.params()


def network_key(ctx: SearchContext, values: Mapping[str, Any]) -> str:
    """One short key per trained candidate: the network as built plus the resolved recipe.

    Two spellings of one network (a value of an absent block, a block index that builds the same
    layers) get the same key, so a driver recognises a repeat whatever values were proposed.
    """
    arch = ctx.space.resolve(Candidate.of(values).network)
    recipe = ctx.budget.train.resolve(values)
    text = json.dumps([arch.key(), asdict(recipe)], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def propose(ctx: SearchContext, ask: Callable[[Param], Any]) -> dict[str, Any]:
    """A candidate's values, asking ``ask(param)`` only for parameters that change the network
    (:meth:`~budgetnas.space.Space.choose`), then for the recipe's free choices."""
    values = ctx.space.choose(ask)
    values.update({p.name: ask(p) for p in ctx.budget.params()})
    return values


class Pruned(Exception):
    """Raised by an ``on_epoch`` hook to stop a weak candidate early."""


def evaluate(ctx: SearchContext, number: int, values: Mapping[str, Any],
             on_epoch: Callable[[int, float], None] | None = None,
             on_batch: Callable[[int, dict], None] | None = None,
             seen: Callable[[str], TrialRecord | None] | None = None, seed_of: int | None = None,
             on_built: Callable[[TrialRecord], None] | None = None) -> TrialRecord:
    """Gate, then train one candidate; never raises for a bad candidate, returns its record.

    It trains with seed ``ctx.seed + number``, or ``ctx.seed + seed_of`` when it repeats trial ``seed_of``
    (an interrupted trial trained again on resume starts from the same weights and data order).

    ``on_epoch(epoch, val_accuracy)`` may raise :class:`Pruned` to stop training early.
    ``seen(key)`` returns a finished trial with the same :func:`network_key` (after repair), if any:
    then nothing is trained (or built) and the record has status ``duplicate`` and that trial's score.
    ``on_built(record)``: called once the network that will train is built (its params and MACs known).
    """
    t0 = time.perf_counter()
    verdict, _ = gate.admit(ctx.budget, ctx.space, values, allow_repair=ctx.repair, build=False)
    key = network_key(ctx, verdict.values) if verdict.ok else ""
    prior = seen(key) if verdict.ok and seen is not None else None
    model = None
    seed = ctx.seed + (number if seed_of is None else seed_of)
    if verdict.ok and prior is None:  # build only what will train; the built model gives the exact count
        try:
            model = build_model(ctx.space, Candidate.of(verdict.values).network,
                                seed=seed)
            verdict = gate.judge_built(ctx.budget, ctx.space, model, verdict)
        except ValueError as exc:  # Keras refuses some combinations (e.g. stride with dilation)
            verdict = replace(verdict, ok=False, violations=(f"build: {exc}",))
        if not verdict.ok:
            model = None
    rec = TrialRecord(
        number=number, status="running", values=dict(verdict.values), params=verdict.total_params,
        trainable_params=verdict.trainable_params, macs=verdict.macs, final_rf=list(verdict.final_rf),
        architecture=verdict.architecture, repairs=list(verdict.repairs), key=key,
    )
    if not verdict.ok:
        rec.status, rec.reason = "rejected", "; ".join(verdict.violations)
        rec.wall_seconds = time.perf_counter() - t0
        return rec
    if prior is not None:
        rec.status, rec.val_accuracy = "duplicate", prior.val_accuracy
        rec.reason = f"the same network and recipe as trial {prior.number} ({prior.status}); not trained again"
        rec.wall_seconds = time.perf_counter() - t0
        return rec
    recipe = ctx.budget.train.resolve(verdict.values)
    if on_built is not None:
        on_built(rec)

    def epoch_hook(epoch: int, logs: dict) -> None:
        acc = float(logs.get("val_accuracy", 0.0))
        rec.curve.append(acc)
        rec.epochs, rec.val_accuracy = epoch, acc
        if on_epoch is not None:
            on_epoch(epoch, acc)

    from budgetnas.trainer import History, train  # imports TensorFlow: only when something trains

    history = History()  # filled as it trains: a pruned or failed trial's steps too (a distilled model's optimizer
    try:                 # is its distiller's, not the model's)
        train(model, ctx.train, ctx.val, recipe, ctx.epochs, seed=seed, classes=ctx.classes,
              on_epoch=epoch_hook, on_batch=on_batch, teacher_images=ctx.full_train, history=history)
        rec.status = "complete"
    except Pruned:
        rec.status, rec.reason = "pruned", f"pruned after epoch {rec.epochs}"
    except TrialFailed as exc:
        rec.status, rec.reason = "failed", str(exc)
    rec.steps = history.steps
    rec.wall_seconds = time.perf_counter() - t0
    return rec


def finished_with(study, key: str, key_of: Callable[[dict[str, Any]], str] | None = None,
                  min_epochs: int = 0) -> TrialRecord | None:
    """The first completed or pruned trial whose network + recipe key is ``key``, if any.

    Several workers asking at once, TPE late in a search and the repair (many samples, one network)
    all propose networks already trained; those are scored from the earlier trial instead. Trials
    recorded before keys existed are keyed from their values by ``key_of``. ``min_epochs``: only a
    trial that trained at least that many epochs counts (keras-tuner's Hyperband rungs).
    """
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for t in study.get_trials(deepcopy=False, states=done):
        attrs = t.user_attrs
        if attrs.get("status") not in ("complete", "pruned") or attrs.get("epochs", 0) < min_epochs:
            continue
        theirs = attrs.get("key") or (key_of(attrs["values"]) if key_of and "values" in attrs else "")
        if theirs == key:
            return TrialRecord(number=t.number, status=attrs["status"], val_accuracy=attrs.get("val_accuracy"),
                               epochs=attrs.get("epochs", 0))
    return None
