"""The one mapping from a space's domains to each search library's types.

A :class:`~budgetnas.space.Domain` is an ordered integer range, an ordered float range (both with a
step) or a list of choices. Optuna and keras-tuner see the same thing: integer ranges as integer
ranges, float ranges as stepped float ranges (snapped back to the exact option written in the
space), choices as categorical. Both drivers, and the keras-tuner mirror into Optuna, use these.
"""

from __future__ import annotations

from typing import Any

import optuna

from budgetnas.space import Domain, Param


def _int_range(d: Domain) -> bool:
    return d.is_range and all(isinstance(o, int) for o in d.options)


def snap(d: Domain, value: Any) -> Any:
    """The option of ``d`` nearest to a value a library returned (float ranges come back inexact)."""
    if d.is_range and isinstance(value, float):
        return min(d.options, key=lambda o: abs(o - value))
    return value


def distribution(d: Domain) -> optuna.distributions.BaseDistribution:
    """Optuna's distribution for a domain."""
    if _int_range(d):
        return optuna.distributions.IntDistribution(int(d.low), int(d.high), step=int(d.step), log=d.log)
    if d.is_range:
        return optuna.distributions.FloatDistribution(float(d.low), float(d.high), step=float(d.step))
    return optuna.distributions.CategoricalDistribution(list(d.options))


def suggest(trial: optuna.trial.BaseTrial, p: Param) -> Any:
    """Ask an Optuna trial for one parameter (ordered ranges stay ordered for TPE)."""
    dist = distribution(p.domain)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(p.name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, optuna.distributions.FloatDistribution):
        return snap(p.domain, trial.suggest_float(p.name, dist.low, dist.high, step=dist.step))
    return trial.suggest_categorical(p.name, dist.choices)


def declare(hp, p: Param) -> None:
    """Declare one parameter on keras-tuner ``HyperParameters`` (inside any open conditional scope)."""
    d = p.domain
    if _int_range(d):
        hp.Int(p.name, int(d.low), int(d.high), step=None if d.log else int(d.step),
               sampling="log" if d.log else "linear")
    elif d.is_range:
        hp.Float(p.name, float(d.low), float(d.high), step=float(d.step))
    else:
        hp.Choice(p.name, list(d.options))
