"""One process's part in a run's search: load the run's data, open its study, hand it to the driver.

:func:`begin` opens a :class:`Search` on a run folder made by :mod:`budgetnas.run.start`; :mod:`budgetnas.run.pipeline`
runs it, re-scores (:mod:`budgetnas.run.rescore`) and retrains (:mod:`budgetnas.run.retrain`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from budgetnas import data as data_mod
from budgetnas.budget import Budget
from budgetnas.drivers import base as drivers
from budgetnas.drivers.common import SearchContext
from budgetnas.run.folder import RunMeta, load_data_splits
from budgetnas.space import Space


def context(meta: RunMeta, budget: Budget, space: Space, data_dir: str | None = None) -> SearchContext:
    """What a run's trials train and are scored on: its split, the search's subset of it, epochs and rungs."""
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


def open_study(path: Path, meta: RunMeta, budget: Budget, create: bool, worker: bool = False):
    """The run's Optuna study (created with the run, or reopened); returns (study, trials to train again).

    An extra ``worker`` seeds its sampler apart from the run's seed (the split and trial seeds stay
    the run's): samplers with one seed propose the same networks in the same order. On resuming, trials
    left RUNNING by a dead process of this run and trials stopped by Ctrl-C / SIGTERM are enqueued to
    train again with their values and seeds, and the sampler is seeded apart from the first process's.
    """
    import optuna

    from budgetnas.drivers import optuna_driver
    from budgetnas.run.start import publish
    from budgetnas.storage import open_storage

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

    ``again``: the trials an interrupted process left, trained again first. :func:`budgetnas.run.pipeline.drive`
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
        from budgetnas.run.folder import records_from_study

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
        """Re-score the budget's ``search.rescore`` best trials (:func:`budgetnas.run.rescore.rescore_top`); returns
        how many trained."""
        from budgetnas.run.rescore import rescore_top

        return rescore_top(self.ctx, self.study, self.rescores, on_rescored) if self.rescores else 0

    def resume_command(self) -> str:
        from budgetnas.run.commands import resume_command

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


def run_search(ctx: SearchContext, study, path: Path, meta: RunMeta, resume: bool, hooks,
               heartbeat: float, grace: float, patience: float) -> None:
    """Hand the run to its driver; ``hooks`` (a display) gets on_start/on_epoch/on_batch/on_done."""
    events = dict(on_start=hooks.on_start, on_epoch=hooks.on_epoch, on_batch=hooks.on_batch, on_done=hooks.on_done)
    drivers.get(meta.driver).run(ctx, study, meta, path, resume=resume, events=events, heartbeat=heartbeat,
                                 grace=grace, patience=patience)


