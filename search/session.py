"""A run's lifecycle: create (or reopen) its folder, rebuild its context, and drive a search on it.

Also reopens an existing run (``--resume``, retraining, reports) from ``run.json`` and its frozen
budget, and re-scores its trials. Retraining lives in :mod:`budgetnas.retrain`, joining workers in
:mod:`budgetnas.workers`, the steps of one search process in :mod:`budgetnas.pipeline`.
"""

from __future__ import annotations

import math
import re
import shlex
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from budgetnas import data as data_mod
from budgetnas import gate
from budgetnas.budget import Budget, frozen_json, get_budget
from budgetnas.drivers import base as drivers
from budgetnas.drivers.common import SearchContext
from budgetnas.errors import ConfigError, DataError, RunError
from budgetnas.front import COSTS
from budgetnas.runs import RunMeta, default_storage, lay_out, library_versions, load_meta, run_budget, save_meta
from budgetnas.space import Space, load_space

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


DEFAULT_BUDGET = "mnist-15k"


def _option(default: Any, help: str, **cli: Any) -> Any:
    """A search option: its default and help, and how ``budgetnas search`` spells it (``cli``: argparse keywords;
    ``flag`` for another spelling than ``--name-with-dashes``; ``cli=False``: not a flag of ``search``)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class SearchOptions:
    """What a search is asked to do, declared once: ``budgetnas search``'s options (its parser is made from these
    fields, :func:`add_arguments`) and :func:`budgetnas.search`'s keyword arguments are these."""

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


def add_arguments(parser) -> None:
    """The :class:`SearchOptions` as flags of an ``argparse`` parser (``args.<field>`` holds each)."""
    types = {"int | None": int, "float | None": float, "str | None": str, "int": int, "str": str}
    for f in fields(SearchOptions):
        meta = dict(f.metadata)
        if meta.pop("cli", True) is False:
            continue
        flag = meta.pop("flag", "--" + f.name.replace("_", "-"))
        if "action" not in meta:
            meta["type"] = types[f.type]
        parser.add_argument(flag, dest=f.name, default=f.default, **meta)


def options(budget: str = DEFAULT_BUDGET, **given: Any) -> SearchOptions:
    """:class:`SearchOptions` from keyword arguments; an unknown one is one :class:`ConfigError` line naming it."""
    known = {f.name for f in fields(SearchOptions)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"search: no option {', '.join(unknown)} (options: {', '.join(sorted(known))})")
    return SearchOptions(budget=budget, **{k: (str(v) if isinstance(v, Path) else v) for k, v in given.items()})


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


def context(meta: RunMeta, budget: Budget, space: Space, data_dir: str | None = None) -> SearchContext:
    _, full, val = load_data_splits(budget, space, data_dir or meta.data_dir, meta.seed)
    return SearchContext(budget=budget, space=space, train=data_mod.subset(full, meta.train_subset, meta.seed), val=val,
                         classes=space.classes, epochs=meta.max_epochs, seed=meta.seed,
                         repair=budget.search.repair, full_train=full, objective=meta.objective, cost=meta.cost,
                         min_epochs=first_rung(meta, budget))


def first_rung(meta: RunMeta, budget: Budget) -> int:
    """The epoch of the run's first pruning rung: its ``--min-epochs``, else its budget's."""
    return meta.min_epochs if meta.min_epochs is not None else budget.search.min_epochs


def steps_per_epoch(ctx: SearchContext) -> int:
    bs = ctx.budget.train.batch_size
    size = bs if isinstance(bs, int) else min(bs.options)
    return math.ceil(len(ctx.train) / size)


# ------------------------------------------------------------------ an existing run
def fitting_budgets(meta: RunMeta, budget: Budget) -> dict[str, int]:
    """The named budgets of the run's budgets file on its dataset whose limit is within the run's: name → max
    params (a front search reports its best network under each)."""
    from budgetnas.budget import load_budgets

    source = meta.budgets_file if Path(meta.budgets_file).is_file() else None
    try:
        named = load_budgets(source)
    except ConfigError:
        named = {}
    out = {n: b.max_params for n, b in named.items() if b.dataset == budget.dataset and b.count == budget.count
           and b.max_params <= budget.max_params and b.search.objective != "front"}
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def open_run(path: Path) -> tuple[RunMeta, Budget, Space, list]:
    """A run's metadata, budget, searched space and trial records (none for a `train` run)."""
    from budgetnas.runs import load_records

    meta = load_meta(path)
    budget = run_budget(path, meta)
    space = load_space(path / "space.toml")
    records = load_records(path)[1] if meta.driver != "train" else []
    return meta, budget, space, records


def write_run_report(path: Path) -> list[Path]:
    from budgetnas import finalists as fin_mod
    from budgetnas.report.document import write_report

    meta, budget, space, records = open_run(path)
    if (path / fin_mod.FILE).exists():  # a damaged file is an error, not a run without finalists
        proto, fins = fin_mod.load(path)
    else:
        proto, fins = {"name": meta.name, "space": space.path, "seed": meta.seed}, []
    limits, baselines = {}, []
    if meta.objective == "front":
        limits = fitting_budgets(meta, budget)
        baselines = _baselines(meta, budget, limits)
    return write_report(path, meta if meta.driver != "train" else None, budget, space, records, fins, proto,
                        limits, baselines)


def _baselines(meta: RunMeta, budget: Budget, limits: dict[str, int]) -> list[tuple[str, int, float]]:
    """The hand-made baselines of the named budgets a front is drawn against: (label, params, published
    accuracy), each baseline network once."""
    from budgetnas.budget import load_budgets

    out, seen = [], set()
    for b in load_budgets(meta.budgets_file if Path(meta.budgets_file).is_file() else None).values():
        if b.name not in limits or not b.baseline_space or b.baseline_accuracy is None or b.baseline_space in seen:
            continue
        seen.add(b.baseline_space)
        try:
            base = load_space(b.baseline_space)
        except ConfigError:
            continue
        verdict = gate.judge(b, base, {})
        if verdict.total_params:
            out.append((f"{base.name} (published, test)", verdict.total_params, b.baseline_accuracy))
    return out




# ------------------------------------------------------------------ driving a search
def open_study(path: Path, meta: RunMeta, budget: Budget, create: bool, worker: bool = False):
    """The run's Optuna study (created with the run, or reopened); returns (study, trials to train again).

    An extra ``worker`` seeds its sampler apart from the run's seed (the split and trial seeds stay
    the run's): samplers with one seed propose the same networks in the same order. On resuming, trials
    left RUNNING by a dead process of this run and trials stopped by Ctrl-C / SIGTERM are enqueued to
    train again with their values and seeds, and the sampler is seeded apart from the first process's.
    """
    import optuna

    from budgetnas.drivers import optuna_driver
    from budgetnas.storage import open_storage
    from budgetnas.workers import publish

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = optuna_driver.worker_seed(meta.seed) if worker else meta.seed
    algorithm = meta.algorithm if meta.driver == "optuna" else "tpe"
    study = optuna_driver.make_study(meta.storage, meta.study, seed, first_rung(meta, budget), meta.max_epochs,
                                     load_if_exists=not create, algorithm=algorithm, objective=meta.objective,
                                     cost=meta.cost)
    if create:
        publish(study, path, meta)
    if create or worker:
        return study, []
    if meta.driver != "optuna":  # keras-tuner's oracle keeps its own trial count: its dead trials just fail
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        return study, []
    optuna_driver.fail_stale(study, open_storage(meta.storage))
    again = optuna_driver.resume_interrupted(study)
    optuna_driver.reseed(study, algorithm, meta.seed)
    return study, again


@dataclass
class Search:
    """One process's part in a run's search: its data and study, opened by :func:`begin`.

    ``again``: the trials an interrupted process left, trained again first. :func:`budgetnas.pipeline.drive`
    (what the CLI and :func:`budgetnas.search` run) calls :meth:`run`, then :meth:`rescore`.
    """

    path: Path
    meta: RunMeta
    budget: Budget
    space: Space
    ctx: SearchContext
    study: object
    again: list[int]
    created: bool  # the run started here (else: resumed, or joined by a worker)
    worker: bool = False

    def records(self) -> list:
        from budgetnas.runs import records_from_study

        return records_from_study(self.study)

    def run(self, hooks=None, *, heartbeat: float | None = None, grace: float | None = None,
            patience: float | None = None) -> None:
        """Train trials until the run's count is reached. ``hooks``: a display (on_start/on_epoch/on_batch/on_done).

        Raises:
            KeyboardInterrupt: Ctrl-C or SIGTERM (:class:`budgetnas.interrupts.Terminated`); finished trials are
                saved and :meth:`resume_command` continues.
            budgetnas.storage.StorageLost: the storage stayed away for ``patience`` seconds.
        """
        from budgetnas import storage

        run_search(self.ctx, self.study, self.path, self.meta, resume=not self.created, hooks=hooks or _Silent(),
                   heartbeat=storage.HEARTBEAT_S if heartbeat is None else heartbeat,
                   grace=storage.GRACE_S if grace is None else grace,
                   patience=storage.PATIENCE_S if patience is None else patience)

    @property
    def rescores(self) -> int:
        """How many top trials this search re-scores after it (0 for a worker or a front)."""
        return 0 if self.worker or self.ctx.front else self.budget.search.rescore

    def rescore(self, on_rescored=None) -> int:
        """Re-score the budget's ``search.rescore`` best trials (:func:`rescore_top`); returns how many trained."""
        return rescore_top(self.ctx, self.study, self.rescores, on_rescored) if self.rescores else 0

    def resume_command(self) -> str:
        return resume_command(self.path, self.meta, self.worker)


class _Silent:
    """Hooks that show nothing (a search driven from code without a display)."""

    def on_start(self, number): ...
    def on_epoch(self, number, epoch, acc): ...
    def on_batch(self, step, logs): ...
    def on_done(self, rec): ...


def begin(path: Path, meta: RunMeta, budget: Budget, space: Space, *, create: bool, worker: bool = False,
          data_dir: str | None = None) -> Search:
    """Load the run's data and open its study (:func:`open_study`): what every search process does first."""
    ctx = context(meta, budget, space, data_dir)
    study, again = open_study(path, meta, budget, create=create, worker=worker)
    if create and meta.start:
        from budgetnas.drivers import optuna_driver

        optuna_driver.enqueue_start(study, space, meta.start)
    return Search(path, meta, budget, space, ctx, study, again, created=create, worker=worker)


def resume_command(path: Path, meta: RunMeta, worker: bool = False) -> str:
    """The command that continues this run, as it must be typed (the folder and storage that locate it)."""
    where = "" if path.parent == Path("reports") else f" --reports-dir {shlex.quote(str(path.parent))}"
    if worker:
        return f"budgetnas worker {meta.name} --storage {shlex.quote(meta.storage)}{where}"
    return f"budgetnas search --budget {meta.budget} --name {meta.name} --resume{where}"


def run_search(ctx: SearchContext, study, path: Path, meta: RunMeta, resume: bool, hooks,
               heartbeat: float, grace: float, patience: float) -> None:
    """Hand the run to its driver; ``hooks`` (a display) gets on_start/on_epoch/on_batch/on_done."""
    events = dict(on_start=hooks.on_start, on_epoch=hooks.on_epoch, on_batch=hooks.on_batch, on_done=hooks.on_done)
    drivers.get(meta.driver).run(ctx, study, meta, path, resume=resume, events=events, heartbeat=heartbeat,
                                 grace=grace, patience=patience)


RESCORE_SEED = 100_003  # a re-scoring run of trial n trains with seed + n + this: apart from every trial's own


def rescore_top(ctx: SearchContext, study, k: int, on_rescored=None) -> int:
    """Train the ``k`` best completed trials again, on all training images for the search's epochs.

    Finalists are then chosen among them by this score alone (:func:`budgetnas.runs.ranked`). Measured on
    the mnist-8k ranking benchmark (``benchmarks/ranking/proxy_table.md``): the search's own score is off
    by its short training's bias more than by seed noise; in simulated searches a second seed at the same
    fidelity picked no better, while re-scoring the top 3 on all 55k images cut the pick's expected
    shortfall below the best by 0.03-0.04 points; on the 18 finished searches of
    ``benchmarks/search_vs_random`` it raised the picks' full-fidelity validation by +0.04 ± 0.02 points on
    average (six better, two worse), and by -0.00 ± 0.01 on the same searches' first 12 trials (mnist-8k's
    trial count; one better, three worse). Below the 0.1-point noise floor, so ``search.rescore`` is 0 (off).
    Returns how many were trained (:func:`rescore_trials`).
    """
    return rescore_trials(ctx, study, best_completed(study, k), on_rescored)


def best_completed(study, k: int) -> list[int]:
    """The numbers of the ``k`` best completed trials by the search's own score (then fewer params)."""
    from budgetnas.runs import records_from_study

    completed = [r for r in records_from_study(study) if r.status == "complete" and r.val_accuracy is not None]
    return [r.number for r in sorted(completed, key=lambda r: (-r.val_accuracy, r.params or 0))[:k]]


def rescore_trials(ctx: SearchContext, study, numbers: list[int], on_rescored=None) -> int:
    """Train trials ``numbers`` again (:func:`rescore_one`), saving each score in the study as it finishes, so a
    resumed or repeated call trains only what is missing; ``on_rescored(number, search score, new score)``
    after each. Returns how many were trained.

    Raises:
        RunError: no such trial, or one that was not trained (rejected by the gate, failed, a duplicate).
    """
    from budgetnas.runs import RESCORES, records_from_study

    by_number = {r.number: r for r in records_from_study(study)}
    for n in numbers:
        if n not in by_number:
            raise RunError(f"study {study.study_name}: no trial {n}")
        if by_number[n].status not in ("complete", "pruned"):
            raise RunError(f"study {study.study_name}: trial {n} is {by_number[n].status}, not a trained network "
                           "to re-score")
    done = dict(study.user_attrs.get(RESCORES, {}))
    trained = 0
    for n in numbers:
        if str(n) in done:
            continue
        r = by_number[n]
        done[str(n)] = rescore_one(ctx, n, r.values)
        study.set_user_attr(RESCORES, done)
        trained += 1
        if on_rescored is not None:
            on_rescored(n, r.val_accuracy, done[str(n)])
    return trained


def rescore_one(ctx: SearchContext, number: int, values: dict) -> float:
    """Trial ``number`` (its sampled ``values``) trained again on all training images for the search's epochs,
    with its own re-scoring seed; the final validation accuracy. The same trial always gets the same seed."""
    from budgetnas.trainer import fit_candidate

    seed = ctx.seed + number + RESCORE_SEED
    _, h, _ = fit_candidate(ctx.space, values, ctx.budget.train.resolve(values), ctx.full_train, ctx.val, ctx.epochs,
                            seed=seed)
    return h.val_accuracy[-1]
