"""What the benchmark scripts share: rows kept in a CSV file, and jobs held by one of several processes.

A benchmark's ``run`` may be started twice side by side (one training process per core): each takes the
next job nobody holds (:func:`claim`), and a job whose process died is taken over.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def append_rows(path: Path, fields: list[str], rows: list[dict]) -> None:
    """Append ``rows`` to the CSV file ``path`` (its header first, when the file is new)."""
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerows(rows)


def claim(folder: Path, name: str) -> bool:
    """Hold job ``name`` for this process (``folder/NAME.claim`` holds its process id); False when a live
    process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.claim"
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(path.read_text() or 0), 0)
            return False
        except (ProcessLookupError, ValueError):
            path.unlink(missing_ok=True)  # its process is gone: take it over
            return claim(folder, name)
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    return True


def release(folder: Path, name: str) -> None:
    (folder / f"{name}.claim").unlink(missing_ok=True)


def signed(points: float) -> str:
    """A difference already in percentage points, signed, two decimals, never "-0.00"."""
    return f"{round(points, 2) + 0.0:+.2f}"


def run_once(folder: Path, csv_path: Path, fields: list[str], key: str, run, done=None):
    """Run job ``key`` unless it is done or a live process holds it; ``run()`` returns its row, or a list of rows
    (one per seed, say; empty for a job that failed and leaves no row), appended to ``csv_path``. ``done(rows)``
    says whether the CSV's rows already hold the job: asked again once the job is held, and the rows are written
    before it is let go, so two processes side by side never run one job twice. Returns what ``run`` returned, or
    None when the job was done or another process has it."""
    def finished() -> bool:
        return done is not None and done(read_rows(csv_path))

    if finished() or not claim(folder, key):
        return None
    try:
        if finished():  # another process wrote it between the first look and the claim
            return None
        got = run()
        append_rows(csv_path, fields, got if isinstance(got, list) else [got])
    finally:
        release(folder, key)
    return got
