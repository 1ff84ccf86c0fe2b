"""Leaderboards and fronts as rich renderables (pure: nothing here prints), and :class:`Board`, a run's board as
text, a rich table, HTML or JSON-ready data."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text

from budgetnas.budget import Budget
from budgetnas.run.folder import TrialRecord, fitting_budgets, ranked

_STYLE = {"complete": "green", "pruned": "yellow", "rejected": "red", "failed": "magenta", "running": "cyan"}


def pct(v: float | None) -> str:
    """A fraction as a percentage with two decimals; an em dash for none."""
    return "—" if v is None else f"{100 * v:.2f}%"


def score_text(r: TrialRecord) -> str:
    """A trial's validation score; ``search → re-scored`` when it was trained again on all images."""
    return pct(r.val_accuracy) + (f" → {pct(r.rescore)}" if r.rescore is not None else "")


def leaderboard(records: list[TrialRecord], max_params: int, top: int = 10, title: str = "Leaderboard") -> Table:
    """Top trials by validation score (:func:`budgetnas.run.folder.ranked`): rank, trial, params, % of budget, MACs,
    val acc (→ its re-score), epochs, status."""
    t = Table(title=title, title_justify="left")
    for col, just in (("#", "right"), ("trial", "right"), ("params", "right"), ("% budget", "right"),
                      ("MACs", "right"), ("val acc", "right"), ("epochs", "right"), ("status", "left"),
                      ("architecture", "left")):
        t.add_column(col, justify=just, no_wrap=col != "architecture")
    for i, r in enumerate(ranked(records)[:top], 1):
        t.add_row(str(i), str(r.number), f"{r.params:,}" if r.params else "—",
                  f"{100 * r.params / max_params:.1f}" if r.params else "—",
                  f"{r.macs / 1e6:.2f}M" if r.macs else "—", score_text(r), str(r.epochs),
                  Text(r.status, style=_STYLE.get(r.status, "")), r.architecture)
    return t


def front_table(records: list[TrialRecord], max_params: int, cost: str = "params", title: str = "Front",
                limits: dict[str, int] | None = None) -> Table:
    """The completed trials on the accuracy–``cost`` front (:func:`budgetnas.front.front_records`), cheapest
    first: trial, params, % of budget, MACs, val acc, architecture; ``limits`` (name → max params) adds
    the named budgets each point fits."""
    from budgetnas.front import front_records

    t = Table(title=title, title_justify="left")
    cols = ["trial", "params", "% budget", "MACs", "val acc"] + (["fits"] if limits else []) + ["architecture"]
    for col in cols:
        t.add_column(col, justify="left" if col in ("fits", "architecture") else "right",
                     no_wrap=col != "architecture")
    for r in front_records(records, cost):
        row = [str(r.number), f"{r.params:,}" if r.params else "—",
               f"{100 * r.params / max_params:.1f}" if r.params else "—",
               f"{r.macs / 1e6:.2f}M" if r.macs else "—", pct(r.val_accuracy)]
        if limits:
            row.append(", ".join(n for n, m in sorted(limits.items(), key=lambda kv: kv[1]) if (r.params or 0) <= m))
        t.add_row(*row, r.architecture)
    return t


def counts(records: list[TrialRecord]) -> dict[str, Any]:
    """Trials by status, and rejections by reason (the part before the colon)."""
    by_status = Counter(r.status for r in records)
    reasons = Counter()
    for r in records:
        if r.status == "rejected":
            for part in r.reason.split("; "):
                reasons[part.split(":")[0]] += 1
    return {"total": len(records), **{s: by_status.get(s, 0) for s in
                                      ("complete", "pruned", "rejected", "failed", "running", "duplicate",
                                       "interrupted")},
            "rejected_by_reason": dict(reasons)}


def summary_line(records: list[TrialRecord]) -> str:
    c = counts(records)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(c["rejected_by_reason"].items()))
    line = (f"{c['total']} trials: {c['complete']} completed, {c['pruned']} pruned early, "
            f"{c['rejected']} rejected by the gate")
    if reasons:
        line += f" ({reasons})"
    line += f", {c['failed']} failed"
    if c["duplicate"]:
        line += f", {c['duplicate']} duplicates (not trained again)"
    if c["interrupted"]:
        line += f", {c['interrupted']} interrupted (trained again on resume)"
    if c["running"]:
        line += f", {c['running']} running"
    return line


@dataclass(frozen=True)
class Board:
    """A run's leaderboard (best first) or its front (cheapest first), as text, a rich table or HTML."""

    records: tuple = field(repr=False)
    max_params: int
    title: str
    front: bool = False
    cost: str = "params"
    top: int = 10
    limits: dict | None = field(default=None, repr=False)
    run: str = ""
    budget: str = ""

    @classmethod
    def of(cls, meta, budget: Budget, records, *, top: int = 10, front: bool | None = None) -> "Board":
        """The board of a run (its ``RunMeta``, frozen budget and records): the leaderboard, or (``front``; the
        default for a front search) the front, drawn against the search's cost (params for any other search),
        each point with the named budgets it fits."""
        front = meta.objective == "front" if front is None else front
        cost = meta.cost if meta.objective == "front" else "params"
        return cls(tuple(records), budget.max_params, f"{'Front' if front else 'Leaderboard'} — {meta.name}", front,
                   cost, top, fitting_budgets(meta, budget) if front else None, meta.name, meta.budget)

    def as_dict(self) -> dict:
        """Every trial with its rank (best first); a front board holds only the front's trials, cheapest first."""
        rank = {r.number: i for i, r in enumerate(ranked(list(self.records)), 1)}
        shown = self.rows if self.front else list(self.records)
        return {"run": self.run, "budget": self.budget, "counts": counts(list(self.records)), "front": self.front,
                "trials": [{**r.as_dict(), "rank": rank.get(r.number)} for r in shown]}

    @property
    def rows(self) -> list:
        """The trial records shown, in order."""
        from budgetnas.front import front_records
        from budgetnas.run.folder import ranked

        return front_records(list(self.records), self.cost) if self.front else ranked(list(self.records))[:self.top]

    def __rich__(self):
        if self.front:
            return front_table(list(self.records), self.max_params, self.cost, self.title, self.limits)
        return leaderboard(list(self.records), self.max_params, self.top, self.title)

    def __str__(self) -> str:
        import io

        from rich.console import Console

        buf = io.StringIO()
        Console(file=buf, width=160, color_system=None).print(self)
        return buf.getvalue()

    def _repr_html_(self) -> str:
        import html

        head = ["trial", "params", "MACs", "val acc", "epochs", "status", "architecture"]
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                r.number, f"{r.params:,}" if r.params else "—", f"{r.macs / 1e6:.2f}M" if r.macs else "—",
                pct(r.score), r.epochs, r.status, r.architecture)) + "</tr>" for r in self.rows)
        return (f"<p><b>{html.escape(self.title)}</b></p><table><thead><tr>"
                + "".join(f"<th>{h}</th>" for h in head) + f"</tr></thead><tbody>{body}</tbody></table>")
