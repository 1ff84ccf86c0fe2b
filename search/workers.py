"""Several workers on one study: the study carries what a worker needs to join from any machine."""

from __future__ import annotations

import json
from pathlib import Path

from budgetnas import files
from budgetnas.budget import Budget, frozen_text
from budgetnas.errors import RunError
from budgetnas.runs import RunMeta, lay_out, save_meta
from budgetnas.runs import run_budget
from budgetnas.space import Space, load_space

_ATTR = "budgetnas"


def publish(study, path: Path, meta: RunMeta) -> None:
    """Put what a worker needs into the study itself: run metadata, the space and the frozen budget."""
    study.set_user_attr(_ATTR, {"meta": json.loads(meta.to_json()),
                                "space": (path / "space.toml").read_text(encoding="utf-8"),
                                "budget": frozen_text(path)})


def join(run: str, storage: str, reports_dir: str) -> tuple[Path, RunMeta, Budget, Space]:
    """Open another worker's run from its storage alone (any machine); mirror it under reports_dir."""
    import optuna

    from budgetnas.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=run, storage=open_storage(storage))
    except KeyError:
        raise RunError(f"no study named {run!r} in {storage.split('@')[-1]}") from None
    shared = study.user_attrs.get(_ATTR)
    if shared is None:
        raise RunError(f"study {run!r} was not started by `budgetnas search` (no run metadata in it)")
    path = Path(reports_dir) / run
    meta = RunMeta(**shared["meta"])
    meta.space, meta.storage = str((path / "space.toml").resolve()), storage
    if "budget" in shared:
        lay_out(path, meta, space=shared["space"], budget=shared["budget"])
    else:  # a study published before budgets were frozen carries the whole budgets file
        path.mkdir(parents=True, exist_ok=True)
        files.write_text(path / "space.toml", shared["space"])
        files.write_text(path / "budgets.toml", shared["budgets"])
        meta.budgets_file = str((path / "budgets.toml").resolve())
        save_meta(path, meta)
    return path, meta, run_budget(path, meta), load_space(path / "space.toml")
