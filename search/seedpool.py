"""Finalist seeds trained side by side: one spawned process per (finalist, seed) training.

A network of a few thousand parameters cannot keep several CPU cores busy from one TensorFlow
process; independent seeds can. :func:`train_all` runs each :class:`Job` in a pool of processes with
``threads`` TensorFlow threads each, relays every epoch to the caller's ``on_epoch`` and yields each
seed's result as it finishes. A seed trains exactly as :func:`budgetnas.finalists.train_seed` trains it
in the calling process: same split, recipe, checkpoints (so ``--resume`` works) and saved model.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

_events = None  # the queue a pool process reports epochs to (set by _init)


@dataclass
class Job:
    """One seed of one finalist; ``values`` and ``recipe`` are plain data, so a job pickles."""

    label: str
    seed: int
    values: dict[str, Any]
    recipe: dict[str, Any]  # Recipe fields, resolved
    fit: str = "train"  # "all": a final fit on train + validation (budgetnas.finalists.train_seed)


def plan(n_jobs: int, requested: int | None = None) -> tuple[int, int]:
    """(processes, TensorFlow threads per process) for ``n_jobs`` seed trainings.

    ``requested`` processes if given. Otherwise, on a CPU-only machine, every job starts at once
    when there are at most twice as many jobs as cores (single-threaded processes sharing the cores,
    so that 3 seeds on 2 cores do not leave a core idle for the last third), else one process per
    core; next to an accelerator a single process (threads left to TensorFlow: 0), since parallel
    processes would only compete for the one device.
    """
    cores = os.cpu_count() or 1
    if requested is None:
        requested = 1 if _accelerator() else (n_jobs if n_jobs <= 2 * cores else cores)
    procs = max(1, min(requested, n_jobs))
    return procs, (0 if procs == 1 else max(1, cores // procs))


def _accelerator() -> bool:
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def _init(threads: int, events) -> None:
    """Runs in each new pool process before TensorFlow is imported there."""
    global _events
    _events = events
    if threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from budgetnas.compat import QUIET_TF, import_tensorflow_quietly

    if os.environ.get(QUIET_TF):  # the command that spawned this process quieted TensorFlow's start-up
        import_tensorflow_quietly()


def _train(run_path: Path, space_file: str, data_dir: str | None, split_seed: int, job: Job, epochs: int,
           resume: bool):
    from budgetnas import finalists
    from budgetnas.budget import Recipe
    from budgetnas.run.folder import load_meta
    from budgetnas.run.folder import run_budget
    from budgetnas.run.folder import load_data_splits
    from budgetnas.space import load_space

    budget = run_budget(run_path, load_meta(run_path))
    space = load_space(run_path / space_file)
    ds, train, val = load_data_splits(budget, space, data_dir, split_seed)
    result = finalists.train_seed(job.label, budget, space, job.values, Recipe(**job.recipe), train, val, ds.test,
                                  epochs, job.seed, run_path / "finalists", resume,
                                  lambda label, seed, epoch, logs: _events.put((label, seed, epoch, logs)), job.fit)
    return job, result


def train_all(run_path: Path, space_file: str, data_dir: str | None, split_seed: int, jobs: list[Job],
              epochs: int, processes: int, threads: int, resume: bool = False,
              on_epoch: Callable[[str, int, int, dict], None] | None = None) -> Iterator[tuple[Job, Any]]:
    """Train ``jobs`` in ``processes`` spawned processes; yield ``(job, SeedResult)`` as each finishes.

    Every process reads the run's frozen budget and its own copy of the space from ``run_path`` and
    the data split from ``data_dir`` and ``split_seed``, as the search did. The first failing job
    cancels those not started and its error is raised here; an interrupt stops every running seed.
    """
    ctx = mp.get_context("spawn")  # a fresh interpreter: the thread settings apply before TensorFlow starts
    events = ctx.Queue()

    def relay() -> None:
        while True:
            try:
                event = events.get_nowait()
            except queue.Empty:
                return
            if on_epoch is not None:
                on_epoch(*event)

    with cf.ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init, initargs=(threads, events)) as pool:
        pending = {pool.submit(_train, run_path, space_file, data_dir, split_seed, job, epochs, resume)
                   for job in jobs}
        try:
            while pending:
                done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                relay()
                for future in done:
                    yield future.result()
        except BaseException:
            # Ctrl-C reaches the whole process group, SIGTERM only this process: stop the seeds either way
            # (each keeps its last finished epoch's checkpoint), then wait for the pool to wind down.
            for child in mp.active_children():
                child.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        relay()
