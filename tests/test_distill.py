"""Distillation (budgetnas.distill) and the final fit on all training images (final_fit = "all")."""

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest

import budgetnas
from budgetnas import distill
from budgetnas.budget import Recipe, _recipe
from budgetnas.cli import main
from budgetnas.data import Arrays, pipeline
from budgetnas.errors import ConfigError
from budgetnas.finalists import Finalist, SeedResult, winner


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _reference_loss(labels, student_p, teacher_p, alpha, temperature):
    """Hinton et al. (2015), written out in NumPy: (1 - a)·CE + a·T²·KL(teacher_T ‖ student_T)."""
    ce = -(labels * np.log(student_p)).sum(axis=-1).mean()
    t = _log_softmax(np.log(teacher_p) / temperature)
    s = _log_softmax(np.log(student_p) / temperature)
    kl = (np.exp(t) * (t - s)).sum(axis=-1).mean()
    return (1 - alpha) * ce + alpha * temperature ** 2 * kl


@pytest.mark.parametrize("clean", [False, True])
def test_the_distillation_loss_matches_a_numpy_reference(clean):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5)).astype("float32")
    labels = np.eye(4, dtype="float32")[rng.integers(0, 4, 8)]
    student = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="softmax")])
    teacher_model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="softmax")])
    teacher = distill.Teacher(teacher_model, "t", 24, None, 0.0, "k", True)
    d = distill.distiller(student, teacher, alpha=0.7, temperature=3.0, classes=4)
    sp, tp = np.asarray(student(x)), np.asarray(teacher_model(x))
    y = np.concatenate([labels, np.log(tp)], axis=1) if clean else labels
    d.compile(loss=keras.losses.CategoricalCrossentropy())
    got = float(d.compute_loss(x, y, student(x), training=True))
    assert got == pytest.approx(_reference_loss(labels, sp, tp, 0.7, 3.0), rel=1e-4)
    # validation batches score the labels' loss alone
    ce = -(labels * np.log(sp)).sum(axis=-1).mean()
    assert float(d.compute_loss(x, labels, student(x), training=False)) == pytest.approx(ce, rel=1e-4)


def test_clean_targets_follow_their_image_through_the_shuffle():
    n = 50
    x = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None], 4, axis=1).repeat(4, axis=2)
    soft = np.repeat(np.arange(n, dtype=np.float32)[:, None], 3, axis=1)
    batches = list(pipeline(Arrays(x, np.arange(n) % 3), 3, 16, training=True, seed=1, soft=soft))
    seen = []
    for xb, yb in batches:
        xb, yb = np.asarray(xb), np.asarray(yb)
        assert yb.shape[1] == 6
        np.testing.assert_array_equal(yb[:, 3:], np.repeat(xb[:, 0, 0, :1], 3, axis=1))
        np.testing.assert_array_equal(yb[:, :3].argmax(axis=1), xb[:, 0, 0, 0].astype(int) % 3)
        seen += list(xb[:, 0, 0, 0])
    assert sorted(seen) != list(seen) and sorted(seen) == list(range(n))  # shuffled, each image once


@pytest.mark.parametrize("table, message", [
    ({"distill_alpha": 1.5}, "distill_alpha = 1.5 must be in [0, 1]"),
    ({"distill_temperature": 0.0}, "distill_temperature = 0.0 must be > 0"),
    ({"teacher_epochs": 0}, "teacher_epochs = 0 must be ≥ 1"),
    ({"distill_targets": "soft"}, "distill_targets"),
    ({"teacher": ["a", "b"]}, "one teacher per recipe"),
    ({"mixup": 0.6}, "mixup = 0.6 must be in [0, 0.5]"),
    ({"mixup": 0.2, "teacher": "t.toml", "distill_targets": "clean"}, "mixup: mixes one-hot labels"),
])
def test_bad_distillation_words_are_one_line_naming_the_field(table, message):
    with pytest.raises(ConfigError, match=None) as exc:
        _recipe("budgets.toml", "b.train", table)
    assert str(exc.value).startswith("budgets.toml: b.train.") and message in str(exc.value)


def test_the_teacher_key_changes_with_what_decides_the_teacher():
    rng = np.random.default_rng(0)
    a = Arrays(rng.integers(0, 255, (20, 4, 4, 1), dtype=np.uint8), rng.integers(0, 3, 20))
    b = Arrays(a.x.copy(), a.y.copy())
    b.x[0, 0, 0, 0] ^= 1
    r = distill.teacher_recipe(Recipe(teacher="t", distill_alpha=0.9, lr=0.01))
    assert r.teacher == "" and r.distill_alpha == Recipe.distill_alpha and r.lr == 0.01
    key = distill.teacher_key("space", r, 15, a, 0)
    assert key == distill.teacher_key("space", r, 15, Arrays(a.x.copy(), a.y.copy()), 0)
    assert len({key, distill.teacher_key("space", r, 15, b, 0), distill.teacher_key("space", r, 16, a, 0),
                distill.teacher_key("space2", r, 15, a, 0), distill.teacher_key("space", Recipe(), 15, a, 0),
                distill.teacher_key("space", r, 15, a, 1)}) == 6


@pytest.mark.slow
def test_a_teacher_trains_once_and_every_later_student_reads_it_from_the_cache(tmp_path, monkeypatch, tiny_budgets):
    monkeypatch.setenv(distill.CACHE_ENV, str(tmp_path / "cache"))
    recipe = {"teacher": "teachers/mnist_30k", "teacher_epochs": 1, "distill_alpha": 0.5}
    kw = dict(budget="tiny", space="anchors/golf_820", budgets_file=tiny_budgets, epochs=1, test=False)
    first = budgetnas.train_candidate({}, recipe=recipe, seed=1, checkpoint_dir=tmp_path / "ckpt", **kw)
    second = budgetnas.train_candidate({}, recipe={**recipe, "distill_targets": "clean"}, seed=2, **kw)
    t1, t2 = first.history.teacher, second.history.teacher
    assert not t1["cached"] and t2["cached"] and t1["key"] == t2["key"]
    assert t1["params"] == 33450 and t1["val_accuracy"] == t2["val_accuracy"]
    assert len(list((tmp_path / "cache" / "teachers").iterdir())) == 1
    assert first.params == 820  # the budget counts the student alone


def _finalist(label, trial, val, fit="train"):
    seeds = [SeedResult(s, 0.9, val, 1.0, {}, "m.keras") for s in (0, 1)]
    return Finalist(label, trial, "space.toml", {}, "C", 1, 1, 1, [1.0], 1, {}, val, seeds, fit)


def test_the_final_fit_of_the_validation_winner_is_the_winner():
    a, b = _finalist("trial 1", 1, 0.95), _finalist("trial 2", 2, 0.97)
    refit = _finalist("trial 2 (all images)", 2, None, fit="all")
    assert winner([a, b]) is b and winner([a, b, refit]) is refit
    assert refit.chosen_seed().seed == 0  # no validation left: the run's first seed, not a test-set pick
    assert any("Final fit" in n for n in refit.training_notes())


@pytest.mark.slow
@pytest.mark.parametrize("finalists", [1, 2])
def test_final_fit_trains_the_winner_on_train_and_validation(capsys, tmp_path, tiny_budgets, finalists):
    text = tiny_budgets.read_text().replace("[tiny.search]\n", "[tiny.search]\nfinal_fit = \"all\"\n", 1)
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(text.replace("finalists = 1", f"finalists = {finalists}", 1))
    assert main(["--budgets", str(budgets), "search", "--budget", "tiny", "--name", "r", "--reports-dir",
                 str(tmp_path), "--trials", "2", "--max-epochs", "1", "--jobs", "1"]) == 0
    data = json.loads((tmp_path / "r" / "finalists.json").read_text())
    fins = data["finalists"]
    assert data["protocol"]["final_fit"] == "all"
    assert [f["fit"] for f in fins] == ["train"] * (finalists if finalists > 1 else 0) + ["all"]
    refit = fins[-1]
    assert refit["label"].endswith("(all images)")
    if finalists > 1:  # the refit is of the finalist validation chose
        best = max(fins[:-1], key=lambda f: np.mean([s["final_val_accuracy"] for s in f["seeds"]]))
        assert refit["trial"] == best["trial"]
    for s in refit["seeds"]:
        assert s["final_val_accuracy"] is None and s["history"]["val_accuracy"] == []
        # 400 images: 100 validation + 300 training; the final fit steps through all 400 in batches of 64
        assert s["history"]["steps"] == 2 * math.ceil(400 / 64)
    assert "Final fit" in (tmp_path / "r" / "report.md").read_text()


def test_a_distilled_search_trial_records_the_optimizer_steps_it_took(tmp_path, monkeypatch, tiny_budgets):
    """A distilled trial's optimizer is its distiller's, not the network's: the record counts the steps taken."""
    monkeypatch.setenv(distill.CACHE_ENV, str(tmp_path / "cache"))
    text = Path(tiny_budgets).read_text()
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(text.replace('augment = "shift"\n[tiny.search]', 'augment = "shift"\nteacher = '
                                    '"teachers/mnist_30k"\nteacher_epochs = 1\n[tiny.search]', 1))
    run = budgetnas.search("tiny", budgets_file=budgets, name="d", trials=1, reports_dir=tmp_path / "r",
                           min_epochs=2, retrain=False)
    [rec] = run.records()
    assert rec.status == "complete" and rec.epochs == 2
    assert rec.steps == 2 * math.ceil(300 / 64)  # 300 training images (400 less 100 validation), batches of 64
