"""A search session: ties budget, space, data and run directory together and hands them to a driver.

Also rebuilds the same context for an existing run (``--resume``, retraining), from ``run.json``.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from search import data as data_mod
from search import gate
from search.budget import Budget, get_budget
from search.drivers.common import SearchContext
from search.errors import ConfigError, DataError, RunError
from search.runs import RunMeta, default_storage, load_meta, save_meta
from search.space import Space, load_space

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SearchOptions:
    budget: str
    budgets_file: str | None = None
    space: str | None = None
    trials: int | None = None
    timeout: float | None = None  # minutes
    name: str | None = None
    reports_dir: str = "reports"
    data_dir: str | None = None
    storage: str | None = None
    seed: int = 0
    max_epochs: int | None = None
    train_subset: int | None = None
    resume: bool = False


def load_data_splits(budget: Budget, space: Space, data_dir: str | None, seed: int):
    """The dataset, and the seeded stratified (train, validation) split of its training set."""
    ds = data_mod.load(budget.dataset, data_dir)
    if ds.shape != tuple(space.input_shape):
        raise DataError(f"{ds.source}: images are {ds.shape} but {space.path} expects input.shape "
                        f"{list(space.input_shape)}")
    if ds.classes > space.classes:
        raise DataError(f"{ds.source}: {ds.classes} classes but {space.path} has input.classes = {space.classes}")
    train, val = data_mod.split(ds.train, budget.validation, seed)
    return ds, train, val


def prepare(opts: SearchOptions) -> tuple[Path, RunMeta, Budget, Space]:
    """Create (or, with resume, reopen) the run directory; refuse to overwrite an existing run."""
    budget = get_budget(opts.budget, opts.budgets_file)
    if opts.resume:
        if not opts.name:
            raise ConfigError("--resume needs --name RUN (the run to continue)")
        path = Path(opts.reports_dir) / opts.name
        meta = load_meta(path)
        if meta.budget != budget.name:
            raise RunError(f"{path}: run was started with budget {meta.budget!r}, not {budget.name!r}")
        if opts.trials is not None:
            meta.trials = opts.trials
        save_meta(path, meta)
        return path, meta, budget, load_space(path / "space.toml")
    space_path = opts.space or budget.space
    space = load_space(space_path)
    name = opts.name or f"{budget.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not _RUN_NAME.match(name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '.', '_' and '-' only")
    path = Path(opts.reports_dir) / name
    if (path / "run.json").exists():
        raise RunError(f"{path}: a run with this name exists; continue it with --resume or pick another --name")
    gate.check_space_fits(budget, space)
    s = budget.search
    epochs = opts.max_epochs if opts.max_epochs is not None else s.epochs
    if not 1 <= epochs <= budget.epochs:
        raise ConfigError(f"--max-epochs {epochs}: must be between 1 and the budget's {budget.epochs} epochs")
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(space_path, path / "space.toml")  # the run keeps the exact space it searched
    meta = RunMeta(
        name=name, budget=budget.name, budgets_file=str(Path(budget.file).resolve()),
        space=str(Path(space_path).resolve()), dataset=budget.dataset, data_dir=opts.data_dir, seed=opts.seed,
        trials=opts.trials if opts.trials is not None else s.trials,
        timeout=opts.timeout if opts.timeout is not None else s.timeout, max_epochs=epochs,
        train_subset=opts.train_subset if opts.train_subset is not None else s.train_subset,
        storage=opts.storage or default_storage(path), study=name,
    )
    save_meta(path, meta)
    return path, meta, budget, space


def context(meta: RunMeta, budget: Budget, space: Space, data_dir: str | None = None) -> SearchContext:
    _, train, val = load_data_splits(budget, space, data_dir or meta.data_dir, meta.seed)
    train = data_mod.subset(train, meta.train_subset, meta.seed)
    return SearchContext(budget=budget, space=space, train=train, val=val, classes=space.classes,
                         epochs=meta.max_epochs, seed=meta.seed, repair=budget.search.repair)


def steps_per_epoch(ctx: SearchContext) -> int:
    bs = ctx.budget.train.batch_size
    size = bs if isinstance(bs, int) else min(bs.options)
    return math.ceil(len(ctx.train) / size)
