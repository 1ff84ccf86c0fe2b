"""Fused training-mode batch norm (search/fused_bn.py) against Keras' BatchNormalization and a NumPy reference."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("the fused kernel is TensorFlow's", allow_module_level=True)
import tensorflow as tf  # noqa: E402

from budgetnas.fused_bn import fuse_batch_norm  # noqa: E402


def _pair(channels: int, **kwargs):
    """Two identical one-layer models (random gamma, beta, moving statistics); the second one fused."""
    rng = np.random.default_rng(0)
    values = {"gamma": rng.uniform(0.5, 2.0, channels), "beta": rng.normal(0, 1, channels),
              "moving_mean": rng.normal(0, 1, channels), "moving_variance": rng.uniform(0.5, 2.0, channels)}
    models = []
    for _ in range(2):
        inp = keras.Input((5, 6, channels))
        model = keras.Model(inp, keras.layers.BatchNormalization(**kwargs)(inp))
        bn = model.layers[-1]
        bn.set_weights([values[w.name].astype("float32") for w in bn.weights])
        models.append(model)
    assert fuse_batch_norm(models[1]) == 1 and fuse_batch_norm(models[1]) == 0  # once only
    return models


def _op_types(model, shape) -> set[str]:
    fn = tf.function(lambda x: model(x, training=True))
    return {op.type for op in fn.get_concrete_function(tf.TensorSpec(shape, tf.float32)).graph.get_operations()}


def test_the_fused_kernel_is_what_runs():
    plain, fused = _pair(4)
    assert "FusedBatchNormV3" in _op_types(fused, (8, 5, 6, 4))
    assert "FusedBatchNormV3" not in _op_types(plain, (8, 5, 6, 4))


def _numpy_bn(x, gamma, beta, moving_mean, moving_var, momentum, eps):
    """Training-mode batch norm written out: batch statistics over N, H, W (biased variance)."""
    x = x.astype(np.float64)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    y = gamma * (x - mean) / np.sqrt(var + eps) + beta
    return y, moving_mean * momentum + mean * (1 - momentum), moving_var * momentum + var * (1 - momentum)


@pytest.mark.parametrize("kwargs", [{}, {"momentum": 0.9, "epsilon": 1e-5}, {"center": False, "scale": False}])
def test_training_step_matches_keras_and_the_numpy_reference(kwargs):
    channels = 4
    plain, fused = _pair(channels, **kwargs)
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(8, 5, 6, channels)).astype("float32")
    bn = plain.layers[-1]
    gamma = bn.gamma.numpy() if bn.scale else np.ones(channels)
    beta = bn.beta.numpy() if bn.center else np.zeros(channels)
    want_y, want_mm, want_mv = _numpy_bn(x, gamma, beta, bn.moving_mean.numpy(), bn.moving_variance.numpy(),
                                         bn.momentum, bn.epsilon)
    outs, grads = [], []
    for model in (plain, fused):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = model(xt, training=True)
            loss = tf.reduce_sum(y * tf.cos(y))  # a non-trivial upstream gradient
        grads.append(tape.gradient(loss, [xt, *model.trainable_weights]))
        outs.append(y.numpy())
    np.testing.assert_allclose(outs[1], want_y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    for g_plain, g_fused in zip(*grads):
        np.testing.assert_allclose(g_fused.numpy(), g_plain.numpy(), rtol=1e-4, atol=1e-4)
    fbn = fused.layers[-1]
    np.testing.assert_allclose(fbn.moving_mean.numpy(), want_mm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fbn.moving_variance.numpy(), want_mv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fbn.moving_variance.numpy(), bn.moving_variance.numpy(), rtol=1e-6)
    # inference reads the moving statistics, through Keras' own code either way
    np.testing.assert_allclose(fused(x, training=False).numpy(), plain(x, training=False).numpy(), rtol=1e-5,
                               atol=1e-5)


def test_cases_the_kernel_does_not_cover_go_through_keras():
    plain, fused = _pair(3)
    x = np.random.default_rng(2).normal(size=(2, 5, 6, 3)).astype("float32")
    fused.layers[-1].trainable = plain.layers[-1].trainable = False  # frozen: moving statistics, no update
    np.testing.assert_array_equal(fused(x, training=True).numpy(), plain(x, training=True).numpy())
    inp = keras.Input((7,))  # 2-D (after a flatten): Keras' path
    dense = keras.Model(inp, keras.layers.BatchNormalization()(inp))
    assert fuse_batch_norm(dense) == 1
    y = dense(np.ones((4, 7), "float32") * np.arange(4, dtype="float32")[:, None], training=True).numpy()
    np.testing.assert_allclose(y[:, 0], (np.arange(4) - 1.5) / np.sqrt(1.25 + 1e-3), rtol=1e-5)


def test_a_fused_model_trains_like_a_plain_one_and_saves_as_plain_keras(tmp_path):
    from budgetnas.budget import Recipe
    from budgetnas.data import Arrays
    from budgetnas.trainer import train
    from tests.test_reports import custom_objects

    def model():
        keras.utils.set_random_seed(0)
        inp = keras.Input((8, 8, 1))
        x = keras.layers.Conv2D(4, 3, padding="same")(inp)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))

    rng = np.random.default_rng(3)
    data = Arrays(rng.integers(0, 255, (96, 8, 8, 1)).astype("uint8"), rng.integers(0, 3, 96).astype("int64"))
    recipe = Recipe(optimizer="sgd", lr=0.05, schedule="constant", batch_size=32, augment="none")
    plain, fused = model(), model()
    h_plain = train(plain, data, data, recipe, 2, seed=0, classes=3, fused_bn=False)
    h_fused = train(fused, data, data, recipe, 2, seed=0, classes=3)
    assert fused.layers[2]._budgetnas_fused and not getattr(plain.layers[2], "_budgetnas_fused", False)
    np.testing.assert_allclose(h_fused.loss, h_plain.loss, rtol=1e-4)
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    fused.save(tmp_path / "m.keras")
    assert custom_objects(tmp_path / "m.keras") == []
    again = keras.saving.load_model(tmp_path / "m.keras")
    assert type(again.layers[2]) is keras.layers.BatchNormalization
    np.testing.assert_array_equal(again.predict(data.x[:8].astype("float32"), verbose=0),
                                  fused.predict(data.x[:8].astype("float32"), verbose=0))
