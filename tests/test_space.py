import random

import pytest

from budgetnas.errors import ConfigError
from budgetnas.space import Domain, load_space, parse_space
from tests.conftest import ROOT, SPACES

MINIMAL = {
    "name": "t",
    "input": {"shape": [28, 28, 1], "classes": 10},
    "blocks": [{"kind": "conv", "channels": 8}],
    "head": {"kind": "gap"},
}


def with_(**changes):
    d = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in MINIMAL.items()}
    d["blocks"] = [dict(b) for b in MINIMAL["blocks"]]
    d.update(changes)
    return d


def test_fixed_space_has_no_parameters_and_resolves_to_one_network():
    s = parse_space(MINIMAL, "t.toml")
    assert s.params == ()
    arch = s.resolve({})
    assert [b.kind for b in arch.blocks] == ["conv"]
    assert arch.head.kind == "gap" and arch.head.layer == "conv"


def test_lists_and_ranges_become_named_parameters():
    s = parse_space(with_(blocks=[{"kind": ["conv", "separable"], "channels": {"min": 8, "max": 16, "step": 4},
                                   "repeat": [1, 2], "dropout": {"min": 0.0, "max": 0.1, "step": 0.05}}]), "t.toml")
    names = {p.name: p.domain for p in s.params}
    assert names["blocks[0].kind"].options == ("conv", "separable")
    assert names["blocks[0].channels"] == Domain((8, 12, 16), 8, 16, 4)
    assert names["blocks[0].dropout"].options == (0.0, 0.05, 0.1)
    arch = s.resolve({"blocks[0].kind": "separable", "blocks[0].channels": 12, "blocks[0].repeat": 2,
                      "blocks[0].dropout": 0.05})
    assert [(b.kind, b.channels, b.dropout) for b in arch.blocks] == [("separable", 12, 0.05)] * 2


def test_a_residual_block_is_one_group_drawn_in_parentheses_and_keyed_apart():
    blocks = [{"kind": "conv", "channels": 8}, {"kind": "separable", "channels": 8, "repeat": 2, "padding": "same",
                                                 "residual": [False, True]}, {"kind": "maxpool"}]
    s = parse_space(with_(blocks=blocks), "t.toml")
    assert [p.name for p in s.params] == ["blocks[1].residual"]
    plain, res = (s.resolve({"blocks[1].residual": r}) for r in (False, True))
    assert plain.describe() == "C8 S8p S8p M | gap-conv"
    assert res.describe() == "C8 (S8p S8p)+ M | gap-conv"
    assert plain.key() != res.key() and '"residual"' not in plain.key()  # plain keys as before residuals


def test_shared_default_choice_is_one_parameter_for_all_blocks():
    s = parse_space(with_(defaults={"batchnorm": ["before", "after"]},
                          blocks=[{"kind": "conv", "channels": 8}, {"kind": "conv", "channels": 8}]), "t.toml")
    assert [p.name for p in s.params] == ["defaults.batchnorm"]
    arch = s.resolve({"defaults.batchnorm": "before"})
    assert {b.batchnorm for b in arch.blocks} == {"before"}


@pytest.mark.parametrize("data, message", [
    (with_(color="red"), "t.toml: color: unknown key"),
    (with_(blocks=[{"kind": "conv", "channels": 8, "chanels": 4}]), "t.toml: blocks[0].chanels: unknown key"),
    (with_(blocks=[{"kind": "conv", "channels": 0}]), "t.toml: blocks[0].channels = 0, must be ≥ 1"),
    (with_(blocks=[{"kind": "conv", "channels": "8"}]), "t.toml: blocks[0].channels = '8' must be int"),
    (with_(blocks=[{"kind": "conv"}]), "t.toml: blocks[0].channels: required"),
    (with_(blocks=[{"kind": "blob", "channels": 8}]), "t.toml: blocks[0].kind = 'blob' must be one of"),
    (with_(blocks=[{"kind": "maxpool", "channels": 8}]), "t.toml: blocks[0].channels: not allowed on a pooling"),
    (with_(blocks=[{"kind": ["conv", "maxpool"], "channels": 8}]), "t.toml: blocks[0].kind mixes pooling"),
    (with_(blocks=[{"kind": "conv", "channels": {"min": 8, "max": 4}}]), "blocks[0].channels.max = 4 is below"),
    (with_(head={"kind": "flatten", "layer": "conv"}), "head.layer = 'conv' does not go with head.kind"),
    (with_(input={"shape": [28, 28], "classes": 10}), "t.toml: input.shape"),
    (with_(blocks=[{"kind": "conv", "channels": 8, "dropout": 1.5}]), "blocks[0].dropout = 1.5, must be in [0, 1)"),
    (with_(blocks=[{"kind": "maxpool", "residual": True}]), "t.toml: blocks[0].residual: not allowed on a pooling"),
    (with_(blocks=[{"kind": "conv", "channels": 8, "residual": "yes"}]), "blocks[0].residual = 'yes' must be bool"),
])
def test_bad_input_names_file_and_field(data, message):
    with pytest.raises(ConfigError) as err:
        parse_space(data, "t.toml")
    assert message in str(err.value)


def test_resolve_rejects_values_outside_the_space():
    s = parse_space(with_(blocks=[{"kind": "conv", "channels": [8, 16]}]), "t.toml")
    with pytest.raises(ConfigError, match="blocks\\[0\\].channels = 12 is not one of"):
        s.resolve({"blocks[0].channels": 12})
    with pytest.raises(ConfigError, match="unknown parameter"):
        s.resolve({"blocks[0].channels": 8, "blocks[9].kernel": 3})


def test_malformed_toml_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [\n")
    with pytest.raises(ConfigError, match=f"{bad}: malformed TOML"):
        load_space(bad)


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_every_shipped_space_parses_and_samples(path):
    s = load_space(path)
    rng = random.Random(0)
    for _ in range(20):
        s.resolve(s.sample(rng))


def test_seed_spaces_are_fixed():
    for name in ("seed_mnist_13794", "seed_cifar10_separable_81973", "cifar10_base_network"):
        assert load_space(ROOT / "spaces" / f"{name}.toml").params == ()


def test_a_head_kind_choice_without_a_layer_takes_each_kinds_own_layer():
    space = load_space("mnist_wide")
    layers = {}
    for kind in ("gap", "shrink", "flatten"):
        values = space.sample(random.Random(0))
        values["head.kind"] = kind
        layers[kind] = space.resolve(values).head.layer
    assert layers == {"gap": "conv", "shrink": "conv", "flatten": "dense"}
