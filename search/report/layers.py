"""The per-layer table (output size, params, MACs, kernel/stride/dilation, jump, RF, start) as Markdown and as a
rich table. It reads a :class:`budgetnas.receptive.LayerTable` by its fields and imports nothing of budgetnas, so
the table can display itself (in a terminal or a notebook) without an import loop."""

from __future__ import annotations

from typing import Any, Iterable

from rich.table import Table


def fmt_pair(p: Iterable[float]) -> str:
    """``3`` for (3, 3), ``3×5`` for (3, 5); whole numbers without a decimal point."""
    a, b = list(p)
    f = lambda v: str(int(v)) if float(v).is_integer() else f"{v:g}"  # noqa: E731
    return f(a) if a == b else f"{f(a)}×{f(b)}"


def _ksd(r: Any) -> str:
    return "—" if r.kernel is None else "/".join(fmt_pair(p) for p in (r.kernel, r.stride or (1, 1),
                                                                        r.dilation or (1, 1)))


def layer_markdown(table: Any) -> str:
    lines = ["| layer | kind | output | params | MACs | k/s/d | jump | RF | start |",
             "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    for r in table.rows:
        lines.append(f"| {r.name} | {r.kind} | {'×'.join(map(str, r.output_shape))} | {r.params:,} | {r.macs:,} | "
                     f"{_ksd(r)} | {fmt_pair(r.jump)} | {fmt_pair(r.rf)} | {fmt_pair(r.start)} |")
    lines.append(f"| **total** | | | **{table.total_params:,}** | **{table.macs:,}** | | | "
                 f"RF before the head: {fmt_pair(table.final_rf)} | |")
    return "\n".join(lines)


def layer_table(table: Any, title: str = "") -> Table:
    """The per-layer table: output size, params, MACs, kernel/stride/dilation, jump, RF, start."""
    t = Table(title=title or None, title_justify="left")
    for col, just in (("layer", "left"), ("kind", "left"), ("output", "right"), ("params", "right"),
                      ("MACs", "right"), ("k/s/d", "right"), ("jump", "right"), ("RF", "right"),
                      ("start", "right")):
        t.add_column(col, justify=just, no_wrap=True)
    for r in table.rows:
        t.add_row(r.name, r.kind, "×".join(str(v) for v in r.output_shape), f"{r.params:,}", f"{r.macs:,}",
                  _ksd(r), fmt_pair(r.jump), fmt_pair(r.rf), fmt_pair(r.start))
    t.add_section()
    # the RF of the last feature map before the head (GAP, flatten or a whole-map conv) collapses it
    t.add_row("total (RF pre-head)", "", "", f"{table.total_params:,}", f"{table.macs:,}", "", "",
              fmt_pair(table.final_rf), "", style="bold")
    return t
