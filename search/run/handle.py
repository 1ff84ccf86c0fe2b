"""A run's public face: :class:`Run` (a run folder: trials, leaderboard, re-scoring, finalists, report, export) and
the functions that make or open one: :func:`search`, :func:`join`, :func:`train`, :func:`open_run`.

``budgetnas search``, ``worker``, ``train``, ``retrain``, ``leaderboard``, ``report`` and ``export`` call these and
only show what comes back; a Ctrl-C or SIGTERM in a step comes out as :class:`budgetnas.errors.Stopped`
(what is kept, the command that continues).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from budgetnas.budget import Budget
from budgetnas.report.leaderboard import Board
from budgetnas.space import load_space

if TYPE_CHECKING:
    from collections.abc import Callable


class Run:
    """A run folder (``reports/<name>/``): its trials, leaderboard or front, finalists, report and export.

    Example:
        >>> run = budgetnas.open_run("mnist-15k-20261204-101500")
        >>> run.leaderboard(top=3)
    """

    def __init__(self, path: str | Path, *, storage: str | None = None):
        from budgetnas.run.folder import load_meta

        self.path = Path(path)
        self.meta = load_meta(self.path)  # a missing or damaged run is one RunError line here
        self.storage = storage  # read the trials from this storage URL rather than the run's own

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, budget={self.meta.budget!r}, objective={self.meta.objective!r})"

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def budget(self) -> Budget:
        """The budget the run froze when it started."""
        from budgetnas.run.folder import run_budget

        return run_budget(self.path, self.meta)

    def records(self) -> list:
        """Every trial record, in trial order (read from the run's storage: a search may still be running)."""
        from budgetnas.run.folder import load_records

        return load_records(self.path, self.storage)[1]

    def leaderboard(self, *, top: int = 10, front: bool | None = None) -> Board:
        """The best trials by validation score, or (``front``; the default for a front search) the front."""
        return Board.of(self.meta, self.budget, self.records(), top=top, front=front)

    def hypervolume(self, *, ref_accuracy: float, ref_cost: float, log_cost: bool = True) -> float:
        """How much its front of validation accuracy against cost (the run's: params or MACs) dominates: the
        area above ``ref_accuracy`` and below ``ref_cost``, cost on a log10 axis unless ``log_cost`` is False
        (accuracy as a fraction: the area is in fraction × decades). A larger area: a better front.

        Example:
            >>> run.hypervolume(ref_accuracy=0.90, ref_cost=15_000)
            0.0599
        """
        from budgetnas import front

        pts = [front.Point(r.val_accuracy, front.cost_of(r, self.meta.cost))
               for r in front.front_records(self.records(), self.meta.cost)]
        return front.hypervolume(pts, front.Point(ref_accuracy, ref_cost), log_cost)

    def retrain(self, *, top: int | None = None, seeds: int | None = None, epochs: int | None = None,
                front: int | None = None, start: bool = False, resume: bool = False, jobs: int | None = None,
                data_dir: str | None = None, on_seed: Callable | None = None,
                on_epoch: Callable | None = None) -> list:
        """Retrain the best ``top`` trials (or, with ``front``, points of the front: see ``budgetnas retrain
        --front``) with ``seeds`` seeds for ``epochs`` epochs; test scored once per seed. Returns the finalists
        and writes the report. ``start``: the space's start points the search trained are retrained too (see
        :func:`budgetnas.run.retrain.retrain_run`); a run of one fixed network (:func:`budgetnas.train`) retrains
        that network. ``on_seed(label, seed, test accuracy)`` after each seed,
        ``on_epoch(label, seed, epoch, logs)`` after each epoch.

        Raises:
            budgetnas.errors.Stopped: Ctrl-C or SIGTERM; finished seeds are saved, ``resume=True`` continues.
        """
        from budgetnas.run.commands import command
        from budgetnas.run.pipeline import stopping
        from budgetnas.run.retrain import retrain_run

        again = command(["retrain", str(self.path), *(["--start"] if start else [])],
                        [("--top", top), ("--front", front), ("--seeds", seeds), ("--epochs", epochs),
                         ("--data-dir", data_dir)])
        if front is None and self.meta.objective == "front" and top is None:
            front = 0
        with stopping("every finished seed is saved", again):
            return retrain_run(self.path, top=top, seeds=seeds, epochs=epochs, data_dir=data_dir, on_seed=on_seed,
                               on_epoch=on_epoch, resume=resume, jobs=jobs, front=front, start=start)

    def branch(self, name: str, changes: list[str]) -> "Run":
        """A new run folder ``name`` beside this one: the same study, space and split, its recipe changed by
        ``FIELD=VALUE`` strings (``["ema=0.999"]``); :meth:`retrain` it to compare on validation."""
        from budgetnas.run.start import branch

        return Run(branch(self.path, name, changes))

    def finalists(self) -> list:
        """The retrained finalists (empty before :meth:`retrain`)."""
        from budgetnas import finalists as fin_mod

        return fin_mod.load(self.path)[1] if (self.path / fin_mod.FILE).exists() else []

    def winner(self):
        """The finalist the run reports and exports, chosen on validation (its final fit on all images where the
        run made one); None before :meth:`retrain`. Its ``chosen_seed()`` is the seed whose weights are exported."""
        from budgetnas import finalists as fin_mod

        return fin_mod.winner(self.finalists())

    def rescore(self, top: int | None = None, *, trials: list[int] | None = None, data_dir: str | None = None,
                on_rescored: Callable[[int, float, float], None] | None = None) -> dict[int, float]:
        """Train trials again on all training images for the search's epochs, each with its own fixed seed, and
        keep the new validation score in the run: the leaderboard and :meth:`retrain` then rank re-scored trials
        first, by it (what a budget's ``search.rescore = K`` does when its search ends). ``top``: the K best
        completed trials by their search score; ``trials``: these trial numbers. A trial re-scored before is not
        trained again. ``on_rescored(number, search score, new score)`` after each training.
        Returns {trial number: re-scored validation accuracy} for the trials asked.

        Raises:
            budgetnas.errors.RunError: a trial that does not exist or was never trained.

        Example:
            >>> run.rescore(top=3)
            {11: 0.9902, 13: 0.9898, 4: 0.9904}
        """
        from budgetnas.errors import ConfigError, RunError
        from budgetnas.run.folder import RESCORES
        from budgetnas.run.rescore import best_completed, rescore_trials
        from budgetnas.run.search import context, open_study

        if (top is None) == (trials is None):
            raise ConfigError("rescore: give top=K or trials=[numbers], one of them")
        if self.meta.driver == "train":
            raise RunError(f"{self.path}: a `budgetnas train` run has no searched trials to re-score")
        budget = self.budget
        ctx = context(self.meta, budget, load_space(self.path / "space.toml"), data_dir)
        # as a worker: the study's trials stay as they are (a resume would fail the running ones)
        study, _ = open_study(self.path, self.meta, budget, create=False, worker=True)
        numbers = best_completed(study, top) if trials is None else list(trials)
        rescore_trials(ctx, study, numbers, on_rescored)
        done = study.user_attrs.get(RESCORES, {})
        return {n: done[str(n)] for n in numbers}

    def report(self) -> list[Path]:
        """(Re)write ``report.md``, ``report.html``, the plots and ``trials.csv``; returns their paths."""
        from budgetnas.run.report import write_run_report

        return write_run_report(self.path)

    def export(self, *, trial: int | None = None, formats: list[str] | None = None, out: str | Path | None = None,
               data_dir: str | None = None, on_check: Callable | None = None) -> Path:
        """Export a finalist (default: the winner on validation) as ``.keras``, SavedModel, TFLite float32 and
        int8 with its model card, each format checked on the test set; returns the folder. ``on_check(finalist
        label, check)`` for each format's check (:class:`budgetnas.export.Check`: ``ok``, ``line()``)."""
        from budgetnas.export import export_run

        chosen, checks, folder = export_run(self.path, trial, formats, Path(out) if out else None, data_dir)
        for c in checks:
            if on_check is not None:
                on_check(chosen.label, c)
        return folder


def open_run(name: str | Path, *, reports_dir: str | Path = "reports", storage: str | None = None) -> Run:
    """An existing run, by name (under ``reports_dir``) or by its folder; ``storage``: read its trials from this
    storage URL instead of the one the run recorded.

    Raises:
        budgetnas.errors.RunError: no such run, or its ``run.json`` is damaged.
    """
    from budgetnas.run.folder import run_dir

    return Run(run_dir(str(name), reports_dir), storage=storage)


def search(budget: str = "mnist-15k", *, hooks=None, progress: bool = False, **options) -> Run:
    """Run a budgeted search (what ``budgetnas search`` runs), then retrain its finalists unless ``retrain=False``;
    returns the :class:`Run`. ``options`` are ``budgetnas search``'s options, by the same names
    (:class:`budgetnas.run.options.SearchOptions` declares them once for both): ``space``, ``trials``, ``name``,
    ``seed``, ``objective``, ``cost``, ``max_epochs``, ``min_epochs``, ``train_subset``, ``timeout``, ``driver``,
    ``algorithm``, ``storage``, ``reports_dir``, ``data_dir``, ``budgets_file``, ``resume``, ``start``
    (``start=False``: ``--no-start``), ``retrain``, ``jobs``, ``heartbeat``, ``grace``, ``patience``. ``progress``
    prints one line per epoch and per trial; ``hooks`` (:class:`budgetnas.run.pipeline.Hooks`) shows each step
    as it likes instead.

    Raises:
        budgetnas.errors.ConfigError: an option that does not exist, or a value the budget or driver refuses.
        KeyboardInterrupt: stopped (:class:`budgetnas.errors.Stopped`: what is kept, the command that continues);
            finished trials and seeds are saved and ``search(..., name=NAME, resume=True)`` continues.
        budgetnas.storage.StorageLost: the storage stayed away for ``patience`` seconds.

    Example:
        >>> run = budgetnas.search("mnist-8k", trials=12, name="nb-8k")
        >>> run.leaderboard(top=5)
    """
    from budgetnas.run.options import options as search_options
    from budgetnas.run.start import prepare

    opts = search_options(budget, **options)
    path, meta, b, sp = prepare(opts)
    return _drive(path, meta, b, sp, opts, hooks, progress, create=not opts.resume)


def join(run: str, *, storage: str, trials: int | None = None, hooks=None, progress: bool = False,
         **options) -> Run:
    """Join run ``run``'s search as one more worker, from its ``storage`` alone (any machine; the run's folder is
    mirrored under ``reports_dir``); trains trials until the run's count (or ``trials``) is reached. The first
    process retrains the finalists, a worker never does. ``options``: ``reports_dir``, ``data_dir``, ``heartbeat``,
    ``grace``, ``patience`` (as :func:`search`).

    Raises:
        budgetnas.errors.RunError: no such study in ``storage``, or one not started by budgetnas.
        budgetnas.errors.ConfigError: the run's driver cannot take extra workers.
    """
    from budgetnas.errors import ConfigError
    from budgetnas.run.options import options as search_options
    from budgetnas.run.start import join as join_run

    opts = search_options(**options, retrain=False)
    path, meta, b, sp = join_run(run, storage, opts.reports_dir)
    if meta.driver != "optuna":
        raise ConfigError(f"run {meta.name!r} uses the {meta.driver} driver; extra workers need the optuna driver")
    if trials is not None:
        meta.trials = trials
    return _drive(path, meta, b, sp, opts, hooks, progress, create=False, worker=True)


def _drive(path: Path, meta, budget: Budget, space, opts, hooks, progress: bool, *, create: bool,
           worker: bool = False) -> Run:
    from budgetnas.run.pipeline import Progress, drive
    from budgetnas.run.search import begin

    s = begin(path, meta, budget, space, create=create, worker=worker, data_dir=opts.data_dir)
    drive(s, hooks or (Progress() if progress else None), retrain=opts.retrain and not worker,
          data_dir=opts.data_dir, resume=not create, jobs=opts.jobs, heartbeat=opts.heartbeat, grace=opts.grace,
          patience=opts.patience)
    return Run(path)


def train(space: str | Path, *, budget: str | Budget, name: str | None = None, reports_dir: str | Path = "reports",
          epochs: int | None = None, seeds: int = 1, seed: int = 0, recipe: str = "budget",
          data_dir: str | None = None, resume: bool = False, jobs: int | None = None,
          budgets_file: str | Path | None = None, on_seed: Callable | None = None,
          on_epoch: Callable | None = None) -> Run:
    """Train one fixed network (a space without choices, e.g. a hand-made baseline) as a finalist is trained:
    ``seeds`` seeds from ``seed`` on the training images left once the validation split is carved out (seeded with
    ``seed``), validation and test scored once per seed after the final epoch, in a run folder ``name`` with its
    report. ``recipe``: "budget" (the budget's ``[train]``) or "baseline" (its ``[baseline_train]``, the network's
    own recipe).

    Raises:
        budgetnas.errors.ConfigError: a space with choices, a recipe with choices, or no baseline recipe.
        budgetnas.errors.Stopped: Ctrl-C or SIGTERM; finished seeds are saved, ``resume=True`` continues.

    Example:
        >>> run = budgetnas.train("anchors/golf_820", budget="mnist-front", seeds=3, name="golf")
        >>> [s.test_accuracy for s in run.finalists()[0].seeds]
    """
    import time

    from budgetnas.budget import get_budget
    from budgetnas.errors import ConfigError
    from budgetnas.run.commands import command
    from budgetnas.run.pipeline import stopping
    from budgetnas.run.retrain import train_fixed

    b = budget if isinstance(budget, Budget) else get_budget(budget, budgets_file)
    if recipe not in ("budget", "baseline"):
        raise ConfigError(f"train: recipe {recipe!r}: \"budget\" or \"baseline\"")
    if resume and not name:
        raise ConfigError("train --resume: name the run to continue with --name")
    name = name or f"train-{load_space(space).name}-{time.strftime('%Y%m%d-%H%M%S')}"
    again = command(["train", str(space)], [("--budget", b.name), ("--name", name), ("--epochs", epochs),
                                            ("--seeds", seeds), ("--seed", seed), ("--recipe", recipe),
                                            ("--reports-dir", reports_dir), ("--data-dir", data_dir)],
                    budgets=budgets_file)
    with stopping("every finished seed is saved", again):
        train_fixed(str(space), b, name=name, reports_dir=str(reports_dir), epochs=epochs, seeds=seeds,
                    recipe_kind=recipe, data_dir=data_dir, seed=seed, on_seed=on_seed, on_epoch=on_epoch,
                    resume=resume, jobs=jobs)
    return Run(Path(reports_dir) / name)
