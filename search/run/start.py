"""Starting a run: create its folder (or reopen it to resume), a folder that trains one fixed network, a branch of a
run under a changed recipe, or join a run as one more worker from its storage.

A run folder is laid out once (:func:`budgetnas.run.folder.lay_out`); the study carries what a worker needs to join
from any machine (:func:`publish`).
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from dataclasses import replace
from pathlib import Path

from budgetnas import files, finalists, gate
from budgetnas.budget import FROZEN, Budget, Recipe, frozen_json, frozen_text, get_budget, parse_budget
from budgetnas.drivers import base as drivers
from budgetnas.errors import ConfigError, RunError
from budgetnas.run.folder import (RunMeta, default_storage, lay_out, library_versions, load_meta, run_budget,
                                  save_meta)
from budgetnas.run.options import SearchOptions
from budgetnas.space import Space, load_space


_ATTR = "budgetnas"


def publish(study, path: Path, meta: RunMeta) -> None:
    """Put what a worker needs into the study itself: run metadata, the space and the frozen budget."""
    study.set_user_attr(_ATTR, {"meta": json.loads(meta.to_json()),
                                "space": (path / "space.toml").read_text(encoding="utf-8"),
                                "budget": frozen_text(path)})


def join(run: str, storage: str, reports_dir: str) -> tuple[Path, RunMeta, Budget, Space]:
    """Open another worker's run from its storage alone (any machine); mirror it under reports_dir."""
    import optuna

    from budgetnas.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=run, storage=open_storage(storage))
    except KeyError:
        raise RunError(f"no study named {run!r} in {storage.split('@')[-1]}") from None
    shared = study.user_attrs.get(_ATTR)
    if shared is None:
        raise RunError(f"study {run!r} was not started by `budgetnas search` (no run metadata in it)")
    path = Path(reports_dir) / run
    meta = RunMeta(**shared["meta"])
    meta.space, meta.storage = str((path / "space.toml").resolve()), storage
    if "budget" in shared:
        lay_out(path, meta, space=shared["space"], budget=shared["budget"])
    else:  # a study published before budgets were frozen carries the whole budgets file
        path.mkdir(parents=True, exist_ok=True)
        files.write_text(path / "space.toml", shared["space"])
        files.write_text(path / "budgets.toml", shared["budgets"])
        meta.budgets_file = str((path / "budgets.toml").resolve())
        save_meta(path, meta)
    return path, meta, run_budget(path, meta), load_space(path / "space.toml")


_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def prepare(opts: SearchOptions) -> tuple[Path, RunMeta, Budget, Space]:
    """Create (or, with resume, reopen) the run directory; refuse to overwrite an existing run."""
    if opts.resume:
        if not opts.name:
            raise ConfigError("--resume needs --name RUN (the run to continue)")
        path = Path(opts.reports_dir) / opts.name
        meta = load_meta(path)
        if meta.budget != opts.budget:
            raise RunError(f"{path}: run was started with budget {meta.budget!r}, not {opts.budget!r}")
        if opts.trials is not None:
            meta.trials = opts.trials
        save_meta(path, meta)
        return path, meta, run_budget(path, meta), load_space(path / "space.toml")
    budget = get_budget(opts.budget, opts.budgets_file)
    driver = drivers.get(opts.driver)
    space = load_space(opts.space or budget.space)
    space_path = space.path  # a bare name (`--space mnist_tiny`) resolves to the shipped file
    name = opts.name or f"{budget.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not _RUN_NAME.match(name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '.', '_' and '-' only")
    path = Path(opts.reports_dir) / name
    if (path / "run.json").exists():
        raise RunError(f"{path}: a run with this name exists; continue it with --resume or pick another --name")
    gate.check_space_fits(budget, space)
    s = budget.search
    objective, cost = opts.objective or s.objective, opts.cost or s.cost
    algorithm = driver.check(opts.algorithm, objective)
    epochs = opts.max_epochs if opts.max_epochs is not None else s.epochs
    if not 1 <= epochs <= budget.epochs:
        raise ConfigError(f"--max-epochs {epochs}: must be between 1 and the budget's {budget.epochs} epochs")
    if opts.min_epochs is not None and opts.min_epochs < 1:
        raise ConfigError(f"--min-epochs {opts.min_epochs}: must be at least 1 (equal to --max-epochs: no pruning)")
    meta = RunMeta(
        name=name, budget=budget.name, budgets_file=str(Path(budget.file).resolve()),
        space=str(Path(space_path).resolve()), dataset=budget.dataset, data_dir=opts.data_dir, seed=opts.seed,
        trials=opts.trials if opts.trials is not None else s.trials,
        timeout=opts.timeout if opts.timeout is not None else s.timeout, max_epochs=epochs,
        train_subset=opts.train_subset if opts.train_subset is not None else s.train_subset,
        storage=opts.storage or default_storage(path), study=name, driver=opts.driver,
        algorithm=algorithm,
        objective=objective, cost=cost, min_epochs=opts.min_epochs, versions=library_versions(),
        start=[label for label, _ in space.start] if opts.start and driver.start_points else [],
    )
    lay_out(path, meta, space=Path(space_path).read_text(encoding="utf-8"), budget=frozen_json(budget))
    return path, meta, budget, space


def prepare_fixed(space_path: str, budget: Budget, *, name: str, reports_dir: str = "reports",
                  epochs: int | None = None, recipe_kind: str = "budget", data_dir: str | None = None, seed: int = 0,
                  resume: bool = False, seeds: int = 1) -> tuple[Path, RunMeta, Space, Recipe]:
    """The folder of a run that trains one fixed network (``budgetnas train``), created (or, ``resume``, reopened):
    its path, metadata, the folder's copy of the space and the recipe (the budget's, or ``recipe_kind`` =
    "baseline": its ``baseline_train``). The frozen budget states how the network is trained (see
    :func:`fixed_table`), so that ``retrain`` of the run, or of a branch of it, trains it the same way."""
    space = load_space(space_path)
    space_path = space.path  # a bare name resolves to the shipped file
    if space.params:
        raise ConfigError(f"{space_path}: has {len(space.params)} free choices; `train` needs a fixed space")
    if recipe_kind == "baseline" and budget.baseline_train is None:
        raise ConfigError(f"{budget.file}: budget {budget.name!r} has no baseline_train recipe")
    if recipe_kind != "baseline" and budget.train.params():
        raise ConfigError(f"{budget.file}: {budget.name}.train has choices; `train` needs a fixed recipe")
    path = Path(reports_dir) / name
    if resume != (path / "run.json").exists():
        raise RunError(f"{path}: a run with this name exists; pick another --name or --resume it" if not resume
                       else f"{path}: no run to resume")
    meta = RunMeta(name=name, budget=budget.name, budgets_file=str(Path(budget.file).resolve()),
                   space=str(Path(space_path).resolve()), dataset=budget.dataset, data_dir=data_dir, seed=seed,
                   trials=0, timeout=0, max_epochs=epochs or budget.epochs, train_subset=0, storage="", study="",
                   driver="train")
    frozen = json.loads(frozen_json(budget))
    frozen["table"] = fixed_table(frozen["table"], recipe_kind, seeds)
    lay_out(path, meta, space=Path(space_path).read_text(encoding="utf-8"), budget=json.dumps(frozen, indent=1))
    # like a search: the folder's own copy of the space, and the recipe its frozen budget names (as `retrain` reads it)
    return path, meta, load_space(path / "space.toml"), run_budget(path, meta).train


def fixed_table(table: dict, recipe_kind: str, seeds: int) -> dict:
    """A fixed network's budget table as its run freezes it: the recipe it trains under as ``train`` (with
    ``recipe_kind`` "baseline", the budget's ``baseline_train``) and its number of seeds as ``search.seeds``."""
    table = dict(table)
    if recipe_kind == "baseline":
        table["train"] = dict(table["baseline_train"])
    table["search"] = {**table.get("search", {}), "seeds": seeds}
    return table


def branch(path: Path, name: str, changes: list[str]) -> Path:
    """A new run folder ``name`` beside ``path``: the same study, space and split, its recipe changed.

    ``changes`` are ``FIELD=VALUE`` strings for the budget's ``[train]`` table (``ema=0.999``,
    ``augment=crop-flip-cutout``); values are read as TOML, else taken as text. The frozen budget of the
    new folder holds them, so ``retrain`` of it trains the same finalists under the changed recipe and
    its validation accuracy can be compared with the original's; the original run is left as it is.
    """
    if not (name and changes):
        raise ConfigError("retrain: --recipe FIELD=VALUE and --as NAME go together and start a new run folder "
                          "(continue an interrupted one with `retrain NAME --resume`)")
    target = path.parent / name
    if target.exists():
        raise RunError(f"{target}: exists; pick another --as name")
    meta = load_meta(path)
    if (path / FROZEN).is_file():
        frozen = files.read_json(path / FROZEN, "the run's frozen budget")
    else:  # a run made before runs froze their budget: the budget it names, frozen now
        frozen = json.loads(frozen_json(run_budget(path, meta)))
        if meta.driver == "train" and (path / finalists.FILE).is_file():  # as its network was trained
            proto = finalists.load(path)[0]  # a damaged file: one line naming it
            frozen["table"] = fixed_table(frozen["table"], proto.get("recipe", "budget"), len(proto["seeds"]))
    train = dict(frozen["table"].get("train", {}))
    for change in changes:
        field, sep, raw = change.partition("=")
        if not sep or not field.strip():
            raise ConfigError(f"--recipe {change!r}: write FIELD=VALUE, e.g. ema=0.999")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        train[field.strip()] = value
    frozen["table"]["train"] = train
    parse_budget(frozen["name"], frozen["table"], "--recipe", path)  # one line naming the field if a value is bad
    # the storage and study stay the original run's
    lay_out(target, replace(meta, name=name), space=(path / "space.toml").read_text(encoding="utf-8"),
            budget=json.dumps(frozen, indent=1))
    return target
