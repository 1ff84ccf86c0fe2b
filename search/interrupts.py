"""Ctrl-C and SIGTERM: one way to stop, and a quiet moment to record what stopped.

SIGTERM (a scheduler ending a job, ``kill``, a closing container) raises :class:`Terminated`, a
``KeyboardInterrupt``, so it takes exactly the path Ctrl-C takes: the running trial is recorded as
interrupted and is trained again on ``--resume``; finished work stays. While that record is being
written, :func:`deferred` holds further signals, so a second Ctrl-C cannot cut it in half.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """The process was sent SIGTERM; handled as Ctrl-C is."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextmanager
def handled(restore: bool = True) -> Iterator[None]:
    """While inside, SIGTERM stops the process as Ctrl-C does (main thread only; a no-op elsewhere).

    With ``restore`` the handlers found on entry are put back on exit (the command line run in-process,
    in tests and notebooks); a process that exits right after leaves them, so that a last Ctrl-C
    ignored by :func:`ignore` stays ignored until the exit. SIGINT keeps what the process inherited: a
    job that a non-interactive shell starts in the background ignores it, as its shell asked.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        if restore:
            for s, handler in previous.items():
                signal.signal(s, handler)


def ignore() -> None:
    """Ignore SIGINT and SIGTERM from now on (main thread only): for a process that is already on its way out."""
    if threading.current_thread() is threading.main_thread():
        for s in _SIGNALS:
            signal.signal(s, signal.SIG_IGN)


def reason(exc: BaseException) -> str:
    return "stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"


def exit_code(exc: BaseException) -> int:
    """128 + the signal number, as a shell reports a process the signal ended."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while a record is written; a signal that came meanwhile is raised after it.

    When the block itself is handling an interrupt, signals held during it only join that one.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    held = [s for s in held if previous[s] is not signal.SIG_IGN]
    if held:
        raise Terminated() if held[0] == signal.SIGTERM else KeyboardInterrupt()
