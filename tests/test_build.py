"""The builder against Keras's own count: seed networks exactly, the pure-Python plan on samples."""

import random

import pytest

from budgetnas.build import build_model, plan
from budgetnas.receptive import table_from_model
from budgetnas.space import load_space
from tests.conftest import ROOT, SPACES


@pytest.mark.parametrize("name, total, trainable", [
    ("seed_mnist_13794", 13_794, 13_582),
    ("seed_cifar10_separable_81973", 81_973, 80_629),
    ("cifar10_base_network", 1_172_410, 1_172_410),
    ("cifar10_residual_99120", 99_120, 97_424),  # the residual search's pick, as its trial reported
])
def test_seed_networks_reproduce_published_counts(name, total, trainable):
    space = load_space(ROOT / "spaces" / f"{name}.toml")
    model = build_model(space, {})
    table = table_from_model(model)
    assert model.count_params() == total
    assert table.trainable_params == trainable
    p = plan(space.resolve({}))
    assert (p.total_params, p.trainable_params) == (total, trainable)


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_plan_matches_keras_on_random_samples(path):
    space = load_space(path)
    rng = random.Random(1)
    checked = 0
    for _ in range(20 if space.params else 1):
        values = space.sample(rng)
        p = plan(space.resolve(values))
        if p.problems:  # a collapsed feature map: Keras would refuse to build it
            continue
        model = build_model(space, values)
        table = table_from_model(model)
        assert p.total_params == model.count_params()
        assert p.trainable_params == table.trainable_params
        # by name: Keras lists a residual block's skip branch in its own order
        assert dict(zip(p.names, map(tuple, p.shapes))) == {r.name: r.output_shape for r in table.rows}
        checked += 1
        if checked == 3:
            break
    assert checked == (3 if space.params else 1), f"only {checked} buildable samples in {path.name}"


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_every_shipped_space_runs_a_forward_pass(path):
    import numpy as np

    space = load_space(path)
    values = space.sample(random.Random(2))
    model = build_model(space, values)
    x = np.random.default_rng(0).integers(0, 255, size=(2, *space.input_shape)).astype("float32")
    y = model(x, training=False).numpy()
    assert y.shape == (2, space.classes)
    assert np.allclose(y.sum(axis=1), 1.0, atol=1e-5)


RESIDUAL = """
name = "res"
[input]
shape = [16, 16, 3]
classes = 10
[defaults]
padding = "same"
batchnorm = "before"
[[blocks]]
kind = "separable"
channels = 8
[[blocks]]
kind = "{kind}"
{channels}
depth_multiplier = {dm}
stride = {stride}
padding = "{padding}"
repeat = 2
residual = true
[head]
kind = "gap"
layer = "separable"
"""


def residual_space(kind="separable", channels=8, dm=1, stride=1, padding="same"):
    import tomllib

    from budgetnas.space import parse_space

    width = "" if kind == "depthwise" else f"channels = {channels}"  # a depthwise block has no width
    text = RESIDUAL.format(kind=kind, channels=width, dm=dm, stride=stride, padding=padding)
    return parse_space(tomllib.loads(text), "res.toml")


@pytest.mark.parametrize("kind, channels, dm, stride, skip", [
    ("separable", 8, 1, 1, None),                 # same shape: the input is added back as it is
    ("separable", 16, 1, 1, "SeparableConv2D"),   # wider: a 1x1 separable projection, never a Conv2D
    ("separable", 8, 1, 2, "SeparableConv2D"),    # strided: the projection strides as far (4)
    ("conv", 12, 1, 1, "Conv2D"),
    ("depthwise", 8, 2, 1, "DepthwiseConv2D"),    # x2 twice: 8 -> 32 channels
])
def test_a_residual_block_adds_its_input_back(kind, channels, dm, stride, skip):
    space = residual_space(kind, channels, dm, stride)
    arch = space.resolve({})
    assert "(" in arch.describe() and ")+" in arch.describe()
    model = build_model(space, {})
    p = plan(arch)
    assert not p.problems and p.total_params == model.count_params()
    (add,) = [layer for layer in model.layers if type(layer).__name__ == "Add"]
    branch, other = add.input
    block_input = model.get_layer("activation_1").output  # the stem's output enters the block
    readers = [layer for layer in model.layers if not isinstance(layer.input, list) and layer.input is block_input]
    if skip is None:
        assert other is block_input and len(readers) == 1
    else:
        (proj,) = [layer for layer in readers if layer.get_config()["kernel_size"] == (1, 1)]
        assert type(proj).__name__ == skip and proj.get_config()["strides"] == (stride ** 2,) * 2  # 2 repeats
        after = other._keras_history[0]  # the projection, then its BatchNorm (the block uses BN)
        assert type(after).__name__ == "BatchNormalization" and after.input is proj.output
    assert tuple(add.output.shape[1:]) == tuple(branch.shape[1:]) == tuple(other.shape[1:])
    x = __import__("numpy").zeros((1, 16, 16, 3), "float32")
    assert model(x).shape == (1, 10)


def test_a_residual_block_that_shrinks_its_map_is_refused_with_a_reason():
    p = plan(residual_space(padding="valid").resolve({}))
    assert any("only padding = \"same\" blocks can add their input back" in m for m in p.problems)
