"""What a search is asked to do, declared once: the keyword arguments of :func:`budgetnas.search` and the flags of
``budgetnas search`` are the fields of :class:`SearchOptions`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from budgetnas.drivers import base as drivers
from budgetnas.errors import ConfigError
from budgetnas.front import COSTS
from budgetnas.storage import GRACE_S, HEARTBEAT_S, PATIENCE_S


DEFAULT_BUDGET = "mnist-15k"


def _option(default: Any, help: str, **cli: Any) -> Any:
    """A search option: its default and help, and how ``budgetnas search`` spells it (``cli``: argparse keywords;
    ``flag`` for another spelling than ``--name-with-dashes``; ``cli=False``: not a flag of ``search``)."""
    return field(default=default, metadata={"help": help, **cli})


def _positive_int(text: str) -> int:
    import argparse

    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, not {n}")
    return n


@dataclass(frozen=True)
class SearchOptions:
    """What a search is asked to do, declared once: ``budgetnas search``'s options (its parser is made from these
    fields, :func:`add_arguments`) and :func:`budgetnas.search`'s keyword arguments are these. The run records the
    first ones in ``run.json``; the last five say how this process runs it."""

    budget: str = _option(DEFAULT_BUDGET, f"named budget (default: {DEFAULT_BUDGET})")
    budgets_file: str | None = _option(None, "budgets file (the global --budgets)", cli=False)
    space: str | None = _option(None, "space file or shipped space name (default: the budget's)")
    trials: int | None = _option(None, "total trials (default: the budget's)")
    timeout: float | None = _option(None, "stop proposing after this many minutes")
    name: str | None = _option(None, "run name (default: BUDGET-TIMESTAMP)")
    reports_dir: str = _option("reports", "the folder run folders go in")
    data_dir: str | None = _option(None, "folder with <dataset>.npz (else $BUDGETNAS_DATA_DIR)")
    storage: str | None = _option(None, "Optuna storage URL (default: SQLite in the run folder)")
    seed: int = _option(0, "the run's seed: validation split, sampler, weights")
    max_epochs: int | None = _option(None, "epochs per candidate during the search (default: the budget's)")
    train_subset: int | None = _option(None, "train candidates on this many images (0 = all)")
    resume: bool = _option(False, "continue the run named by --name", action="store_true")
    driver: str = _option(drivers.DEFAULT, "; ".join(f"{d.name}: {d.note}" for d in drivers.DRIVERS.values()),
                          choices=tuple(drivers.DRIVERS))
    algorithm: str | None = _option(None, "; ".join(f"{d.name}: {', '.join(d.algorithms)} (default "
                                                    f"{d.algorithms[0]})" for d in drivers.DRIVERS.values()),
                                    choices=drivers.algorithms())
    objective: str | None = _option(None, "accuracy: the best network under the budget; front: the accuracy–size "
                                          "front up to it (default: the budget's search.objective)",
                                    choices=drivers.OBJECTIVES)
    cost: str | None = _option(None, "a front's second objective (default: params)", choices=COSTS)
    min_epochs: int | None = _option(None, "the first pruning rung, optuna driver (default: the budget's); as many as "
                                           "--max-epochs: no pruning, every candidate trains in full")
    start: bool = _option(True, "do not begin with the space's start points (its [[start]] tables; optuna driver)",
                          flag="--no-start", action="store_false")
    # how this process runs the search (not recorded in the run)
    retrain: bool = _option(True, "skip retraining the finalists at the end", flag="--no-retrain",
                            action="store_false")
    jobs: int | None = _option(None, "seeds trained at once, each in its own process (default: all of them, up to 2 "
                                     "per CPU core; 1 when a GPU is visible)", type=_positive_int)
    heartbeat: float = _option(HEARTBEAT_S, "seconds between a trial's heartbeats")
    grace: float = _option(GRACE_S, "a running trial without a heartbeat for this long is failed and retried")
    patience: float = _option(PATIENCE_S, "seconds to wait for a storage that is away (database down, disk full) "
                                          "before stopping; the run stays resumable")



def add_arguments(parser, only: tuple[str, ...] | None = None) -> None:
    """The :class:`SearchOptions` (``only`` these, if given) as flags of an ``argparse`` parser (``args.<field>``
    holds each)."""
    types = {"int | None": int, "float | None": float, "str | None": str, "int": int, "str": str, "float": float}
    for f in fields(SearchOptions):
        meta = dict(f.metadata)
        if meta.pop("cli", True) is False or (only is not None and f.name not in only):
            continue
        flag = meta.pop("flag", "--" + f.name.replace("_", "-"))
        if "action" not in meta:
            meta.setdefault("type", types[f.type])
        parser.add_argument(flag, dest=f.name, default=f.default, **meta)


def from_arguments(args, budgets_file: str | None = None) -> SearchOptions:
    """The :class:`SearchOptions` a parser made by :func:`add_arguments` read (``budgets_file``: the global flag)."""
    return SearchOptions(**{f.name: getattr(args, f.name) for f in fields(SearchOptions) if hasattr(args, f.name)
                            and f.name != "budgets_file"}, budgets_file=budgets_file)


def options(budget: str = DEFAULT_BUDGET, **given: Any) -> SearchOptions:
    """:class:`SearchOptions` from keyword arguments; an unknown one is one :class:`ConfigError` line naming it."""
    known = {f.name for f in fields(SearchOptions)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"search: no option {', '.join(unknown)} (options: {', '.join(sorted(known))})")
    return SearchOptions(budget=budget, **{k: (str(v) if isinstance(v, Path) else v) for k, v in given.items()})
