"""The library API on in-memory Keras models: counts against Keras's own, verdicts, and how they display."""

import io

import keras
import pytest
from rich.console import Console

import budgetnas
from budgetnas.build import build_model
from budgetnas.space import load_space
from tests.conftest import ROOT


def _seed_net():
    return build_model(load_space(ROOT / "spaces" / "seed_mnist_13794.toml"), {})


def test_layer_table_counts_what_keras_counts():
    model = _seed_net()
    table = budgetnas.layer_table(model)
    assert table.total_params == model.count_params() == 13794
    assert table.trainable_params == sum(int(w.numpy().size) for w in model.trainable_weights) == 13582
    assert sum(r.params for r in table.rows) == model.count_params()


def test_check_gives_every_broken_rule_of_a_hand_written_model():
    model = _seed_net()
    fits = budgetnas.check(model, budget="mnist-15k")
    assert fits.ok and fits.violations == () and fits.counted_params == 13794 and fits.max_params == 15000
    over = budgetnas.check(model, budget=budgetnas.load_budget("mnist-8k"))
    assert not over.ok and over.violations == ("params: 13,794 total params > limit 8,000",)

    # the exercise a student writes by hand: Conv2D and Dense in a separable-only CIFAR budget
    x = keras.Input((32, 32, 3))
    y = keras.layers.Conv2D(8, 3, activation="relu")(x)
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(10, activation="softmax")(y)
    v = budgetnas.check(keras.Model(x, y), budget="cifar10-sep-100k")
    assert not v.ok
    assert {s.split(" (")[0] for s in v.violations} >= {"layers: Conv2D is forbidden", "layers: Dense is forbidden",
                                                        "batchnorm: the budget requires BatchNormalization and "
                                                        "the model has none",
                                                        "dropout: the budget requires Dropout and the model has none"}
    assert any(s.startswith("rf: final receptive field 3") for s in v.violations)


def test_a_check_shows_itself_in_a_notebook_a_terminal_and_a_log():
    v = budgetnas.check(_seed_net(), budget="mnist-15k")
    page = v._repr_html_()
    assert page.count("<table>") == 1 and "<td>conv2d_6</td>" in page.replace(" ", "")
    assert "within budget mnist-15k (13,794 of 15,000 params)" in page
    buf = io.StringIO()
    Console(file=buf, width=100, color_system=None).print(v)
    text = buf.getvalue()
    assert "conv2d_6" in text and "13,794" in text and "within budget mnist-15k" in text
    plain = str(v)
    assert plain.startswith("| layer |") and plain.endswith("within budget mnist-15k (13,794 of 15,000 params)")
    assert budgetnas.layer_table(_seed_net())._repr_html_().startswith("<table>")


@pytest.mark.slow
def test_search_from_code_returns_a_run_that_retrains_reports_and_exports(tmp_path, tiny_budgets):
    reports = tmp_path / "reports"
    run = budgetnas.search("tiny", budgets_file=tiny_budgets, name="nb", trials=2, seed=1, reports_dir=reports,
                           retrain=False)
    assert run.name == "nb" and run.meta.trials == 2 and run.finalists() == []
    records = run.records()
    assert len(records) == 2 and all(r.status in ("complete", "pruned") for r in records)

    board = run.leaderboard(top=5)
    assert [r.number for r in board.rows] == [r.number for r in budgetnas.open_run("nb", reports_dir=reports)
                                              .leaderboard().rows]
    html = board._repr_html_()
    assert html.count("<tr>") == 1 + len(board.rows) and "Leaderboard — nb" in html
    assert "Leaderboard — nb" in str(board)

    fins = run.retrain(seeds=1)
    assert len(fins) == 1 and fins[0].trial == board.rows[0].number and len(fins[0].seeds) == 1
    assert [f.trial for f in run.finalists()] == [fins[0].trial] and run.winner().trial == fins[0].trial
    assert (reports / "nb" / "report.md").exists()
    assert {p.name for p in run.report()} >= {"report.md", "report.html", "trials.csv"}
    checked = []
    out = run.export(formats=["keras"], on_check=lambda label, c: checked.append((label, c.format, c.ok)))
    assert (out / "model.keras").exists() and (out / "MODEL_CARD.md").exists()
    assert checked == [(f"trial {fins[0].trial}", "keras", True)]
    assert budgetnas.layer_table(out / "model.keras").total_params == fins[0].params  # a saved model, by its path


@pytest.mark.slow
def test_rescore_trains_a_trial_again_as_train_candidate_would_and_ranks_it_first(tmp_path, tiny_budgets):
    """Run.rescore is the budget's ``search.rescore``: the trial on all training images for the search's epochs,
    with its own fixed seed; the leaderboard ranks re-scored trials first by that score; asked again, it trains
    nothing."""
    from budgetnas.errors import ConfigError, RunError
    from budgetnas.run.rescore import RESCORE_SEED

    reports = tmp_path / "reports"
    run = budgetnas.search("tiny", budgets_file=tiny_budgets, name="rs", trials=3, seed=2, reports_dir=reports,
                           train_subset=150, retrain=False)
    done = [r for r in run.records() if r.status == "complete"]
    last = min(done, key=lambda r: (r.val_accuracy, -r.params))  # the weakest completed trial
    trained = []
    scores = run.rescore(trials=[last.number], on_rescored=lambda n, a, b: trained.append((n, a, b)))
    assert list(scores) == [last.number] and trained == [(last.number, last.val_accuracy, scores[last.number])]

    # the same training through the one public training function: all 300 training images, the run's split
    t = budgetnas.train_candidate(last.values, budget=run.budget, space=run.path / "space.toml", split_seed=2,
                                  epochs=run.meta.max_epochs, seed=2 + last.number + RESCORE_SEED, test=False)
    assert t.train_images == 300 and scores[last.number] == pytest.approx(t.val_accuracy, abs=1e-6)
    assert run.leaderboard().rows[0].number == last.number and run.leaderboard().rows[0].rescore is not None

    assert run.rescore(trials=[last.number], on_rescored=lambda *a: trained.append(a)) == scores
    assert len(trained) == 1  # kept in the run: not trained again
    assert list(run.rescore(1)) == [max(done, key=lambda r: (r.val_accuracy, -r.params)).number]  # by search score
    with pytest.raises(RunError, match="no trial 99"):
        run.rescore(trials=[99])
    with pytest.raises(ConfigError, match="top=K or trials"):
        run.rescore()


def test_judge_counts_before_building_what_the_built_model_counts():
    space = budgetnas.load_space("seed_mnist_13794")  # a shipped space by name
    v = budgetnas.judge({}, budget="mnist-15k", space=space)
    model = budgetnas.build_model({}, space=space, seed=0)
    assert v.ok and v.total_params == model.count_params() == 13_794 and v.macs == budgetnas.layer_table(model).macs
    over = budgetnas.judge({}, budget="mnist-8k", space=space)
    assert not over.ok and over.violations == ("params: 13,794 total params > limit 8,000",)
    assert over.summary().splitlines()[-1] == "breaks budget mnist-8k: params: 13,794 total params > limit 8,000"
    html = over._repr_html_()  # in a notebook: the per-layer table, then the verdict in red
    assert html.startswith("<table>") and all(r.name in html for r in over.table.rows) and "#b00" in html
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(over)  # in a terminal, through rich
    assert "13,794" in console.file.getvalue() and "breaks budget" in console.file.getvalue()

    wide = budgetnas.load_space("mnist_wide")
    budgets = budgetnas.load_budgets()
    assert {"mnist-15k", "mnist-5k"} <= set(budgets) and budgets["mnist-5k"].max_params == 5_000
    rng = __import__("random").Random(4)
    for _ in range(10):  # the 5k budget's own repair: an over-budget sample comes back within it, with its changes
        sample = wide.sample(rng)
        raw = budgetnas.judge(sample, budget=budgets["mnist-5k"], space=wide)
        fixed = budgetnas.judge(sample, budget=budgets["mnist-5k"], space=wide, repair=True)
        if raw.ok:
            assert fixed.repairs == () and fixed.total_params == raw.total_params
        elif fixed.ok:
            assert fixed.repairs and fixed.total_params <= 5_000
            assert budgetnas.build_model(fixed.values, space=wide).count_params() == fixed.total_params


def test_a_subset_of_a_split_and_training_without_validation(tiny_budgets):
    splits = budgetnas.load_splits("tiny", budgets_file=tiny_budgets, space="seed_mnist_13794")
    part = splits.train.subset(100, 0)
    assert len(part) == 100 and sorted(set(part.y.tolist())) == sorted(set(splits.train.y.tolist()))  # stratified
    assert (part.x == splits.train.subset(100, 0).x).all()  # seeded
    t = budgetnas.train_candidate({}, budget="tiny", budgets_file=tiny_budgets, space="seed_mnist_13794", epochs=1,
                                  splits=budgetnas.Splits(part, None, None))
    assert t.val_accuracy is None and t.test_accuracy is None and t.train_images == 100 and t.history.steps == 2
    x, y = next(iter(budgetnas.input_pipeline(part, classes=10, batch_size=32, training=True, augment="shift")))
    assert tuple(x.shape) == (32, 28, 28, 1) and tuple(y.shape) == (32, 10)


def test_fuse_batch_norm_takes_a_model_or_one_layer():
    model = budgetnas.build_model({}, space="seed_mnist_13794", seed=0)
    bns = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert bns > 0 and budgetnas.fuse_batch_norm(model) == bns and budgetnas.fuse_batch_norm(model) == 0
    assert budgetnas.fuse_batch_norm(keras.layers.BatchNormalization()) == 1
    assert budgetnas.fuse_batch_norm(keras.layers.Dense(2)) == 0


def test_open_run_names_a_missing_run_in_one_line(tmp_path):


    from budgetnas.errors import RunError

    with pytest.raises(RunError, match="no such run"):
        budgetnas.open_run("nope", reports_dir=tmp_path)


def test_a_run_records_the_library_versions_it_started_with(tmp_path, tiny_budgets):
    from importlib import metadata

    from budgetnas.run.folder import load_meta
    from budgetnas.run.options import SearchOptions
    from budgetnas.run.start import prepare

    path, meta, _, _ = prepare(SearchOptions(budget="tiny", budgets_file=str(tiny_budgets), name="v",
                                             reports_dir=str(tmp_path)))
    versions = load_meta(path).versions
    assert versions["optuna"] == metadata.version("optuna") and versions["keras"] == metadata.version("keras")
    assert "python" in versions and ("tensorflow" in versions or "tensorflow-cpu" in versions)


def test_train_candidate_trains_what_a_finalist_seed_trains(tmp_path, tiny_budgets):
    """One training path: the public function and a retrained finalist's seed give the same network the same
    scores (same values, recipe, split and seed), and its gate counts are the built model's."""
    from budgetnas import finalists

    budget = budgetnas.load_budget("tiny", budgets_file=tiny_budgets)
    space = load_space(ROOT / "spaces" / "seed_mnist_13794.toml")
    splits = budgetnas.load_splits(budget, seed=3, space=space.path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (300, 100, 200)

    t = budgetnas.train_candidate({}, budget=budget, space=space, splits=splits, seed=5, epochs=1)
    seed = finalists.train_seed("x", budget, space, {}, budget.train.resolve({}), splits.train, splits.val,
                                splits.test, 1, 5, tmp_path)
    assert t.val_accuracy == pytest.approx(seed.final_val_accuracy, abs=1e-6)
    assert t.test_accuracy == pytest.approx(seed.test_accuracy, abs=1e-6)
    assert t.params == t.model.count_params() == 13_794 and t.within_budget and t.train_images == 300
    assert t.history.epochs == 1 and t.seconds > 0

    half = budgetnas.train_candidate({}, budget=budget, space=space, splits=splits, seed=5, epochs=1,
                                     train_subset=100, recipe={"lr": 0.01}, test=False)
    assert half.train_images == 100 and half.test_accuracy is None and half.history.steps == 2  # 100 / batch 64


def test_train_candidate_names_an_unknown_recipe_field_or_a_missing_value(tiny_budgets):
    from budgetnas.errors import ConfigError

    with pytest.raises(ConfigError, match="recipe: no field speed"):
        budgetnas.train_candidate({}, budget="tiny", budgets_file=tiny_budgets, recipe={"speed": 2})
    with pytest.raises(ConfigError, match=r"recipe: recipe.lr = '0.1' must be float"):
        budgetnas.train_candidate({}, budget="tiny", budgets_file=tiny_budgets, recipe={"lr": "0.1"})
    with pytest.raises(ConfigError, match="mnist_tiny.toml: no value given for parameter"):
        budgetnas.train_candidate({}, budget="tiny", budgets_file=tiny_budgets)  # a searchable space needs values


def test_train_runs_a_fixed_network_as_a_run_and_stops_with_the_command_that_continues(tmp_path, tiny_budgets,
                                                                                     monkeypatch):
    """budgetnas.train is `budgetnas train`: a run folder with one finalist; a Ctrl-C during it is Stopped, naming
    the command that resumes it."""
    from budgetnas.errors import Stopped
    from budgetnas.run import retrain

    reports = tmp_path / "reports"
    run = budgetnas.train("seed_mnist_13794", budget="tiny", budgets_file=tiny_budgets, name="fixed",
                          reports_dir=reports, epochs=1, seeds=1, seed=3)
    [fin] = run.finalists()
    assert run.name == "fixed" and run.meta.driver == "train" and fin.params == 13794
    assert [s.seed for s in fin.seeds] == [3] and fin.seeds[0].test_accuracy is not None

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(retrain, "_train_seeds", interrupted)
    with pytest.raises(Stopped) as stop:
        budgetnas.train("seed_mnist_13794", budget="tiny", budgets_file=tiny_budgets, name="again",
                        reports_dir=reports, epochs=1)
    assert stop.value.kept == "every finished seed is saved"
    assert stop.value.command.startswith(f"budgetnas --budgets {tiny_budgets} train seed_mnist_13794 "
                                         "--budget tiny --name again --epochs 1")
    assert stop.value.command.endswith("--resume")


def test_list_spaces_names_each_shipped_space_by_the_name_that_loads_it():
    spaces = budgetnas.list_spaces()
    assert {"mnist_tiny", "anchors/golf_820", "teachers/mnist_30k"} <= set(spaces)
    assert spaces["anchors/golf_820"].name == budgetnas.load_space("anchors/golf_820").name


def test_layer_table_of_a_missing_or_broken_file_is_one_line(tmp_path):
    from budgetnas.errors import ConfigError

    with pytest.raises(ConfigError, match="no such model file"):
        budgetnas.layer_table(tmp_path / "none.keras")
    (tmp_path / "bad.keras").write_text("not a model")
    with pytest.raises(ConfigError, match="cannot load as a Keras model"):
        budgetnas.layer_table(tmp_path / "bad.keras")


def test_describe_gives_each_sampled_network_its_table_and_the_gates_verdict():
    described = budgetnas.describe("mnist_tiny", budget="mnist-8k", sample=3, seed=0)
    assert len(described) == 3
    for values, table, verdict in described:
        assert verdict.ok and table.total_params == verdict.total_params <= 8000  # repaired into the budget
        assert values == dict(verdict.values)
    [(values, table, verdict)] = budgetnas.describe("seed_mnist_13794")  # a fixed space, no budget: its network
    assert values == {} and verdict is None and table.total_params == 13794
