"""A run's study in optuna-dashboard (the optional extra: ``pip install 'budgetnas[dashboard]'``).

Every trial carries its architecture string, the values actually built (after repair), params, MACs,
status and reason as user attributes, so the dashboard's trial table shows what was trained, not only
what the sampler proposed.
"""

from __future__ import annotations

from pathlib import Path

from budgetnas.errors import ConfigError
from budgetnas.run.folder import load_meta
from budgetnas.storage import open_storage


def serve(path: Path, storage: str | None, host: str, port: int) -> None:
    """Serve optuna-dashboard on ``host:port`` for the run at ``path`` until interrupted."""
    try:
        import optuna_dashboard
    except ImportError:
        raise ConfigError("budgetnas dashboard needs optuna-dashboard: pip install 'budgetnas[dashboard]'") from None
    meta = load_meta(path)
    if not meta.storage:
        raise ConfigError(f"{path}: a `train` run has no study to show (no search ran)")
    optuna_dashboard.run_server(open_storage(storage or meta.storage), host=host, port=port)
