"""Every committed result: its exported model loads in plain Keras, meets its budget, scores what its card says."""

import re

import numpy as np
import pytest

from budgetnas import data as data_mod
from budgetnas import gate
from budgetnas.budget import load_budgets
from budgetnas.receptive import table_from_model
from tests.conftest import ROOT, data_dir

BUDGETS = load_budgets(ROOT / "budgets.toml")
# committed results only (reports/<budget>/), not the ignored run folders beside them
EXPORTS = sorted(p for p in (ROOT / "reports").glob("*/export/model.keras") if p.parent.parent.name in BUDGETS)


def custom_objects(path) -> list[str]:
    """Registered (non-Keras) classes a ``.keras`` file needs to load, e.g. an optimizer's schedule."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as z:
        text = z.read("config.json").decode()
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("registered_name") and ">" in str(node["registered_name"]):
                found.append(node["registered_name"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(text))
    return found


def test_every_searched_budget_has_a_canonical_export():
    assert {p.parent.parent.name for p in EXPORTS} == {"mnist-15k", "mnist-8k", "mnist-5k", "mnist-2k", "mnist-820",
                                                            "cifar10-sep-100k"}


@pytest.mark.parametrize("path", EXPORTS, ids=[p.parent.parent.name for p in EXPORTS])
def test_exported_model_meets_its_budget_and_scores_what_its_card_says(path):
    import keras

    budget = BUDGETS[path.parent.parent.name]
    assert custom_objects(path) == []  # loads in plain Keras (this test process may have registered ours)
    model = keras.saving.load_model(path)
    table = table_from_model(model)
    assert gate.violations(budget, table) == []
    card = (path.parent / "MODEL_CARD.md").read_text(encoding="utf-8")
    params = int(re.search(r"Parameters: ([\d,]+) total", card).group(1).replace(",", ""))
    assert model.count_params() == params == table.total_params
    trained = float(re.search(r"These weights: seed \d+ .*?test accuracy ([\d.]+)%", card).group(1))
    # what `export` measured for the .keras file under TensorFlow; equal to the training-time number when the
    # seed trained under TensorFlow, within rounding when it trained under JAX (cifar10-sep-100k)
    claimed = float(re.search(r"^- keras: test accuracy ([\d.]+)%", card, re.M).group(1))
    assert claimed == pytest.approx(trained, abs=0.05)
    test = data_mod.load(budget.dataset, data_dir()).test
    probs = model.predict(test.x.astype(np.float32), batch_size=1000, verbose=0)
    acc = 100 * float((probs.argmax(axis=1) == test.y).mean())
    assert acc == pytest.approx(claimed, abs=0.006)  # the card prints two decimals


def test_learning_curves_name_a_final_fit_which_has_no_validation_curve():
    import warnings

    from budgetnas.finalists import Finalist, SeedResult
    from budgetnas.report.figures import learning_curves

    def finalist(label, history, fit):
        seed = SeedResult(1, 0.99, None, 1.0, history, "m.keras")
        return Finalist(label, 0, "space.toml", {}, "C8", 100, 100, 1000, [3.0, 3.0], 2, {}, seeds=[seed], fit=fit)

    train = {"loss": [0.5, 0.3], "accuracy": [0.9, 0.95]}
    fits = [finalist("trial 0", {**train, "val_loss": [0.4, 0.35], "val_accuracy": [0.92, 0.94]}, "train"),
            finalist("trial 0, all images", train, "all")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of a legend with nothing in it
        fig = learning_curves(fits)
    _, labels = fig.axes[1].get_legend_handles_labels()
    assert labels == ["trial 0", "trial 0, all images"]
