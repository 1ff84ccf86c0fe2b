"""What the user sees while a search runs: a rich live view on a terminal, plain lines otherwise.

Both receive the same driver events; neither changes what the search does.
"""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from budgetnas.report.leaderboard import front_table, leaderboard, summary_line
from budgetnas.run.folder import TrialRecord


class PlainDisplay:
    """One line per epoch and per finished trial: readable in CI logs and files."""

    def __init__(self, console: Console, planned: int, epochs: int, max_params: int, records: list[TrialRecord]):
        self.console, self.planned, self.epochs, self.max_params = console, planned, epochs, max_params
        self._by_number = {r.number: r for r in records}  # a resumed run's waiting trial is replaced when it ends
        self.t0 = time.monotonic()

    @property
    def records(self) -> list[TrialRecord]:
        return list(self._by_number.values())

    def finished(self) -> int:
        """Trials ended that count toward the planned number (not an interrupted one, not a dead worker's retry)."""
        return sum(r.status not in ("running", "interrupted") and r.retry_of is None for r in self._by_number.values())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def on_start(self, number: int) -> None:
        pass

    def on_batch(self, batch: int, logs: dict) -> None:
        pass

    def on_epoch(self, number: int, epoch: int, acc: float) -> None:
        self.console.print(f"trial {number} epoch {epoch}/{self.epochs} val_accuracy {acc:.4f}")

    def on_done(self, rec: TrialRecord) -> None:
        self._by_number[rec.number] = rec
        acc = "—" if rec.val_accuracy is None else f"{rec.val_accuracy:.4f}"
        why = f" ({rec.reason})" if rec.reason else ""
        self.console.print(
            f"trial {rec.number} {rec.status}{why}: params {rec.params or 0:,} val_accuracy {acc} epochs "
            f"{rec.epochs} steps {rec.steps} {rec.wall_seconds:.1f}s [{self.finished()}/{self.planned} trials, "
            f"{time.monotonic() - self.t0:.0f}s]  {rec.architecture}")


class LiveDisplay(PlainDisplay):
    """Trials done / planned with ETA, the current trial's epoch bar with live loss/accuracy, top trials."""

    def __init__(self, console: Console, planned: int, epochs: int, max_params: int, records: list[TrialRecord],
                 steps_per_epoch: int, front: str | None = None):
        super().__init__(console, planned, epochs, max_params, records)
        self.steps_per_epoch, self.front = steps_per_epoch, front  # front: the cost of a front search
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console)
        self.trials_task = self.progress.add_task("trials", total=planned, completed=self.finished(), info="")
        self.epoch_task = self.progress.add_task("epoch", total=steps_per_epoch, info="")
        self.live = Live(self._render(), console=console, refresh_per_second=4)
        self.current, self.epoch = -1, 1

    def _render(self):
        board = (front_table(self.records, self.max_params, self.front, title=f"Front (val acc against {self.front})")
                 if self.front else leaderboard(self.records, self.max_params, top=8, title="Top trials"))
        return Group(self.progress, board, summary_line(self.records))

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        return self.live.__exit__(*exc)

    def on_start(self, number: int) -> None:
        self.current, self.epoch = number, 1
        self.progress.reset(self.epoch_task, total=self.steps_per_epoch,
                            description=f"trial {number} epoch 1/{self.epochs}", info="")

    def on_batch(self, batch: int, logs: dict) -> None:
        self.progress.update(self.epoch_task, completed=batch + 1,
                             info=f"loss {logs.get('loss', 0):.4f} acc {logs.get('accuracy', 0):.4f}")

    def on_epoch(self, number: int, epoch: int, acc: float) -> None:
        self.epoch = epoch + 1
        self.progress.reset(self.epoch_task, total=self.steps_per_epoch,
                            description=f"trial {number} epoch {min(self.epoch, self.epochs)}/{self.epochs} "
                                        f"(last val {acc:.4f})", info="")

    def on_done(self, rec: TrialRecord) -> None:
        self._by_number[rec.number] = rec
        self.progress.update(self.trials_task, completed=self.finished())
        self.live.update(self._render())
