"""One search process's pipeline: search, re-score, retrain the finalists; what it shows is left to hooks.

``budgetnas search`` (with its live display, interrupt lines and JSON) and :func:`budgetnas.search` (silent, or one
line per epoch) both run :func:`drive`; neither sequences the steps itself. A Ctrl-C or SIGTERM in any step
leaves what finished saved and comes out as :class:`Stopped`, which says what is kept and the command that continues.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from budgetnas.errors import Stopped
from budgetnas.run.commands import resume_command
from budgetnas.run.search import Search


class Hooks:
    """What a pipeline shows at each step; this base shows nothing. Subclasses override what they show."""

    on_seed: Callable[..., None] | None = None  # (label, seed, accuracy) after each finalist seed
    on_epoch: Callable[..., None] | None = None  # (label, seed, epoch, logs) after each finalist epoch

    def searching(self, s: Search) -> contextlib.AbstractContextManager[Any]:
        """A context giving the trial display (on_start/on_epoch/on_batch/on_done) while the search trains."""
        return contextlib.nullcontext(None)

    def rescoring(self, s: Search) -> None:
        """Before the ``s.rescores`` best trials are trained again."""

    def rescored(self, number: int, first: float, second: float) -> None:
        """Trial ``number`` re-scored: its search score, then its new one."""

    def searched(self, s: Search) -> bool:
        """The search (and re-scoring) ended; False stops the pipeline before retraining."""
        return True

    def retrained(self, finalists: list) -> None:
        """The finalists are retrained and the report written."""


class Progress(Hooks):
    """One line per epoch and per finished trial (:func:`budgetnas.search` with ``progress``)."""

    def searching(self, s: Search):
        from rich.console import Console

        from budgetnas.report.live import PlainDisplay

        return PlainDisplay(Console(), s.meta.trials, s.meta.max_epochs, s.budget.max_params, s.records())


def drive(s: Search, hooks: Hooks | None = None, *, retrain: bool = True, data_dir: str | None = None,
          resume: bool = False, jobs: int | None = None, heartbeat: float | None = None,
          grace: float | None = None, patience: float | None = None) -> list | None:
    """Search the run ``s`` opened (:func:`budgetnas.run.search.begin`), re-score its best trials if its budget says so,
    then (``retrain`` and ``hooks.searched`` willing) retrain its finalists. Returns them, or None without retraining.

    Raises:
        Stopped: Ctrl-C or SIGTERM; every finished trial, re-score and seed is saved.
        budgetnas.storage.StorageLost: the storage stayed away for ``patience`` seconds (the message ends with the
            command that continues once it is back).
    """
    from budgetnas.run.retrain import retrain_run

    from budgetnas.storage import StorageLost

    hooks = hooks or Hooks()
    try:
        with stopping("finished trials are saved", s.resume_command()), hooks.searching(s) as display:
            s.run(display, heartbeat=heartbeat, grace=grace, patience=patience)
    except StorageLost as exc:
        raise StorageLost(f"{exc}; every finished trial is in the storage; once it is back, continue with "
                          f"`{s.resume_command()}`") from None
    if s.rescores:
        hooks.rescoring(s)
        with stopping("finished trials and re-scorings are saved", resume_command(s.path, s.meta)):
            s.rescore(hooks.rescored)
    if not hooks.searched(s) or not retrain:
        return None
    with stopping("the search and every finished seed are saved", resume_command(s.path, s.meta)):
        fins = retrain_run(s.path, data_dir=data_dir, on_seed=hooks.on_seed, on_epoch=hooks.on_epoch, resume=resume,
                           jobs=jobs, front=0 if s.ctx.front else None)
    hooks.retrained(fins)
    return fins


@contextlib.contextmanager
def stopping(kept: str, command: str):
    """Turn a Ctrl-C or SIGTERM inside the block into :class:`Stopped` (``kept``: what is saved, ``command``: what
    continues)."""
    try:
        yield
    except Stopped:
        raise
    except KeyboardInterrupt as exc:
        raise Stopped(kept, command) from exc
