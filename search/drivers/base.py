"""The driver interface and its registry: which search libraries budgetnas drives, and what each can do.

A driver proposes candidates and hands each to :func:`budgetnas.drivers.common.evaluate` (gate, then trainer);
every driver records its trials in an Optuna study (the run's storage), so reports, leaderboards, workers and
resuming read one format. The CLI's ``--driver`` / ``--algorithm`` / ``--objective`` choices and a run's checks
come from :data:`DRIVERS`; a driver module is imported only when a run uses it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from budgetnas.errors import ConfigError

OBJECTIVES = ("accuracy", "front")  # the best network under the budget, or the accuracy–size front up to it


@dataclass(frozen=True)
class Driver:
    """One search library as budgetnas drives it.

    ``algorithms``: what ``--algorithm`` may name (the first is the default). ``objectives``: which of
    :data:`OBJECTIVES` it searches. ``start_points``: whether it trains a space's ``[[start]]`` networks first.
    ``module`` holds ``run(ctx, study, meta, path, *, resume, events, heartbeat, grace, patience)``.
    """

    name: str
    algorithms: tuple[str, ...]
    objectives: tuple[str, ...]
    start_points: bool
    module: str
    note: str

    def run(self, ctx, study, meta, path, **kw: Any) -> None:
        importlib.import_module(self.module).run_search(ctx, study, meta, path, **kw)

    def check(self, algorithm: str | None, objective: str) -> str:
        """The algorithm to run (``algorithm`` or the default); a :class:`ConfigError` for what it cannot do."""
        if algorithm is not None and algorithm not in self.algorithms:
            others = [d.name for d in DRIVERS.values() if algorithm in d.algorithms]
            raise ConfigError(f"--algorithm {algorithm}: the {self.name} driver runs {' or '.join(self.algorithms)}"
                              + (f" (use --driver {others[0]})" if others else ""))
        if objective not in self.objectives:
            raise ConfigError(f"--objective {objective}: the {self.name} driver searches "
                              f"{' or '.join(self.objectives)} only")
        return algorithm or self.algorithms[0]


DRIVERS = {d.name: d for d in (
    Driver("optuna", ("tpe", "random"), OBJECTIVES, True, "budgetnas.drivers.optuna_driver",
           "TPE or random sampling behind successive halving; single- or two-objective (front)"),
    Driver("keras-tuner", ("hyperband", "bayesian", "random"), ("accuracy",), False,
           "budgetnas.drivers.kerastuner_driver", "keras-tuner's oracles; single-objective"),
)}
DEFAULT = "optuna"


def get(name: str) -> Driver:
    if name not in DRIVERS:
        raise ConfigError(f"--driver {name}: unknown driver (known: {', '.join(DRIVERS)})")
    return DRIVERS[name]


def algorithms() -> tuple[str, ...]:
    """Every algorithm some driver runs, in registry order."""
    return tuple(dict.fromkeys(a for d in DRIVERS.values() for a in d.algorithms))
