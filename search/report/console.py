"""What the command line shows, as rich renderables and printers: the search's steps, finalists and their outcome,
per-seed and per-epoch lines, the one line of an interrupt. The command line parses and calls the API; the
showing is here."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rich.table import Table

from budgetnas.report.layers import layer_table
from budgetnas.report.leaderboard import pct, summary_line


class SearchView:
    """What ``budgetnas search`` and ``worker`` print at each step of the pipeline: the run line, the live display
    (a plain one off a terminal or with --json), re-scores, the board or JSON, the finalists."""

    def __init__(self, console, json_out: bool, retrain: bool):
        self.console, self.json_out, self.retrain = console, json_out, retrain
        self.on_seed, self.on_epoch = seed_printer(console), epoch_printer(console)

    def searching(self, s):
        from budgetnas.report.live import LiveDisplay, PlainDisplay
        from budgetnas.run.search import steps_per_epoch

        if s.again:
            self.console.print(f"resume: trial(s) {', '.join(map(str, s.again))}, stopped before they finished, "
                               "train again")
        self.console.print(f"run {s.path} · budget {s.budget.name} ≤{s.budget.max_params:,} params · space "
                           f"{s.space.path} · {len(s.ctx.train)} train / {len(s.ctx.val)} val images · up to "
                           f"{s.meta.max_epochs} epochs per trial")
        display_cls = LiveDisplay if self.console.is_terminal and not self.json_out else PlainDisplay
        kwargs = {"steps_per_epoch": steps_per_epoch(s.ctx), "front": s.meta.cost if s.ctx.front else None} \
            if display_cls is LiveDisplay else {}
        self.t0 = time.monotonic()
        return display_cls(self.console, s.meta.trials, s.meta.max_epochs, s.budget.max_params, s.records(), **kwargs)

    def rescoring(self, s) -> None:
        self.full_train = len(s.ctx.full_train)
        self.console.print(f"re-scoring the {s.rescores} best completed trials on all training images")

    def rescored(self, number: int, first: float, second: float) -> None:
        self.console.print(f"re-scored trial {number} on all {self.full_train} training images: "
                           f"{100 * first:.2f}% → {100 * second:.2f}%")

    def searched(self, s) -> bool:
        from budgetnas.report.leaderboard import Board
        from budgetnas.run.commands import retrain_command

        records = s.records()
        board = Board.of(s.meta, s.budget, records, top=10, front=s.ctx.front)
        if self.json_out:
            print(json.dumps(Board.of(s.meta, s.budget, records, front=False).as_dict()))
            return False
        self.console.print(board)
        self.console.print(summary_line(records) + f" in {time.monotonic() - self.t0:.0f}s")
        if not self.retrain:
            self.console.print(f"finalists: `{retrain_command(s.path, s.meta)}` (skipped: --no-retrain)")
        self.path, self.t1 = s.path, time.monotonic()
        return True

    def retrained(self, finalists: list) -> None:
        self.console.print(f"retrained {len(finalists)} finalist(s) in {time.monotonic() - self.t1:.0f}s")
        print_outcome(self.console, self.path, finalists)


def seed_printer(console):
    def on_seed(label: str, seed: int, acc: float) -> None:
        console.print(f"{label} seed {seed}: test accuracy {100 * acc:.2f}%")
    return on_seed


def epoch_printer(console):
    def on_epoch(label: str, seed: int, epoch: int, logs: dict) -> None:
        of = f"/{logs['epochs']}" if "epochs" in logs else ""
        took = f" ({logs['seconds']:.0f}s)" if "seconds" in logs else ""
        val = f" val_accuracy {logs['val_accuracy']:.4f}" if "val_accuracy" in logs else ""  # none in a final fit
        console.print(f"{label} seed {seed} epoch {epoch}{of}: loss {logs.get('loss', 0):.4f}{val}{took}")
    return on_epoch


def finalists_table(finalists, title: str):
    t = Table(title=title, title_justify="left")
    for col in ("finalist", "params", "MACs", "val mean (chooses)", "test mean ± std", "test min", "seeds",
                "train time"):
        t.add_column(col, justify="left" if col == "finalist" else "right")
    for f in finalists:
        t.add_row(f.label, f"{f.params:,}", f"{f.macs / 1e6:.2f}M", pct(f.val_mean), f.spread,
                  f"{100 * f.minimum:.2f}%", str(len(f.seeds)), f"{f.train_seconds / 60:.1f} min")
    notes = [f"{f.label}: {note}" for f in finalists for note in f.training_notes()]
    if notes:
        t.caption, t.caption_justify = "\n".join(notes), "left"
    return t


def print_outcome(console, path: Path, finalists) -> None:
    from budgetnas import gate
    from budgetnas.finalists import winner
    from budgetnas.run.folder import open_folder

    meta, budget, space, _ = open_folder(path)
    console.print(finalists_table(finalists, f"Finalists — {meta.name} (test accuracy, final epoch)"))
    w = winner(finalists)
    if w is not None and budget.target is not None:
        from budgetnas.finalists import load, target_verdict

        proto = load(path)[0]
        if "test_images" in proto:
            console.print(target_verdict(w, budget.target, proto["test_images"]), markup=False)
    if w is not None:
        verdict = gate.judge(budget, space, w.values)
        if verdict.table is not None:
            console.print(layer_table(verdict.table, title=f"Winner {w.label}: per-layer table"))
    console.print(f"report: {path / 'report.html'}")


def interrupted(console, exc: KeyboardInterrupt, kept: str, command: str) -> int:
    """One line for a Ctrl-C or SIGTERM: what is kept, and the exact command that continues."""
    from budgetnas import interrupts

    interrupts.ignore()  # the process is only ending now: another Ctrl-C must not cut this line or the exit
    # never wrapped or read as markup: the command is copied from this line
    console.print(f"{interrupts.reason(exc)}: {kept}; continue with `{command}`", soft_wrap=True, markup=False)
    return interrupts.exit_code(exc)


def show_described(console, space, index: int, of: int, values: dict, table, verdict, as_json: bool) -> None:
    """One network of ``budgetnas describe``: its per-layer table, counts and verdict (or one JSON line)."""
    from budgetnas.budget import Candidate

    if table is None:  # the plan already failed (e.g. a map below 1x1)
        out = {"index": index, "values": values, "total_params": None, "trainable_params": None, "macs": None,
               "within_budget": False, "violations": list(verdict.violations), "layers": []}
    else:
        out = {"index": index, "values": values,
               "architecture": space.resolve(Candidate.of(values).network).describe(),
               "total_params": table.total_params, "trainable_params": table.trainable_params,
               "macs": table.macs, "final_rf": list(table.final_rf),
               "within_budget": verdict.ok if verdict else None,
               "violations": list(verdict.violations) if verdict else [],
               "repairs": list(verdict.repairs) if verdict else [],
               "layers": [r.as_dict() for r in table.rows]}
    if as_json:
        print(json.dumps(out))
        return
    title = f"{space.name}" + (f" — sample {index}" if of > 1 else "") + f"  [{out.get('architecture', '')}]"
    if table is not None:
        console.print(layer_table(table, title=title))
        console.print(f"Total params {table.total_params:,} (trainable {table.trainable_params:,}), "
                      f"MACs {table.macs:,}, RF before the head {out['final_rf']}")
    if verdict is not None:
        if verdict.repairs:
            console.print("repaired: " + ", ".join(verdict.repairs))
        if verdict.ok:
            console.print(f"[green]within budget {verdict.budget}[/green]")
        else:
            console.print(f"[red]breaks budget {verdict.budget}:[/red] " + "; ".join(verdict.violations))


def log_to_stderr() -> None:
    """The library's warnings (a storage away, heartbeats not written) as lines on stderr."""
    import logging

    logger = logging.getLogger("budgetnas")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("budgetnas: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def away_line(exc: BaseException) -> str:
    """The one line for a storage or disk that went away outside a search's own waiting, else ''."""
    import errno

    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return (f"disk full{f' writing {exc.filename}' if exc.filename else ''}; what finished is saved: free space, "
                "then run the command again with --resume")
    if "optuna" in sys.modules:
        from budgetnas import storage

        if storage.is_transient(exc) and not isinstance(exc, OSError):  # a plain OSError is no storage's
            return f"storage unreachable ({storage.describe(exc)}); run the command again once it is back"
    return ""
