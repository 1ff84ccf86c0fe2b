"""budgetnas as a library: any Keras model's per-layer table and its budget verdict, in a notebook or a script.

    import budgetnas

    budgetnas.layer_table(model)                    # output size, params, MACs, kernel/stride/dilation, jump, RF
    verdict = budgetnas.check(model, budget="mnist-15k")
    verdict.ok, verdict.violations                  # every broken rule, as the search's gate words it

Both objects display themselves: an HTML table in Jupyter, a rich table in a terminal (``rich.print``),
plain text with ``print``. Parameters are counted as Keras counts them (``model.count_params()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from budgetnas.budget import Budget, get_budget
from budgetnas.receptive import LayerTable, fmt_pair, table_from_model


def load_budget(name: str, *, budgets_file: str | Path | None = None) -> Budget:
    """A named budget from ``budgets_file`` (default: ``./budgets.toml``, else the shipped one).

    Example:
        >>> budgetnas.load_budget("mnist-15k").max_params
        15000
    """
    return get_budget(name, budgets_file)


def layer_table(model) -> LayerTable:
    """The per-layer table of a built Keras model (output size, params, MACs, RF, jump, start).

    Raises:
        budgetnas.errors.UnsupportedLayerError: a layer whose geometry the table cannot reason about.

    Example:
        >>> budgetnas.layer_table(model).final_rf
        (22.0, 22.0)
    """
    return table_from_model(model)


@dataclass(frozen=True)
class ModelCheck:
    """A model judged against a budget: ``ok`` when ``violations`` is empty."""

    budget: str
    violations: tuple[str, ...]
    counted_params: int  # what the budget limits: Keras "Total params", or trainable ones
    max_params: int
    table: LayerTable = field(repr=False)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        t = self.table
        head = (f"Total params {t.total_params:,} (trainable {t.trainable_params:,}), MACs {t.macs:,}, "
                f"final RF {fmt_pair(t.final_rf)}")
        if self.ok:
            return f"{head}\nwithin budget {self.budget} ({self.counted_params:,} of {self.max_params:,} params)"
        return f"{head}\nbreaks budget {self.budget}: " + "; ".join(self.violations)

    def __str__(self) -> str:
        from budgetnas.report.document import layer_markdown

        return layer_markdown(self.table) + "\n\n" + self.summary()

    def __rich__(self):
        from rich.console import Group

        from budgetnas.report.leaderboard import layer_table as rich_table

        return Group(rich_table(self.table), self.summary())

    def _repr_html_(self) -> str:
        import html

        colour = "green" if self.ok else "#b00"
        lines = "<br>".join(html.escape(line) for line in self.summary().splitlines())
        return self.table._repr_html_() + f"<p style='color:{colour}'>{lines}</p>"


def check(model, *, budget: str | Budget, budgets_file: str | Path | None = None) -> ModelCheck:
    """Judge a built Keras model against a budget: its parameter count and every layer rule.

    The same rules the search's gate applies to its candidates (forbidden and allowed layer kinds,
    BatchNorm and dropout, MACs, final receptive field, the parameter limit as the budget counts it).

    Example:
        >>> v = budgetnas.check(model, budget="mnist-15k")
        >>> v.ok, v.counted_params
        (True, 13794)
    """
    from budgetnas import gate

    b = budget if isinstance(budget, Budget) else load_budget(budget, budgets_file=budgets_file)
    table = table_from_model(model)
    return ModelCheck(budget=b.name, violations=tuple(gate.violations(b, table)), counted_params=gate.counted(b, table),
                      max_params=b.max_params, table=table)
