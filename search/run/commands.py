"""The command lines that continue a stopped run, as a user types them (quoted for a shell)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from budgetnas.run.folder import RunMeta


def _where(path: Path) -> str:
    """The ``--reports-dir`` that locates a run folder outside ``reports/`` (none inside it)."""
    return "" if path.parent == Path("reports") else f" --reports-dir {shlex.quote(str(path.parent))}"


def retrain_command(path: Path, meta: RunMeta) -> str:
    """The command that retrains this run's finalists."""
    return f"budgetnas retrain {meta.name}{_where(path)}"


def resume_command(path: Path, meta: RunMeta, worker: bool = False) -> str:
    """The command that continues this run's search (or, ``worker``, this worker), with the folder and storage
    that locate it."""
    where = _where(path)
    if worker:
        return f"budgetnas worker {meta.name} --storage {shlex.quote(meta.storage)}{where}"
    return f"budgetnas search --budget {meta.budget} --name {meta.name} --resume{where}"


def command(words: list[str], options: list[tuple[str, Any]], budgets: str | None = None) -> str:
    """``budgetnas [--budgets FILE] WORDS OPTIONS --resume``, quoted for a shell; options set to None left out."""
    parts = ["budgetnas", *(["--budgets", str(budgets)] if budgets else []), *words]
    parts += [str(x) for flag, value in options if value is not None for x in (flag, value)]
    return " ".join(shlex.quote(p) for p in [*parts, "--resume"])
