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
        assert [tuple(s) for s in p.shapes] == [r.output_shape for r in table.rows]
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
