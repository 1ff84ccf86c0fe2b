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


def test_weight_averaging_ends_on_the_average_and_validates_with_it():
    """ema = m: the model ends with a_1 = w_1, a_t = m·a_{t-1} + (1 - m)·w_t over the weights w_t after
    each step (recomputed here from the weights seen after every step), and every validation scores
    the average, so the last validation accuracy is the finished model's."""
    model, train, val = _model(), _data(256), _data(128, seed=1)
    seen = []
    recipe = Recipe(optimizer="sgd", lr=0.1, schedule="constant", batch_size=64, ema=0.8)
    history = trainer.train(model, train, val, recipe, 3, seed=0, classes=2,
                            on_batch=lambda batch, logs: seen.append([w.copy() for w in model.get_weights()]))
    assert len(seen) == 12
    average = seen[0]
    for weights in seen[1:]:
        average = [0.8 * a + 0.2 * w for a, w in zip(average, weights)]
    for got, want, last in zip(model.get_weights(), average, seen[-1]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert not np.allclose(got, last)  # it is not simply the last step's weights
    acc, _ = trainer.evaluate(model, val, 2)
    assert history.val_accuracy[-1] == pytest.approx(acc)


def _bn_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Rescaling(1 / 255)(inp)
    h = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Activation("relu")(h))
    return keras.Model(inp, keras.layers.Dense(2, activation="softmax")(h))


def _batch_statistics(model, images, batch_size):
    """The mean over whole batches of each batch's per-channel mean and plain variance of the batch norm's
    input, in NumPy from the conv's outputs."""
    conv = keras.Model(model.input, model.get_layer("conv").output)
    batches = [np.asarray(conv(images[i:i + batch_size]), "float64")
               for i in range(0, len(images) - batch_size + 1, batch_size)]
    return (np.mean([b.mean(axis=(0, 1, 2)) for b in batches], axis=0),
            np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0))


@pytest.mark.parametrize("fused", [False, True])
def test_recalibrated_batch_norm_statistics_are_the_mean_of_the_batch_statistics(fused):
    from budgetnas.fused_bn import fuse_batch_norm

    model, images = _bn_model(), _data(200).x.astype("float32")
    if fused:
        assert fuse_batch_norm(model) == 1
    trainer.recalibrate_batch_norm(model, images, 64)  # three whole batches; the last 8 images are left out
    bn = model.get_layer("bn")
    mean, variance = _batch_statistics(model, images, 64)
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), variance, rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.99  # put back


def test_weight_averaging_with_batch_norm_scores_the_average_with_its_own_statistics():
    """Keras averages the trainable weights only; the batch norms' statistics of the finished model are
    measured for the average, validation scores the model training ends with, and measuring them for a
    validation leaves training as it was: with validation it ends on the same weights as without."""
    train, val = _data(256), _data(128, seed=1)
    recipe = Recipe(optimizer="sgd", lr=0.1, schedule="constant", batch_size=64, ema=0.8)
    quiet, scored = _bn_model(), _bn_model()
    trainer.train(quiet, train, None, recipe, 3, seed=0, classes=2)
    history = trainer.train(scored, train, val, recipe, 3, seed=0, classes=2)
    for a, b in zip(quiet.get_weights(), scored.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    bn = scored.get_layer("bn")
    mean, variance = _batch_statistics(scored, trainer._calibration_images(train, 64, 0), 64)
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), variance, rtol=1e-4, atol=1e-5)
    acc, _ = trainer.evaluate(scored, val, 2)
    assert history.val_accuracy[-1] == pytest.approx(acc)


def test_an_ema_outside_0_1_names_the_field(tmp_path):
    from budgetnas.budget import load_budgets
    from budgetnas.errors import ConfigError

    f = tmp_path / "b.toml"
    f.write_text('[b]\ndataset = "mnist"\nspace = "s.toml"\nmax_params = 10\nepochs = 1\n[b.train]\nema = 1.5\n')
    with pytest.raises(ConfigError, match=r"b.toml: b.train.ema = 1.5 must be in \[0, 1\)"):
        load_budgets(f)


def test_staircase_schedule_steps_down_every_n_epochs():
    # PyTorch's StepLR(step_size=2, gamma=0.5) by epoch: 0.01, 0.01, 0.005, 0.005, 0.0025, ...
    sched = trainer.lr_schedule(Recipe(lr=0.01, schedule="staircase", decay=0.5, decay_every=2), 10, 6)
    got = [float(sched(step)) for step in (0, 19, 20, 39, 40, 59)]
    assert got == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025])


def test_clipnorm_bounds_the_update_of_one_sgd_step():
    # plain SGD, lr 1, a gradient of global norm 10: the step is the gradient scaled to norm 1
    opt = trainer.make_optimizer(Recipe(optimizer="sgd", lr=1.0, momentum=0.0, clipnorm=1.0), 1, 1)
    assert opt.global_clipnorm == 1.0
    w = keras.Variable(np.zeros(2, "float32"))
    opt.apply_gradients([(keras.ops.convert_to_tensor(np.array([6.0, 8.0], "float32")), w)])
    np.testing.assert_allclose(w.numpy(), [-0.6, -0.8], rtol=1e-5)


@pytest.mark.parametrize("train, match", [
    ('schedule = "staircase"\ndecay = 0.5', r"staircase.*decay_every ≥ 1"),
    ('schedule = "staircase"\ndecay = 1.5\ndecay_every = 2', r"0 < decay < 1"),
    ("clipnorm = -1.0", r"b.train.clipnorm = -1.0 must be ≥ 0"),
])
def test_bad_staircase_or_clipnorm_names_the_field(tmp_path, train, match):
    from budgetnas.budget import load_budgets
    from budgetnas.errors import ConfigError

    f = tmp_path / "b.toml"
    f.write_text(f'[b]\ndataset = "mnist"\nspace = "s.toml"\nmax_params = 10\nepochs = 1\n[b.train]\n{train}\n')
    with pytest.raises(ConfigError, match=match):
        load_budgets(f)
