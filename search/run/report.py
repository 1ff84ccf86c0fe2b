"""A run's report: ``report.md``, ``report.html``, its plots and ``trials.csv``, from the folder and its storage."""

from __future__ import annotations

from pathlib import Path

from budgetnas import gate
from budgetnas.budget import Budget
from budgetnas.errors import ConfigError
from budgetnas.run.folder import RunMeta, fitting_budgets, open_folder
from budgetnas.space import load_space


def write_run_report(path: Path) -> list[Path]:
    from budgetnas import finalists as fin_mod
    from budgetnas.report.document import write_report

    meta, budget, space, records = open_folder(path)
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
