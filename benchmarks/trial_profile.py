"""Where the time of one MNIST search trial goes: gate + build, input pipeline, graph tracing,
training steps, validation.

Runs one candidate at the mnist-15k search fidelity (20k-image subset, 5k validation, 3 epochs,
shift-rotate augmentation) and prints a breakdown.

    BUDGETNAS_DATA_DIR=../shared/datasets python benchmarks/trial_profile.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import budgetnas  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    budget = budgetnas.load_budget("mnist-15k", budgets_file=os.path.join(ROOT, "budgets.toml"))
    space = budgetnas.load_space(os.path.join(ROOT, "spaces", "seed_mnist_13794.toml"))
    splits = budgetnas.load_splits(budget, seed=0, space=space, data_dir=os.environ.get("BUDGETNAS_DATA_DIR"))
    tr, va = splits.train.subset(budget.search.train_subset, 0), splits.val
    recipe = budget.train.resolve({})
    epochs = budget.search.epochs

    t = time.perf_counter()
    verdict = budgetnas.judge({}, budget=budget, space=space, repair=True)
    budgetnas.build_model(verdict.values, space=space, seed=0)
    t_gate = time.perf_counter() - t

    t = time.perf_counter()
    for _ in budgetnas.input_pipeline(tr, classes=10, batch_size=recipe.batch_size, training=True,
                                      augment=recipe.augment, seed=0):
        pass
    t_pipe = time.perf_counter() - t

    t = time.perf_counter()
    trained = budgetnas.train_candidate({}, budget=budget, space=space, splits=splits, epochs=epochs, seed=0,
                                        train_subset=budget.search.train_subset, test=False)
    t_train, h, model = time.perf_counter() - t, trained.history, trained.model

    val = budgetnas.input_pipeline(va, classes=10, batch_size=500, training=False)
    t = time.perf_counter()
    model.evaluate(val, verbose=0)
    t_val = time.perf_counter() - t

    steady = min(h.epoch_seconds[1:])
    tracing = h.epoch_seconds[0] - steady
    steps = sum(h.epoch_seconds) - epochs * t_val - max(tracing, 0)
    outside = t_train - sum(h.epoch_seconds)
    print(f"one trial: {len(tr)} train / {len(va)} val images, {epochs} epochs, batch {recipe.batch_size}, "
          f"augment {recipe.augment}, model {verdict.total_params:,} params")
    rows = [
        ("gate + Keras build", t_gate),
        ("input pipeline alone, one epoch (overlapped with training by prefetch)", t_pipe),
        ("graph tracing (first epoch minus a steady one)", tracing),
        (f"training steps ({epochs} epochs, steady state)", steps),
        (f"validation ({epochs} × {t_val:.1f}s)", epochs * t_val),
        ("build, compile, dataset set-up, callbacks outside epochs", outside),
    ]
    for name, sec in rows:
        print(f"  {name:72s} {sec:7.1f} s")
    print(f"  {'total trial (gate + train)':72s} {t_gate + t_train:7.1f} s   epochs: "
          + ", ".join(f"{s:.1f}" for s in h.epoch_seconds))


if __name__ == "__main__":
    main()
