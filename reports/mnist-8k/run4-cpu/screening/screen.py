"""Recipe screening for the mnist-8k winner: one seed, 15 epochs, prints training and *validation*
accuracy per epoch (the test set is never touched here).

Run from the repository root (BUDGETNAS_DATA_DIR or ../shared/datasets holds mnist.npz):

    ONE_THREAD=1 python reports/mnist-8k/run4-cpu/screening/screen.py \
        '{"values": <trial13_values.json>, "recipe": {"augment": "rotate", "lr": 0.1}}'

The budget's recipe (budgets.toml, mnist-8k.train) with the fields in "recipe" replaced; the validation
split is the run's (5,000 images, split seed 2) and the training seed "seed" (default 2). ONE_THREAD=1
pins TensorFlow to one thread, so two screens share the two cores without oversubscribing them.
"""
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.environ.get("SNAP", os.getcwd()))  # SNAP: a frozen copy of the package to run from

if os.environ.get("ONE_THREAD"):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

from search import trainer  # noqa: E402
from search.budget import get_budget  # noqa: E402
from search.build import build_model  # noqa: E402
from search.session import load_data_splits  # noqa: E402
from search.space import load_space  # noqa: E402

args = json.loads(sys.argv[1])
budget = get_budget(args.get("budget", "mnist-8k"), "budgets.toml")
space = load_space(args.get("space", "reports/mnist-8k/run3-gpu/space.toml"))
recipe = dataclasses.replace(budget.train, **args.get("recipe", {}))
epochs, seed = args.get("epochs", 15), args.get("seed", 2)
data_dir = os.environ.get("BUDGETNAS_DATA_DIR", "../shared/datasets")
_, train, val = load_data_splits(budget, space, data_dir, 2)
model = build_model(space, args["values"], seed=seed)
print("params", model.count_params(), "recipe", recipe, flush=True)
t0 = time.time()


def on_epoch(e, logs):
    print(f"epoch {e} {time.time() - t0:.0f}s loss {logs['loss']:.4f} acc {logs['accuracy']:.4f} "
          f"val {logs['val_accuracy']:.4f}", flush=True)


trainer.train(model, train, val, recipe, epochs, seed=seed, classes=space.classes, on_epoch=on_epoch)
