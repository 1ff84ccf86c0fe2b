"""The one small error hierarchy of budgetnas.

The CLI turns :class:`BudgetNasError` into one line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BudgetNasError(Exception):
    """Base class for every error a user can cause and fix."""


class ConfigError(BudgetNasError):
    """A space, budget or option is malformed: the message names the file and the field."""


class UnsupportedLayerError(BudgetNasError):
    """A Keras layer the per-layer analysis cannot reason about (never treated as 1x1)."""


class OverBudgetError(BudgetNasError):
    """A space or candidate cannot meet its budget at all."""


class DataError(BudgetNasError):
    """A dataset cannot be found or read."""


class TrialFailed(BudgetNasError):
    """A trial ended without a usable result (e.g. a NaN loss)."""


class RunError(BudgetNasError):
    """A run directory or study is missing, exists already, or does not match."""


class Stopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (``__cause__``: the interrupt itself) stopped a step of a run; ``kept`` says what is saved
    and ``command`` continues the run. A ``KeyboardInterrupt``, so code that stops on Ctrl-C still stops."""

    def __init__(self, kept: str, command: str):
        super().__init__(f"{kept}; continue with `{command}`")
        self.kept, self.command = kept, command
