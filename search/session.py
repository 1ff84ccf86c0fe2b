"""A search session: ties budget, space, data and run directory together and hands them to a driver.

Also rebuilds the same context for an existing run (``--resume``, retraining), from ``run.json``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from budgetnas import data as data_mod
from budgetnas import gate
from budgetnas.budget import FROZEN, Budget, freeze, frozen_text, get_budget, load_frozen
from budgetnas.drivers.common import SearchContext
from budgetnas.errors import ConfigError, DataError, RunError
from budgetnas.runs import RunMeta, default_storage, load_meta, save_meta
from budgetnas.space import Space, load_space

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
    driver: str = "optuna"
    algorithm: str | None = None


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
    if opts.driver == "optuna" and opts.algorithm not in (None, "tpe", "random"):
        raise ConfigError(f"--algorithm {opts.algorithm}: the optuna driver runs tpe or random "
                          "(use --driver keras-tuner for the others)")
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
    freeze(budget, path)  # ... and the budget: retrain, report, export and workers read this copy
    meta = RunMeta(
        name=name, budget=budget.name, budgets_file=str(Path(budget.file).resolve()),
        space=str(Path(space_path).resolve()), dataset=budget.dataset, data_dir=opts.data_dir, seed=opts.seed,
        trials=opts.trials if opts.trials is not None else s.trials,
        timeout=opts.timeout if opts.timeout is not None else s.timeout, max_epochs=epochs,
        train_subset=opts.train_subset if opts.train_subset is not None else s.train_subset,
        storage=opts.storage or default_storage(path), study=name, driver=opts.driver,
        algorithm=opts.algorithm or ("tpe" if opts.driver == "optuna" else "hyperband"),
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


# ------------------------------------------------------------------ after the search
def protocol(meta_seed: int, budget: Budget, space: Space, train, val, test, epochs: int, seeds: list[int],
             name: str) -> dict:
    return {"name": name, "space": space.path, "seed": meta_seed, "validation": len(val),
            "train_images": len(train), "test_images": len(test), "epochs": epochs, "seeds": seeds,
            "input_shape": list(space.input_shape), "classes": space.classes}


def run_budget(path: Path, meta: RunMeta) -> Budget:
    """The budget a run was started with: its frozen copy (runs made before copies existed read
    the budgets file they name, else the default one)."""
    if (path / FROZEN).is_file():
        return load_frozen(path)
    return get_budget(meta.budget, meta.budgets_file if Path(meta.budgets_file).is_file() else None)


def open_run(path: Path) -> tuple[RunMeta, Budget, Space, list]:
    """A run's metadata, budget, searched space and trial records (none for a `train` run)."""
    from budgetnas.runs import load_records

    meta = load_meta(path)
    budget = run_budget(path, meta)
    space = load_space(path / "space.toml")
    records = load_records(path)[1] if meta.driver != "train" else []
    return meta, budget, space, records


def retrain_run(path: Path, top: int | None, seeds: int | None, epochs: int | None, data_dir: str | None,
                on_seed=None, on_epoch=None, resume: bool = False) -> list:
    """Retrain the top-K completed trials of a run with N seeds; save finalists, then the report.

    ``resume`` keeps the seeds an earlier, interrupted retrain of the same finalists finished and
    continues its unfinished seed from the last epoch checkpoint.
    """
    from budgetnas import finalists as fin_mod
    from budgetnas.runs import ranked

    meta, budget, space, records = open_run(path)
    top = top if top is not None else budget.search.finalists
    n_seeds = seeds if seeds is not None else budget.search.seeds
    epochs = epochs if epochs is not None else budget.epochs
    chosen = [r for r in ranked(records) if r.status == "complete"][:top]
    if not chosen:
        raise RunError(f"{path}: no completed trial to retrain")
    ds, train, val = load_data_splits(budget, space, data_dir or meta.data_dir, meta.seed)
    seed_list = [meta.seed + i for i in range(n_seeds)]
    proto = protocol(meta.seed, budget, space, train, val, ds.test, epochs, seed_list, meta.name)
    earlier = _earlier_finalists(path, epochs) if resume else {}
    done: list = []

    def after_seed(fin, seed: int, acc: float) -> None:
        # Save after every seed: a retrain stopped midway keeps what it finished.
        fin_mod.save(path, done + [fin], proto)
        if on_seed is not None:
            on_seed(fin.label, seed, acc)

    for r in chosen:
        recipe = budget.train.resolve(r.values)
        label = f"trial {r.number}"
        done.append(fin_mod.retrain(label, r.number, budget, space, r.values, recipe, train, val,
                                    ds.test, epochs, seed_list, path / "finalists", r.val_accuracy, after_seed,
                                    on_epoch, resume=resume, finished=earlier.get(label, [])))
    write_run_report(path)
    return done


def _earlier_finalists(path: Path, epochs: int) -> dict[str, list]:
    """The seeds an interrupted retrain finished, by finalist label (empty if it saved none)."""
    from budgetnas import finalists as fin_mod

    try:
        proto, fins = fin_mod.load(path)
    except RunError:
        proto, fins = {"epochs": epochs}, []
    if proto.get("epochs") != epochs:
        raise RunError(f"{path}: the earlier retrain ran {proto.get('epochs')} epochs, not {epochs}; "
                       "resume with the same --epochs")
    return {f.label: f.seeds for f in fins}


def train_fixed(space_path: str, budget: Budget, name: str, reports_dir: str, epochs: int | None,
                seeds: int, recipe_kind: str, data_dir: str | None, seed: int = 0, on_seed=None, on_epoch=None,
                resume: bool = False):
    """Train one fixed network (e.g. a hand-made baseline) through the same trainer and reporting.

    ``resume`` continues the interrupted run called ``name`` (see :func:`retrain_run`).
    """
    from budgetnas import finalists as fin_mod

    space = load_space(space_path)
    if space.params:
        raise ConfigError(f"{space_path}: has {len(space.params)} free choices; `train` needs a fixed space")
    if recipe_kind == "baseline":
        if budget.baseline_train is None:
            raise ConfigError(f"{budget.file}: budget {budget.name!r} has no baseline_train recipe")
        recipe = budget.baseline_train
    else:
        if budget.train.params():
            raise ConfigError(f"{budget.file}: {budget.name}.train has choices; `train` needs a fixed recipe")
        recipe = budget.train
    path = Path(reports_dir) / name
    if resume != (path / "run.json").exists():
        raise RunError(f"{path}: a run with this name exists; pick another --name or --resume it" if not resume
                       else f"{path}: no run to resume")
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(space_path, path / "space.toml")
    freeze(budget, path)
    space = load_space(path / "space.toml")  # like a search, the run folder's own copy is the finalist's space
    epochs = epochs or budget.epochs
    earlier = _earlier_finalists(path, epochs) if resume else {}
    meta = RunMeta(name=name, budget=budget.name, budgets_file=str(Path(budget.file).resolve()),
                   space=str(Path(space_path).resolve()), dataset=budget.dataset, data_dir=data_dir, seed=seed,
                   trials=0, timeout=0, max_epochs=epochs, train_subset=0, storage="", study="", driver="train")
    save_meta(path, meta)
    ds, train, val = load_data_splits(budget, space, data_dir, seed)
    seed_list = [seed + i for i in range(seeds)]
    proto = protocol(seed, budget, space, train, val, ds.test, epochs, seed_list, name)
    proto["recipe"] = recipe_kind
    def after_seed(fin, seed: int, acc: float) -> None:
        fin_mod.save(path, [fin], proto)
        if on_seed is not None:
            on_seed(fin.label, seed, acc)

    fin = fin_mod.retrain(space.name, None, budget, space, {}, recipe.resolve({}), train, val, ds.test, epochs,
                          seed_list, path / "finalists", None, after_seed, on_epoch,
                          resume=resume, finished=earlier.get(space.name, []))
    write_run_report(path)
    return fin


def write_run_report(path: Path) -> list[Path]:
    from budgetnas import finalists as fin_mod
    from budgetnas.report.document import write_report

    meta, budget, space, records = open_run(path)
    try:
        proto, fins = fin_mod.load(path)
    except RunError:
        proto, fins = {"name": meta.name, "space": space.path, "seed": meta.seed}, []
    return write_report(path, meta if meta.driver != "train" else None, budget, space, records, fins, proto)


# ------------------------------------------------------------------ several workers on one study
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
    path.mkdir(parents=True, exist_ok=True)
    (path / "space.toml").write_text(shared["space"], encoding="utf-8")
    meta = RunMeta(**shared["meta"])
    if "budget" in shared:
        (path / FROZEN).write_text(shared["budget"], encoding="utf-8")
    else:  # a study published before budgets were frozen carries the whole budgets file
        (path / "budgets.toml").write_text(shared["budgets"], encoding="utf-8")
        meta.budgets_file = str((path / "budgets.toml").resolve())
    meta.space = str((path / "space.toml").resolve())
    meta.storage = storage
    save_meta(path, meta)
    return path, meta, run_budget(path, meta), load_space(path / "space.toml")
