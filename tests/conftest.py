"""Shared fixtures: seeding, the shipped registry of spaces and budgets, and a tiny real dataset."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
SPACES = sorted((ROOT / "spaces").glob("*.toml"))


def data_dir() -> Path:
    """The real datasets: $BUDGETNAS_DATA_DIR, else the shared folder beside the checkout."""
    for d in (os.environ.get("BUDGETNAS_DATA_DIR"), ROOT.parent / "shared" / "datasets"):
        if d and (Path(d) / "mnist.npz").is_file():
            return Path(d)
    raise RuntimeError("tests need the real datasets: set BUDGETNAS_DATA_DIR to the folder with mnist.npz")


def copy_run(run: Path, reports: Path) -> Path:
    """A copy of a run folder under ``reports`` with its own study file (run.json names it relative to the
    folder): a test may change it freely."""
    import shutil

    target = reports / run.name
    shutil.copytree(run, target)
    return target


def pytest_collection_modifyitems(items):
    """Every test that needs a PostgreSQL server carries the ``postgres`` marker (``-m "not postgres"``)."""
    for item in items:
        if "postgres" in item.nodeid:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> Path:
    """A real, tiny MNIST: 400 training and 200 test images, stratified, as an .npz file."""
    with np.load(data_dir() / "mnist.npz") as f:
        x, y, xt, yt = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    rng = np.random.default_rng(0)
    train_idx = np.concatenate([rng.choice(np.flatnonzero(y == c), 40, replace=False) for c in range(10)])
    test_idx = np.concatenate([rng.choice(np.flatnonzero(yt == c), 20, replace=False) for c in range(10)])
    path = tmp_path_factory.mktemp("data") / "tiny_mnist.npz"
    np.savez(path, x_train=x[train_idx], y_train=y[train_idx], x_test=xt[test_idx], y_test=yt[test_idx])
    return path


@pytest.fixture(scope="session")
def tiny_budgets(tmp_path_factory, tiny_mnist) -> Path:
    """A budgets file for fast CLI tests: the tiny dataset, 100 validation images, 2 epochs."""
    path = tmp_path_factory.mktemp("budgets") / "budgets.toml"
    path.write_text(f'''
[tiny]
description = "test budget"
dataset = "{tiny_mnist}"
space = "{ROOT / 'spaces' / 'mnist_tiny.toml'}"
max_params = 15000
epochs = 2
validation = 100
target = 0.5
[tiny.train]
optimizer = "adam"
lr = 0.003
batch_size = 64
augment = "shift"
[tiny.search]
trials = 3
epochs = 2
min_epochs = 1
finalists = 1
seeds = 2

[tiny-long]
description = "the tiny budget with trials long enough to be interrupted mid-training (tests/test_faults.py)"
dataset = "{tiny_mnist}"
space = "{ROOT / 'spaces' / 'mnist_tiny.toml'}"
max_params = 15000
epochs = 8
validation = 100
[tiny-long.train]
optimizer = "adam"
lr = 0.003
batch_size = 32
[tiny-long.search]
trials = 3
epochs = 8
min_epochs = 8
finalists = 1
seeds = 2

[tiny-strict]
description = "a budget almost nothing fits, with repair off: the gate must reject"
dataset = "{tiny_mnist}"
space = "{ROOT / 'spaces' / 'mnist_tiny.toml'}"
max_params = 3000
epochs = 1
validation = 100
[tiny-strict.train]
batch_size = 64
[tiny-strict.search]
trials = 3
epochs = 1
repair = false
''')
    return path
