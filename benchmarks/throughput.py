"""Throughput of budgetnas's trainer against a plain ``model.fit`` on in-memory NumPy arrays.

Same model, same batch size, same images, same optimizer; both measured in one run, alternating,
after a warm-up epoch each (graph tracing excluded). Prints images/second for each and the ratio
(tool / plain: ≥ 1.0 means the tool's tf.data pipeline is not the bottleneck).

    BUDGETNAS_DATA_DIR=../shared/datasets python benchmarks/throughput.py [--images 20000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import budgetnas  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The plain fit's optimizer and nothing else, for the trainer too (a budget's recipe changed to it)
PLAIN_RECIPE = {"optimizer": "adam", "lr": 0.001, "schedule": "constant", "label_smoothing": 0.0, "weight_decay": 0.0,
                "ema": 0.0}


def plain_fit(space, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    model = budgetnas.build_model({}, space=space, seed=0)
    model.compile(keras.optimizers.Adam(0.001), "categorical_crossentropy", metrics=["accuracy"])
    onehot = keras.utils.to_categorical(y, 10)
    xf = x.astype("float32")
    model.fit(xf[:batch * 4], onehot[:batch * 4], batch_size=batch, epochs=1, verbose=0)  # trace
    t = time.perf_counter()
    model.fit(xf, onehot, batch_size=batch, epochs=1, verbose=0, shuffle=True)
    return len(x) / (time.perf_counter() - t)


def tool_fit(budget, space, arrays, batch: int, augment: str) -> float:
    t = budgetnas.train_candidate({}, budget=budget, space=space, splits=budgetnas.Splits(arrays, None, None),
                                  epochs=2, seed=0, recipe={**PLAIN_RECIPE, "batch_size": batch, "augment": augment})
    return len(arrays) / t.history.epoch_seconds[1]  # the second epoch: no tracing


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    budget = budgetnas.load_budget("mnist-15k", budgets_file=os.path.join(ROOT, "budgets.toml"))
    space = budgetnas.load_space(os.path.join(ROOT, "spaces", "seed_mnist_13794.toml"))
    splits = budgetnas.load_splits(budget, space=space, data_dir=os.environ.get("BUDGETNAS_DATA_DIR"))
    arrays = splits.train.subset(args.images, 0)
    plain, tool, tool_aug = [], [], []
    for _ in range(args.rounds):
        plain.append(plain_fit(space, arrays.x, arrays.y, args.batch))
        tool.append(tool_fit(budget, space, arrays, args.batch, "none"))
        tool_aug.append(tool_fit(budget, space, arrays, args.batch, "shift-rotate"))
        print(f"round: plain {plain[-1]:.0f} img/s, tool {tool[-1]:.0f} img/s, "
              f"tool+augment {tool_aug[-1]:.0f} img/s", flush=True)
    p, t, a = np.median(plain), np.median(tool), np.median(tool_aug)
    print(f"model seed_mnist_13794 (13,794 params), batch {args.batch}, {args.images} MNIST images, "
          f"median of {args.rounds} rounds")
    print(f"plain model.fit (NumPy):      {p:8.0f} images/s")
    print(f"budgetnas trainer (tf.data):  {t:8.0f} images/s   ratio {t / p:.2f}")
    print(f"  with shift-rotate augment:  {a:8.0f} images/s   ratio {a / p:.2f}")


if __name__ == "__main__":
    main()
