"""The space words tiny networks use (prelu, leaky_relu, factorized, shared) and the anchors written with them:
counts against Keras, numerics against NumPy references, the plan's table against the built model's, the
gate's refusal, the notation and the keras-tuner mapping."""

import re

import numpy as np
import pytest

from budgetnas.budget import parse_budget
from budgetnas.build import build_model, plan
from budgetnas.errors import ConfigError
from budgetnas.gate import judge
from budgetnas.receptive import table_from_model, table_from_plan
from budgetnas.space import load_space, parse_space
from tests.conftest import ROOT

ANCHORS = sorted((ROOT / "spaces" / "anchors").glob("*.toml"))
INPUT = {"shape": [12, 12, 1], "classes": 10}


def one_block(**block) -> dict:
    head = block.pop("head", {"kind": "gap", "layer": "conv"})
    return {"name": "t", "input": INPUT, "blocks": [block], "head": head}


def space_of(**block):
    return parse_space(one_block(**block), "t.toml")


def rows(table):
    return [(r.name, r.output_shape, r.params, r.macs, r.rf, r.jump, r.start) for r in table.rows]


def test_there_are_at_least_five_anchors():
    assert len(ANCHORS) >= 5


@pytest.mark.parametrize("path", ANCHORS, ids=[p.stem for p in ANCHORS])
def test_anchor_file_name_is_its_keras_count(path):
    space = load_space(path)
    assert not space.params  # one network each
    model = build_model(space, {})
    count = int(re.search(r"_(\d+)$", path.stem).group(1))
    assert model.count_params() == count
    p = plan(space.resolve({}))
    assert p.total_params == count
    assert rows(table_from_plan(p)) == rows(table_from_model(model))


def test_describe_shows_an_anchors_count_and_spaces_lists_the_anchors(capsys):
    from budgetnas.cli import main

    assert main(["describe", "anchors/golf_820", "--budget", "mnist-front"]) == 0  # a shipped space, by its name
    assert "Total params 820" in capsys.readouterr().out
    assert main(["spaces"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert {f"anchors/{p.stem}" for p in ANCHORS} <= set(listed) and "mnist_front" in listed


@pytest.mark.parametrize("name, expect", [("prelu", "PReLU"), ("leaky_relu", "LeakyReLU")])
def test_activation_words_against_numpy(name, expect):
    space = space_of(kind="conv", channels=3, activation=name)
    model = build_model(space, {}, seed=0)
    layer = next(l for l in model.layers if type(l).__name__ == expect)
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 3)).astype("float32")
    if name == "prelu":
        slopes = np.array([0.1, -0.3, 0.7], dtype="float32")
        layer.set_weights([slopes.reshape(1, 1, 3)])
        assert layer.count_params() == 3  # one slope per channel, not per pixel
    else:
        slopes = np.full(3, 0.2, dtype="float32")
    want = np.where(x > 0, x, x * slopes)
    np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-6)
    assert plan(space.resolve({})).total_params == model.count_params()


def test_factorized_block_is_a_kx1_then_1xk_convolution():
    space = space_of(kind="factorized", channels=1, kernel=3, activation="linear", padding="valid")
    model = build_model(space, {}, seed=0)
    convs = [l for l in model.layers if type(l).__name__ == "Conv2D"][:2]
    assert [c.kernel.shape[:2] for c in convs] == [(3, 1), (1, 3)]
    a, b = np.array([1.0, -2.0, 0.5]), np.array([0.3, 1.0, -1.5])
    convs[0].set_weights([a.reshape(3, 1, 1, 1).astype("float32"), np.zeros(1, "float32")])
    convs[1].set_weights([b.reshape(1, 3, 1, 1).astype("float32"), np.zeros(1, "float32")])
    x = np.random.default_rng(1).normal(size=(1, 12, 12, 1)).astype("float32")
    got = convs[1](convs[0](x)).numpy()[0, :, :, 0]
    k = np.outer(a, b)  # the separable 3x3 kernel the pair computes (cross-correlation, as Keras)
    want = np.array([[np.sum(x[0, i:i + 3, j:j + 3, 0] * k) for j in range(10)] for i in range(10)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    p = plan(space.resolve({}))
    assert p.total_params == model.count_params() == (3 + 1) + (3 + 1) + (1 + 1) * 10
    assert rows(table_from_plan(p)) == rows(table_from_model(model))


def test_shared_block_weights_counted_once_and_applied_each_repeat():
    space = parse_space({"name": "t", "input": INPUT, "blocks": [
        {"kind": "conv", "channels": 4, "padding": "same"},
        {"kind": "conv", "channels": 4, "padding": "same", "repeat": 3, "shared": True, "batchnorm": "after"}],
        "head": {"kind": "gap", "layer": "conv"}}, "t.toml")
    model = build_model(space, {}, seed=0)
    convs = [l for l in model.layers if type(l).__name__ == "Conv2D"]
    assert len(convs) == 3  # stem, the shared conv (one layer), the head
    shared = convs[1]
    bns = [l for l in model.layers if type(l).__name__ == "BatchNormalization"]
    assert len(bns) == 3  # each application keeps its own BatchNorm
    assert model.count_params() == 40 + (36 * 4 + 4) + 3 * 16 + 50
    p = plan(space.resolve({}))
    assert p.total_params == model.count_params()
    # the same computation by hand: stem, then three times (shared conv, ReLU, that application's BatchNorm)
    x = np.random.default_rng(2).normal(size=(1, 12, 12, 1)).astype("float32") * 255
    h = convs[0](model.layers[1](x))
    h = model.layers[3](h)  # the stem's ReLU
    acts = [l for l in model.layers if type(l).__name__ == "Activation"][1:4]
    for act, bn in zip(acts, bns):
        h = bn(act(shared(h)), training=False)
    inner = model.get_layer(bns[-1].name).output
    import keras

    np.testing.assert_allclose(keras.Model(model.inputs, inner)([x]).numpy(), h.numpy(), rtol=1e-5, atol=1e-5)
    # the table: one row per application, params on the first; the RF grows by 2 with each 3x3 application
    t, tp = table_from_model(model), table_from_plan(p)
    assert rows(t) == rows(tp)
    applied = [r for r in t.rows if r.name.startswith(shared.name)]
    assert [r.name for r in applied] == [shared.name, f"{shared.name}@2", f"{shared.name}@3"]
    assert [r.params for r in applied] == [148, 0, 0]
    assert [r.rf[0] for r in applied] == [5, 7, 9]
    assert space.resolve({}).describe().startswith("C4p [C4pb]x3 |")


def test_gate_refuses_a_shared_block_that_changes_width():
    budget = parse_budget("b", {"dataset": "mnist", "space": "x.toml", "max_params": 10_000, "epochs": 1},
                          "budgets.toml", ROOT)
    space = parse_space({"name": "t", "input": INPUT, "blocks": [
        {"kind": "conv", "channels": 4, "padding": "same"},
        {"kind": "separable", "channels": 8, "padding": "same", "repeat": 2, "shared": True}],
        "head": {"kind": "gap", "layer": "conv"}}, "t.toml")
    verdict = judge(budget, space, {})
    assert not verdict.ok
    assert "shared block" in verdict.violations[0] and "takes 4 channels and gets 8" in verdict.violations[0]


@pytest.mark.parametrize("kind", ["conv", "separable", "depthwise", "factorized"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("batchnorm", ["none", "after"])
def test_kernel_4_and_no_batchnorm_on_every_kind(kind, padding, batchnorm):
    block = {"kind": kind, "kernel": 4, "padding": padding, "batchnorm": batchnorm, "activation": "prelu"}
    if kind != "depthwise":
        block["channels"] = 6
    space = space_of(**block)
    model = build_model(space, {})
    p = plan(space.resolve({}))
    assert p.total_params == model.count_params()
    assert rows(table_from_plan(p)) == rows(table_from_model(model))
    assert ("BatchNormalization" in {type(l).__name__ for l in model.layers}) == (batchnorm != "none")
    size = 12 if padding == "same" else 9
    before_head = [s.kind for s in p.specs].index("GlobalAveragePooling2D") - 1
    assert p.shapes[before_head][:2] == (size, size)


def test_words_in_the_notation():
    assert space_of(kind="factorized", channels=12, batchnorm="after").resolve({}).describe().startswith("F12b ")
    assert space_of(kind="conv", channels=4, kernel=4, activation="prelu").resolve({}).describe().startswith("C4k4r ")
    assert space_of(kind="separable", channels=5, activation="leaky_relu").resolve({}).describe().startswith("S5l ")


def test_a_shared_choice_and_factorized_kind_reach_keras_tuner():
    from budgetnas.drivers.kerastuner_driver import hyperparameters, values_from

    space = space_of(kind=["pointwise", "factorized"], channels=[4, 8], kernel=[3, 5], repeat=2,
                     shared=[False, True], padding="same")
    hp = hyperparameters(space, space.params)
    hp.values["blocks[0].kind"] = "pointwise"
    assert not hp.is_active("blocks[0].kernel")
    hp.values["blocks[0].kind"] = "factorized"
    assert hp.is_active("blocks[0].kernel") and hp.is_active("blocks[0].channels")
    assert hp.is_active("blocks[0].shared")
    hp.values.update({"blocks[0].kernel": 5, "blocks[0].shared": True})
    values = values_from(hp, space, space.params)
    assert space.resolve(values).describe().startswith("[F4k5p]x2 ")


def test_shared_matters_only_for_two_or_more_repeats():
    from budgetnas.drivers.kerastuner_driver import hyperparameters

    space = space_of(kind="conv", channels=4, padding="same", repeat=[0, 1, 3], shared=[False, True])
    values = {"blocks[0].repeat": 1, "blocks[0].shared": True}
    assert not space.is_active("blocks[0].shared", values)
    assert space.canonical(values)["blocks[0].shared"] is False  # one network, one spelling
    assert space.resolve(values).key() == space.resolve({**values, "blocks[0].shared": False}).key()
    assert space.is_active("blocks[0].shared", {"blocks[0].repeat": 3})
    hp = hyperparameters(space, space.params)
    hp.values["blocks[0].repeat"] = 1
    assert not hp.is_active("blocks[0].shared")
    hp.values["blocks[0].repeat"] = 3
    assert hp.is_active("blocks[0].shared")


def test_head_hidden_needs_a_dense_layer():
    with pytest.raises(ConfigError, match="head.hidden"):
        space_of(kind="conv", channels=4, head={"kind": "gap", "layer": "conv", "hidden": [16]}).resolve({})


def test_pool_block_refuses_shared():
    with pytest.raises(ConfigError, match="shared: not allowed on a pooling block"):
        space_of(kind="maxpool", shared=True)


@pytest.mark.parametrize("path", ANCHORS, ids=[p.stem for p in ANCHORS])
def test_every_anchor_is_a_start_point_of_the_front_space(path):
    # spaces/mnist_front.toml names each anchor as a [[start]] point: it passes the front's gate and builds
    # exactly the anchor's network
    from budgetnas.budget import load_budgets

    space = load_space(ROOT / "spaces" / "mnist_front.toml")
    values = dict(space.start)[path.stem]
    verdict = judge(load_budgets(ROOT / "budgets.toml")["mnist-front"], space, values)
    assert verdict.ok, verdict.violations
    assert space.resolve(verdict.values).key() == load_space(path).resolve({}).key()
    assert verdict.total_params == int(path.stem.rsplit("_", 1)[1])


@pytest.mark.parametrize("table, match", [
    ({"name": "x", "blocks[9].channels": 4}, r"start\[0\].blocks\[9\].channels: not a free parameter"),
    ({"name": "x", "blocks[0].channels": 5}, r"start\[0\].blocks\[0\].channels = 5 is not one of \[4, 8\]"),
    ({"blocks[0].channels": 4}, r"start\[0\].name: a start point needs a name"),
])
def test_a_bad_start_point_names_its_field(table, match):
    data = one_block(kind="conv", channels=[4, 8])
    with pytest.raises(ConfigError, match=match):
        parse_space({**data, "start": [table]}, "t.toml")


def test_a_search_begins_with_the_start_points_unless_told_not_to(tmp_path, tiny_budgets):
    import optuna

    from budgetnas.drivers import optuna_driver

    space = parse_space({**one_block(kind="conv", channels=[4, 8], repeat=[1, 2], shared=[False, True],
                                     padding="same"),
                         "start": [{"name": "wide", "blocks[0].channels": 8, "blocks[0].repeat": 2,
                                    "blocks[0].shared": True},
                                   {"name": "one", "blocks[0].repeat": 1, "blocks[0].shared": True}]}, "t.toml")
    assert dict(space.start)["one"]["blocks[0].shared"] is False  # inactive for one repeat: its first option
    study = optuna.create_study()
    optuna_driver.enqueue_start(study, space, ["wide", "one"])
    asked = []
    for _ in range(2):
        trial = study.ask()
        asked.append({p.name: optuna_driver.domains.suggest(trial, p) for p in space.ask_order()
                      if p.name != "blocks[0].shared" or trial.params.get("blocks[0].repeat", 2) >= 2})
        study.tell(trial, 0.5)
    assert asked == [{"blocks[0].repeat": 2, "blocks[0].channels": 8, "blocks[0].shared": True},
                     {"blocks[0].repeat": 1, "blocks[0].channels": 4}]
    assert [t.user_attrs["start"] for t in study.trials] == ["wide", "one"]


def start_space(tmp_path, widths: list[int], name: str, width: int):
    """A one-conv MNIST space file whose conv width is one of ``widths``, with one start point ``name`` at ``width``."""
    space = tmp_path / "s.toml"
    space.write_text('name = "s"\n[input]\nshape = [28, 28, 1]\nclasses = 10\n'
                     f'[[blocks]]\nkind = "conv"\nchannels = {widths}\n[[blocks]]\nkind = "maxpool"\n'
                     '[head]\nkind = "gap"\nlayer = "conv"\n'
                     f'[[start]]\nname = "{name}"\n"blocks[0].channels" = {width}\n')
    return space


def test_the_cli_search_trains_the_start_point_first_and_records_it(tmp_path, tiny_budgets, capsys):
    import json

    from budgetnas.cli import main

    space = start_space(tmp_path, [4, 6, 8, 10, 12], "ten", 10)
    reports = tmp_path / "r"
    common = ["--budgets", str(tiny_budgets), "search", "--budget", "tiny", "--space", str(space), "--trials", "1",
              "--max-epochs", "1", "--no-retrain", "--reports-dir", str(reports)]
    assert main([*common, "--name", "a"]) == 0
    assert main([*common, "--name", "b", "--no-start"]) == 0
    capsys.readouterr()
    assert json.loads((reports / "a" / "run.json").read_text())["start"] == ["ten"]
    assert json.loads((reports / "b" / "run.json").read_text())["start"] == []
    assert main(["leaderboard", "a", "--reports-dir", str(reports), "--json"]) == 0
    [trial] = json.loads(capsys.readouterr().out)["trials"]
    assert trial["values"] == {"blocks[0].channels": 10}
    assert trial["start"] == "ten"  # the record names the start point it trained
    # --top 0 --start: no finalist by rank, only the start point, retrained and named in trials.csv
    assert main(["retrain", "a", "--reports-dir", str(reports), "--top", "0", "--start", "--seeds", "1",
                 "--epochs", "1"]) == 0
    [fin] = json.loads((reports / "a" / "finalists.json").read_text())["finalists"]
    assert fin["trial"] == 0 and len(fin["seeds"]) == 1
    import csv

    [row] = list(csv.DictReader((reports / "a" / "trials.csv").open()))
    assert row["start"] == "ten"


def test_a_budget_with_retrain_start_retrains_the_start_points_beside_its_finalists(tmp_path, tiny_budgets, capsys):
    # `[NAME.search] retrain_start = true`: the search's retrain (and `budgetnas retrain`) takes the start points too,
    # with no `--start`; without it, `--top 0` has nothing to retrain
    import json

    from budgetnas.cli import main

    space = start_space(tmp_path, [4, 6, 8], "six", 6)
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(tiny_budgets.read_text().replace("[tiny.search]\n", "[tiny.search]\nretrain_start = true\n"))
    reports = tmp_path / "r"
    for name, file in (("with", budgets), ("without", tiny_budgets)):
        assert main(["--budgets", str(file), "search", "--budget", "tiny", "--space", str(space), "--trials", "1",
                     "--max-epochs", "1", "--no-retrain", "--reports-dir", str(reports), "--name", name]) == 0
    retrain = ["--top", "0", "--seeds", "1", "--epochs", "1", "--reports-dir", str(reports)]
    assert main(["retrain", "with", *retrain]) == 0
    [fin] = json.loads((reports / "with" / "finalists.json").read_text())["finalists"]
    assert fin["trial"] == 0 and fin["values"] == {"blocks[0].channels": 6}
    assert main(["retrain", "without", *retrain]) == 2
    assert "no completed trial to retrain" in capsys.readouterr().err


def test_start_points_to_retrain_are_the_trained_ones_once_each_not_already_chosen():
    from budgetnas.run.folder import TrialRecord
    from budgetnas.run.retrain import start_points

    def rec(n, status, start="", acc=0.9):
        return TrialRecord(number=n, status=status, start=start, val_accuracy=acc)

    records = [rec(0, "complete", "golf"), rec(1, "pruned", "sep"), rec(2, "rejected", "big", None),
               rec(3, "failed", "nan", None), rec(4, "complete"), rec(5, "complete", "sep"),
               rec(6, "complete", "plain")]
    assert [r.number for r in start_points(records)] == [0, 1, 6]
    assert [r.number for r in start_points(records, {0, 4})] == [1, 6]


def test_log_width_range_samples_small_widths_as_often_as_large():
    import random

    space = space_of(kind="conv", channels={"min": 4, "max": 32, "log": True})
    rng = random.Random(0)
    got = [space.sample(rng)["blocks[0].channels"] for _ in range(4000)]
    assert set(got) <= set(range(4, 33))
    small, large = sum(4 <= g < 8 for g in got), sum(16 <= g < 32 for g in got)
    assert abs(small - large) < 200  # log-uniform: each octave about a third of the draws
    with pytest.raises(ConfigError, match="log range"):
        space_of(kind="conv", channels={"min": 4, "max": 32, "step": 2, "log": True})


def test_log_range_reaches_both_search_libraries():
    import optuna

    from budgetnas.drivers.domains import distribution
    from budgetnas.drivers.kerastuner_driver import hyperparameters

    space = space_of(kind="conv", channels={"min": 4, "max": 32, "log": True})
    [p] = space.params
    assert distribution(p.domain) == optuna.distributions.IntDistribution(4, 32, log=True)
    hp = hyperparameters(space, space.params)
    assert hp.space[0].sampling == "log"


def test_hidden_choices_are_labels():
    space = space_of(kind="conv", channels=4, head={"kind": "gap", "layer": "dense", "hidden": [[], [16], [32, 8]]})
    [p] = space.params
    assert p.domain.options == ("none", "16", "32-8")
    assert space.resolve({"head.hidden": "32-8"}).head.hidden == (32, 8)
    assert space.resolve({"head.hidden": "none"}).describe().endswith("| gap-dense")


def test_repair_moves_a_shared_block_to_a_width_it_can_share():
    from budgetnas.gate import repair

    budget = parse_budget("b", {"dataset": "mnist", "space": "x.toml", "max_params": 10_000, "epochs": 1},
                          "budgets.toml", ROOT)
    space = parse_space({"name": "t", "input": INPUT, "blocks": [
        {"kind": "conv", "channels": [4, 8], "padding": "same"},
        {"kind": "conv", "channels": [8, 12], "padding": "same", "repeat": 2, "shared": [False, True]}],
        "head": {"kind": "gap", "layer": "conv"}}, "t.toml")
    values = {"blocks[0].channels": 4, "blocks[1].channels": 12, "blocks[1].shared": True}
    assert not judge(budget, space, values).ok
    fixed, changes = repair(budget, space, values)
    assert judge(budget, space, fixed).ok and len(changes) == 1


@pytest.mark.parametrize("name", ["hand_4966", "sepmid_4754"])
def test_the_5k_space_starts_from_the_hand_made_networks_it_was_written_after(name):
    # spaces/mnist_5k.toml names each hand-made 5k network of benchmarks/small_recipe/ as a [[start]] point: it
    # passes the mnist-5k gate and builds exactly the network that table measured
    from budgetnas.budget import load_budgets

    space = load_space(ROOT / "spaces" / "mnist_5k.toml")
    verdict = judge(load_budgets(ROOT / "budgets.toml")["mnist-5k"], space, dict(space.start)[name])
    assert verdict.ok, verdict.violations
    measured = load_space(ROOT / "benchmarks" / "small_recipe" / f"{name}_space.toml")
    assert space.resolve(verdict.values).key() == measured.resolve({}).key()
    assert verdict.total_params == int(name.rsplit("_", 1)[1])
