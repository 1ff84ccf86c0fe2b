"""budgetnas: find small convolutional networks under a hard parameter budget.

The library API (:mod:`budgetnas.api`: models, budgets, spaces, data; :mod:`budgetnas.run.handle`: searches and
runs) is importable from here; it loads Keras only when first used::

    import budgetnas
    budgetnas.check(model, budget="mnist-15k")
    run = budgetnas.search("mnist-8k", trials=12)
    run.leaderboard()
"""

__version__ = "0.1.0"
_RUNS = ["search", "join", "train", "open_run", "Run", "Board"]  # budgetnas.run.handle
__all__ = ["check", "layer_table", "load_budget", "load_budgets", "load_space", "list_spaces", "judge", "describe",
           "build_model", "Verdict", *_RUNS, "load_splits", "Splits", "train_candidate", "Trained", "input_pipeline",
           "fuse_batch_norm", "TrialFailed"]


def __getattr__(name: str):
    if name in _RUNS:
        from budgetnas.run import handle

        return getattr(handle, name)
    if name in __all__:
        from budgetnas import api

        return getattr(api, name)
    raise AttributeError(f"module 'budgetnas' has no attribute {name!r}")
