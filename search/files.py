"""Files a run writes, written whole or not at all, and read back with one clear line when they are not.

Every writer goes through :func:`replacing`: the new content goes to a temporary name in the same
folder, is flushed to disk, and is renamed over the old file (a rename within one file system is atomic
on POSIX). A ``kill -9`` at any moment leaves the old file or the new one, never half of one. Readers of
JSON the tool wrote use :func:`read_json`, which turns a cut or hand-edited file into a
:class:`~budgetnas.errors.RunError` naming it.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from budgetnas.errors import RunError


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (ending in its name) to write; on success it replaces ``path``.

    A file or a folder may be written there (a SavedModel is a folder). On an exception the temporary
    is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp{os.getpid()}.{path.name}")  # the whole name kept: Keras checks `.weights.h5`
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_dir():
            old = path.with_name(f".{path.name}.old{os.getpid()}")
            _remove(old)
            if path.exists():
                path.rename(old)
            tmp.rename(path)
            _remove(old)
        else:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        _sync_dir(path.parent)
    except BaseException:
        _remove(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    with replacing(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def read_json(path: str | os.PathLike, what: str) -> Any:
    """The JSON in ``path``; a cut or unreadable file is one :class:`RunError` line naming it and ``what`` it holds.

    ``FileNotFoundError`` passes through, for callers that say what to run to create the file.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: cannot read {what}, the file is cut or was edited by hand "
                       f"({type(exc).__name__}: {exc})") from None


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _sync_dir(folder: Path) -> None:
    """Make the rename itself durable (a crash of the machine, not only of the process)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
