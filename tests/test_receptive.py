"""Receptive fields against hand-computed tables and against an empirical, gradient-based measurement."""

import random

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from budgetnas.build import build_model, plan
from budgetnas.errors import UnsupportedLayerError
from budgetnas.receptive import table_from_model, table_from_plan
from budgetnas.space import load_space
from tests.conftest import ROOT


def spatial_rows(table):
    return [(r.kind, r.output_shape[:2], r.rf[0], r.jump[0], r.start[0]) for r in table.rows
            if r.kind in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "MaxPooling2D")]


def test_seed_mnist_table_matches_hand_computation():
    # Worked by hand: rf += (k-1)*jump, start += ((k-1)/2 - pad)*jump, jump *= stride.
    expected = [
        ("Conv2D", (26, 26), 3, 1, 1.0),
        ("Conv2D", (24, 24), 5, 1, 2.0),
        ("Conv2D", (24, 24), 5, 1, 2.0),  # 1x1 transition
        ("MaxPooling2D", (12, 12), 6, 2, 2.5),
        ("SeparableConv2D", (10, 10), 10, 2, 4.5),
        ("Conv2D", (8, 8), 14, 2, 6.5),
        ("SeparableConv2D", (6, 6), 18, 2, 8.5),
        ("Conv2D", (4, 4), 22, 2, 10.5),
        ("Conv2D", (1, 1), 28, 2, 13.5),  # 4x4 kernel: sees the whole 28x28 image, centred
    ]
    table = table_from_model(build_model(load_space(ROOT / "spaces" / "seed_mnist_13794.toml"), {}))
    assert spatial_rows(table) == expected
    assert table.final_rf == (22, 22)  # the last map before the conv that shrinks it to 1x1
    params = [r.params for r in table.rows if r.params]
    assert params == [160, 64, 4640, 128, 528, 416, 64, 2320, 416, 64, 2320, 64, 2570, 40]


def test_seed_cifar_table_matches_hand_computation():
    expected = [
        ("SeparableConv2D", (30, 30), 3, 1, 1.0),
        ("SeparableConv2D", (28, 28), 5, 1, 2.0),
        ("MaxPooling2D", (14, 14), 6, 2, 2.5),
        ("SeparableConv2D", (14, 14), 10, 2, 2.5),  # "same": one pixel of padding
        ("SeparableConv2D", (12, 12), 14, 2, 4.5),
        ("MaxPooling2D", (6, 6), 16, 4, 5.5),
        ("SeparableConv2D", (6, 6), 24, 4, 5.5),
        ("SeparableConv2D", (4, 4), 32, 4, 9.5),
        ("MaxPooling2D", (2, 2), 36, 8, 11.5),
        ("SeparableConv2D", (1, 1), 44, 8, 15.5),
    ]
    table = table_from_model(build_model(load_space(ROOT / "spaces" / "seed_cifar10_separable_81973.toml"), {}))
    assert spatial_rows(table) == expected


def test_macs_of_seed_mnist_first_layers():
    table = table_from_model(build_model(load_space(ROOT / "spaces" / "seed_mnist_13794.toml"), {}))
    convs = [r for r in table.rows if r.macs]
    assert convs[0].macs == 26 * 26 * 9 * 1 * 16
    assert convs[1].macs == 24 * 24 * 9 * 16 * 32
    assert convs[3].macs == 10 * 10 * (9 * 16 + 16 * 16)  # separable: depthwise + pointwise


@pytest.mark.parametrize("name", ["mnist_tiny", "cifar10_separable_residual"])
def test_plan_table_equals_keras_table(name):
    space = load_space(ROOT / "spaces" / f"{name}.toml")
    rng = random.Random(3)
    for _ in range(5):
        values = space.sample(rng)
        p = plan(space.resolve(values))
        if p.problems:
            continue
        a = table_from_plan(p)
        b = table_from_model(build_model(space, values))
        strip = lambda t: sorted((r.name, r.kind, r.output_shape, r.params, r.macs, r.rf, r.jump, r.start)  # noqa: E731
                                 for r in t.rows)
        assert strip(a) == strip(b)


def random_architecture(rng: random.Random):
    """Random conv/separable/depthwise/avg-pool/padding stacks with strides and dilations."""
    size = 64
    x = inp = keras.Input((size, size, 1))
    ones = keras.initializers.Constant(1.0)
    for _ in range(rng.randint(2, 6)):
        kind = rng.choice(["conv", "sep", "dw", "pool", "pad"])
        k = rng.choice([1, 2, 3, 5])
        dilation = rng.choice([1, 1, 2, 3]) if kind != "pool" else 1
        stride = 1 if dilation > 1 else rng.choice([1, 1, 2, 3])
        padding = rng.choice(["valid", "same"])
        if kind == "conv":
            layer = layers.Conv2D(2, k, strides=stride, dilation_rate=dilation, padding=padding,
                                  kernel_initializer=ones, bias_initializer="zeros")
        elif kind == "sep":
            layer = layers.SeparableConv2D(2, k, strides=stride, dilation_rate=dilation, padding=padding,
                                           depthwise_initializer=ones, pointwise_initializer=ones,
                                           bias_initializer="zeros")
        elif kind == "dw":
            layer = layers.DepthwiseConv2D(k, strides=stride, dilation_rate=dilation, padding=padding,
                                           depthwise_initializer=ones, bias_initializer="zeros")
        elif kind == "pool":
            layer = layers.AveragePooling2D(max(k, 2), strides=stride, padding=padding)
        else:
            layer = layers.ZeroPadding2D(((rng.randint(0, 2), rng.randint(0, 2)), (rng.randint(0, 2), 0)))
        try:
            y = layer(x)
        except ValueError:  # the layer would shrink the map below 1x1
            break
        if y.shape[1] < 2 or y.shape[2] < 2:
            break
        x = y
    return keras.Model(inp, x)


def empirical_extent(model, i: int, j: int):
    """Rows and columns of the input that influence output unit (i, j, channel 0): gradient != 0."""
    x = tf.ones((1, *model.input_shape[1:]))

    @tf.function  # a graph computes only the input gradient (eager TF also runs the filter
    def grad(x):  # gradients, and oneDNN's can crash on some dilated residual stacks)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x)[0, i, j, 0]
        return tape.gradient(y, x)

    g = grad(x)[0, :, :, 0].numpy()
    rows, cols = np.nonzero(np.abs(g) > 0)
    if rows.size == 0:
        return None  # the unit sees only padding
    return (int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))


def check_rf_against_gradients(model):
    """Exact extent for a unit whose RF lies inside the image; inside the clipped RF at the borders.

    (At a border, dilation holes can leave the last in-image pixel unseen, so only containment holds.)
    """
    table = table_from_model(model)
    last = table.rows[-1]
    h, w = model.input_shape[1:3]
    oh, ow = last.output_shape[:2]

    def interval(i: int, j: int):
        out = []
        for a, idx in ((0, i), (1, j)):
            centre = last.start[a] + idx * last.jump[a]
            lo, hi = centre - (last.rf[a] - 1) / 2, centre + (last.rf[a] - 1) / 2
            assert float(lo).is_integer() and float(hi).is_integer()  # an RF covers whole pixels
            out.append((int(lo), int(hi)))
        return out

    inside = [(i, j) for i in range(oh) for j in range(ow)
              if all(0 <= lo and hi < size for (lo, hi), size in zip(interval(i, j), (h, w)))]
    assert inside, "the generator should leave at least one unit whose RF fits in the image"
    i, j = inside[len(inside) // 2]
    assert empirical_extent(model, i, j) == tuple(interval(i, j))
    for i, j in {(0, 0), (oh - 1, ow - 1)}:
        clipped = [(max(0, lo), min(size - 1, hi)) for (lo, hi), size in zip(interval(i, j), (h, w))]
        got = empirical_extent(model, i, j)
        if got is not None:
            assert all(c[0] <= g[0] and g[1] <= c[1] for g, c in zip(got, clipped))


@pytest.mark.parametrize("seed", range(25))
def test_analytic_rf_matches_gradient_measurement(seed):
    check_rf_against_gradients(random_architecture(random.Random(seed)))


def random_residual_architecture(rng: random.Random):
    """Residual blocks as the builder makes them: 1-3 'same' convs (strided, dilated) added to their
    input, or to a strided 1x1 projection of it; all-ones weights, so no gradient cancels."""
    ones = keras.initializers.Constant(1.0)
    x = inp = keras.Input((48, 48, 1))
    x = layers.Conv2D(2, 3, padding="same", kernel_initializer=ones)(x)
    for _ in range(rng.randint(1, 3)):
        y, stride = x, 1
        for _ in range(rng.randint(1, 3)):
            k = rng.choice([1, 3, 5])
            d = 1 if k == 1 else rng.choice([1, 1, 2])  # (a dilated 1x1 conv crashes TF's oneDNN filter gradient)
            s = 1 if d > 1 else rng.choice([1, 1, 2])
            stride *= s
            conv = rng.choice(["conv", "sep", "dw"])
            if conv == "conv":
                y = layers.Conv2D(2, k, strides=s, dilation_rate=d, padding="same", kernel_initializer=ones)(y)
            elif conv == "sep":
                y = layers.SeparableConv2D(2, k, strides=s, dilation_rate=d, padding="same",
                                           depthwise_initializer=ones, pointwise_initializer=ones)(y)
            else:
                y = layers.DepthwiseConv2D(k, strides=s, dilation_rate=d, padding="same",
                                           depthwise_initializer=ones)(y)
        skip = x if stride == 1 else layers.Conv2D(2, 1, strides=stride, kernel_initializer=ones)(x)
        y = layers.Add()([y, skip])
        if max(table_from_model(keras.Model(inp, y)).rows[-1].rf) > 36:
            break  # keep some output unit's field inside the 48x48 image
        x = y
    return keras.Model(inp, x)


@pytest.mark.parametrize("seed", range(15))
def test_residual_rf_matches_gradient_measurement(seed):
    model = random_residual_architecture(random.Random(seed))
    assert any(type(layer).__name__ == "Add" for layer in model.layers)
    check_rf_against_gradients(model)


def test_residual_rf_of_a_built_network_matches_gradients():
    """The builder's own residual stages, each block's output checked against gradients."""
    from budgetnas.build import build_model

    space = load_space(ROOT / "spaces" / "cifar10_separable_residual.toml")
    values = space.sample(random.Random(0))
    values.update({k: True for k in values if k.endswith(".residual")})
    values.update({"blocks[0].channels": 32, "blocks[1].channels": 64})  # stage 1 widens: a projection
    config = build_model(space, values).get_config()
    for layer in config["layers"]:  # linear, average-pooled: no ReLU or max hides a pixel's gradient
        if layer["class_name"] == "Activation":
            layer["config"]["activation"] = "linear"
        if layer["class_name"] == "MaxPooling2D":
            layer["class_name"] = "AveragePooling2D"
            layer.pop("registered_name", None)
    linear = keras.Model.from_config(config)
    linear.set_weights([np.ones_like(w) for w in linear.get_weights()])
    adds = [layer for layer in linear.layers if type(layer).__name__ == "Add"]
    assert len(adds) == 3 and any(type(layer).__name__ == "SeparableConv2D" and layer.get_config()["kernel_size"]
                                  == (1, 1) for layer in linear.layers[:10])
    checked = 0
    for add in adds:
        trunk = keras.Model(linear.input, add.output)
        if max(table_from_model(trunk).rows[-1].rf) <= 24:  # some unit's field lies inside the 32x32 image
            check_rf_against_gradients(trunk)
            checked += 1
    assert checked >= 1


def test_unsupported_layer_is_named():
    inp = keras.Input((8, 8, 1))
    out = layers.UpSampling2D()(inp)
    with pytest.raises(UnsupportedLayerError, match="up_sampling2d.*UpSampling2D"):
        table_from_model(keras.Model(inp, out))


def test_aligned_branches_merge_and_misaligned_are_refused():
    inp = keras.Input((16, 16, 1))
    a = layers.Conv2D(2, 3, padding="same")(inp)
    b = layers.Conv2D(2, 5, padding="same")(inp)
    table = table_from_model(keras.Model(inp, layers.Add()([a, b])))
    assert table.rows[-1].rf == (5, 5)
    c = layers.Conv2D(2, 3)(inp)
    e = layers.Conv2D(2, 1)(layers.Conv2D(2, 3)(inp))
    table = table_from_model(keras.Model(inp, layers.Concatenate()([c, e])))
    assert table.rows[-1].rf == (3, 3)
    # Centres may differ (the union is what a unit sees); steps over the input may not.
    shifted = layers.Conv2D(2, 3)(layers.ZeroPadding2D(((1, 1), (1, 1)))(inp))  # 16x16 but starts at 0, not 1
    unshifted = layers.Conv2D(2, 3)(layers.ZeroPadding2D(((0, 2), (0, 2)))(inp))
    table = table_from_model(keras.Model(inp, layers.Add()([shifted, unshifted])))
    assert table.rows[-1].rf == (4, 4) and table.rows[-1].start == (0.5, 0.5)  # pixels -1..2 (padding included)
    coarse = layers.MaxPooling2D()(inp)  # 8x8, one unit every 2 pixels
    fine = layers.Conv2D(1, 9)(inp)  # 8x8, one unit every pixel
    with pytest.raises(UnsupportedLayerError, match="different grids"):
        table_from_model(keras.Model(inp, layers.Add()([coarse, fine])))
