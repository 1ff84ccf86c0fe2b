"""The trainer's epoch checkpoints: a run stopped midway continues where it stopped."""

import keras
import numpy as np
import pytest

from budgetnas import trainer
from budgetnas.budget import Recipe
from budgetnas.data import Arrays
from budgetnas.errors import RunError


class Stopped(Exception):
    """Stands in for a kill: raised after an epoch's checkpoint was written."""


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 8, 8, 1)).astype("uint8")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("int64")  # learnable
    return Arrays(x, y)


def _model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Rescaling(1 / 255)(inp)
    h = keras.layers.Conv2D(4, 3, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inp, keras.layers.Dense(2, activation="softmax")(h))


# One batch per epoch and no augmentation: the data order cannot differ, so a resumed run must
# land on the weights of an unbroken one (Adam moments and the step count included).
RECIPE = Recipe(optimizer="adam", lr=0.01, schedule="cosine", batch_size=256)


def test_resumed_run_matches_an_unbroken_one(tmp_path, monkeypatch):
    train, val = _data(), _data(64, seed=1)
    unbroken = _model()
    full = trainer.train(unbroken, train, val, RECIPE, 4, seed=0, classes=2)

    ckpt = tmp_path / "ckpt"
    saves = []
    original = trainer._Checkpoint._save_model

    def save_then_stop(self):
        original(self)
        saves.append(1)
        if len(saves) == 2:
            raise Stopped

    monkeypatch.setattr(trainer._Checkpoint, "_save_model", save_then_stop)
    with pytest.raises(Stopped):
        trainer.train(_model(), train, val, RECIPE, 4, seed=0, classes=2, checkpoint_dir=ckpt)
    monkeypatch.undo()
    assert (ckpt / "latest.weights.h5").is_file()

    resumed_model = _model()
    resumed = trainer.train(resumed_model, train, val, RECIPE, 4, seed=0, classes=2, checkpoint_dir=ckpt)
    assert resumed.resumed_at == 2 and resumed.epochs == 4 and resumed.steps == full.steps == 4
    assert int(resumed_model.optimizer.iterations.numpy()) == 4
    np.testing.assert_allclose(resumed.loss, full.loss, rtol=1e-5)
    np.testing.assert_allclose(resumed.val_accuracy, full.val_accuracy)
    for a, b in zip(resumed_model.get_weights(), unbroken.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not ckpt.exists()  # removed once training ended


def test_a_checkpoint_continues_only_with_its_own_epoch_count(tmp_path, monkeypatch):
    train = _data()
    ckpt = tmp_path / "ckpt"

    real = trainer._Checkpoint._save_model

    def save_once_then_stop(self):
        real(self)
        raise Stopped

    monkeypatch.setattr(trainer._Checkpoint, "_save_model", save_once_then_stop)
    with pytest.raises(Stopped):
        trainer.train(_model(), train, None, RECIPE, 3, seed=0, classes=2, checkpoint_dir=ckpt)
    monkeypatch.undo()
    with pytest.raises(RunError, match="3-epoch run"):
        trainer.train(_model(), train, None, RECIPE, 5, seed=0, classes=2, checkpoint_dir=ckpt)
