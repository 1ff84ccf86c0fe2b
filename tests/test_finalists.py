"""Retrain, report and export through the CLI on a tiny real subset."""

import json
import re
import shutil

import keras
import numpy as np
import pytest

from budgetnas.cli import main
from tests.conftest import copy_run

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` leaves this module out


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def _searched_once(tmp_path_factory, tiny_budgets):
    reports = tmp_path_factory.mktemp("reports")
    assert main(["--budgets", str(tiny_budgets), "search", "--budget", "tiny", "--name", "r", "--reports-dir",
                 str(reports), "--trials", "2", "--max-epochs", "1"]) == 0
    return reports / "r"


@pytest.fixture
def searched(_searched_once, tmp_path):
    """A reports folder holding a copy of one searched and retrained run, "r": each test changes only its own."""
    copy_run(_searched_once, tmp_path / "reports")
    return tmp_path / "reports"


def test_retrain_report_export(capsys, searched, tiny_mnist):
    reports = searched
    out = run(capsys, "retrain", "r", "--reports-dir", reports, "--top", "1", "--seeds", "2", "--epochs", "1")
    assert "Finalists — r" in out and "seed 0: test accuracy" in out and "Winner trial" in out
    assert re.search(r"seed 1 epoch 1/1: loss [\d.]+ val_accuracy [\d.]+ \(\d+s\)", out)  # progress lines
    run_path = reports / "r"
    data = json.loads((run_path / "finalists.json").read_text())
    fin = data["finalists"][0]
    assert [s["seed"] for s in fin["seeds"]] == [0, 1] and fin["space"] == "space.toml"
    assert data["protocol"]["test_images"] == 200 and data["protocol"]["validation"] == 100
    accs = [s["test_accuracy"] for s in fin["seeds"]]
    assert fin["summary"]["mean"] == pytest.approx(np.mean(accs))

    for name in ("report.md", "report.html", "trials.csv", "curves.png", "accuracy_vs_params.png",
                 "best_so_far.png", "confusion.png"):
        assert (run_path / name).is_file(), name
    html = (run_path / "report.html").read_text()
    assert html.count("<img") == 4 and "data:image/png;base64," in html
    assert "<em>validation</em>" in html and "<li>" in html and "<table>" in html  # rendered, not literal *
    md = (run_path / "report.md").read_text()
    # architectures: the pipe escaped in the markdown table (GitHub needs it), a plain pipe in the page
    assert "\\| gap-conv`" in md or "\\| shrink-conv`" in md or "\\| flatten" in md
    assert "\\|" not in html and re.search(r"<code>[^<]* \| (gap|shrink|flatten)", html)
    assert "| layer | kind | output | params | MACs | k/s/d | jump | RF | start |" in md
    assert "## Architecture notation" in md and "`B` BatchNorm before it" in md
    # the number that chooses the winner stands beside the test number in the finalists table
    vals = [s["final_val_accuracy"] for s in fin["seeds"]]
    assert f"| {100 * np.mean(vals):.2f}% | {100 * np.mean(accs):.2f}% ± " in md
    assert f"seed 1: {100 * vals[1]:.2f}% / {100 * accs[1]:.2f}%" in md
    assert len((run_path / "trials.csv").read_text().strip().splitlines()) == 3  # header + 2 trials

    assert {s["backend"] for s in fin["seeds"]} == {keras.backend.backend()}
    out = run(capsys, "export", "r", "--reports-dir", reports)
    exp = run_path / "export"
    card = (exp / "MODEL_CARD.md").read_text()
    assert "keras: test accuracy" in card and "exactly): ok" in card
    assert re.search(r"Test accuracy at the final epoch \(1\): [\d.]+% ± [\d.]+ over 2 seeds \(min [\d.]+%\)\.", card)
    chosen = max(fin["seeds"], key=lambda s: (s["final_val_accuracy"], -s["seed"]))

    from tests.test_reports import custom_objects

    assert custom_objects(exp / "model.keras") == []  # no optimizer or schedule of ours inside
    # plain Keras: the count it prints is the budgeted count, and raw pixels go straight in
    with np.load(tiny_mnist) as f:
        x, y = f["x_test"], f["y_test"]
    model = keras.saving.load_model(exp / "model.keras")
    assert model.count_params() == fin["params"]
    acc = float((model.predict(x[..., None].astype("float32"), verbose=0).argmax(1) == y).mean())
    assert acc == chosen["test_accuracy"]

    from budgetnas.compat import tflite_interpreter  # ai_edge_litert's (a dependency), else TensorFlow's

    for name, dtype in (("model_float32.tflite", np.float32), ("model_int8.tflite", np.uint8)):
        interp = tflite_interpreter(exp / name)
        inp = interp.get_input_details()[0]
        assert inp["dtype"] == dtype
        interp.resize_tensor_input(inp["index"], (len(x), 28, 28, 1))
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x[..., None].astype(dtype))
        interp.invoke()
        got = float((interp.get_tensor(interp.get_output_details()[0]["index"]).argmax(1) == y).mean())
        reported = re.search(rf"{name.split('_')[1].split('.')[0].replace('float32', 'tflite: ').strip()}", card)
        assert reported is not None
        line = next(line for line in card.splitlines()
                    if line.startswith("- tflite" + ("-int8" if dtype is np.uint8 else ":")))
        assert f"{100 * got:.2f}%" in line


def test_weights_trained_under_another_backend_are_checked_within_rounding(capsys, searched):
    """A seed trained under JAX (on a GPU) and exported under TensorFlow cannot match bit for bit: its .keras and
    SavedModel checks allow TFLite's 0.1 points and say why; a same-backend export stays exact."""
    reports = searched
    run(capsys, "retrain", "r", "--reports-dir", reports, "--top", "1", "--seeds", "1", "--epochs", "1")
    path = reports / "r" / "finalists.json"
    data = json.loads(path.read_text())
    data["finalists"][0]["seeds"][0]["backend"] = "jax"
    path.write_text(json.dumps(data))
    run(capsys, "export", "r", "--reports-dir", reports, "--format", "keras,savedmodel")
    card = (reports / "r" / "export" / "MODEL_CARD.md").read_text()
    assert "- keras: test accuracy" in card
    assert "(+0.00 points; required within 0.1 points, trained under jax): ok" in card
    assert "- savedmodel: test accuracy" in card and card.count("trained under jax") == 2


def test_a_report_before_any_retrain_says_the_test_set_is_untouched(capsys, tmp_path, tiny_budgets):
    assert main(["--budgets", str(tiny_budgets), "search", "--budget", "tiny", "--name", "s", "--reports-dir",
                 str(tmp_path), "--trials", "1", "--max-epochs", "1", "--no-retrain"]) == 0
    run(capsys, "report", "s", "--reports-dir", tmp_path)
    md = (tmp_path / "s" / "report.md").read_text()
    assert "None" not in md  # no retrain: no training-set size, epochs or seeds to print
    assert "validation split of 100 images" in md and "the test set is untouched" in md
    assert "## Finalists" not in md


def test_same_seed_reproduces_the_same_numbers(capsys, searched):
    reports = searched
    run(capsys, "retrain", "r", "--reports-dir", reports, "--top", "1", "--seeds", "1", "--epochs", "1")
    first = json.loads((reports / "r" / "finalists.json").read_text())["finalists"][0]["seeds"][0]
    run(capsys, "retrain", "r", "--reports-dir", reports, "--top", "1", "--seeds", "1", "--epochs", "1")
    second = json.loads((reports / "r" / "finalists.json").read_text())["finalists"][0]["seeds"][0]
    assert first["test_accuracy"] == second["test_accuracy"]
    assert first["history"]["loss"] == second["history"]["loss"]


def test_train_a_fixed_baseline(capsys, tmp_path, tiny_budgets):
    from tests.conftest import ROOT

    out = run(capsys, "--budgets", tiny_budgets, "train", ROOT / "spaces" / "seed_mnist_13794.toml", "--budget",
              "tiny", "--epochs", "1", "--name", "base", "--reports-dir", tmp_path)
    assert "seed_mnist_13794 seed 0: test accuracy" in out
    fin = json.loads((tmp_path / "base" / "finalists.json").read_text())["finalists"][0]
    assert fin["params"] == 13794 and fin["trial"] is None
    assert fin["space"] == "space.toml"  # the run folder's own copy of the fixed space
    assert (tmp_path / "base" / "report.html").is_file()

    # Retrained under a "changed" recipe (here: the same value), the fixed network is its own finalist: the same
    # network, split and seed train again, loss for loss; a front or start points it has not.
    out = run(capsys, "retrain", "base", "--reports-dir", tmp_path, "--recipe", "lr=0.003", "--as", "base-again",
              "--seeds", "1", "--epochs", "1")
    again = json.loads((tmp_path / "base-again" / "finalists.json").read_text())["finalists"][0]
    assert again["label"] == fin["label"] == "seed_mnist_13794" and again["params"] == 13794
    assert again["seeds"][0]["history"]["loss"] == fin["seeds"][0]["history"]["loss"]
    assert again["seeds"][0]["test_accuracy"] == fin["seeds"][0]["test_accuracy"]
    assert main(["retrain", "base", "--reports-dir", str(tmp_path), "--front", "--epochs", "1"]) == 2
    assert "a run of one fixed network has no front" in capsys.readouterr().err

    # A run folder moved elsewhere (another machine, another name) reports from its own space.toml,
    # even when its finalists.json is older and names the space by a path that no longer exists.
    (tmp_path / "base").rename(tmp_path / "moved")
    saved = json.loads((tmp_path / "moved" / "finalists.json").read_text())
    saved["finalists"][0]["space"] = "/root/runs/base/seed_mnist_13794.toml"
    (tmp_path / "moved" / "finalists.json").write_text(json.dumps(saved))
    (tmp_path / "moved" / "report.md").unlink()
    run(capsys, "--budgets", tiny_budgets, "report", "moved", "--reports-dir", tmp_path)
    assert "| **total** | | | **13,794** |" in (tmp_path / "moved" / "report.md").read_text()


def test_seeds_train_side_by_side_in_their_own_processes(capsys, searched, tiny_mnist, tmp_path):
    shutil.copytree(searched / "r", tmp_path / "r")
    out = run(capsys, "retrain", "r", "--reports-dir", tmp_path, "--top", "1", "--seeds", "2", "--epochs", "2",
              "--jobs", "2")
    for seed in (0, 1):  # every epoch of every process is relayed, and every result
        assert re.search(rf"seed {seed} epoch 2/2: loss [\d.]+ val_accuracy [\d.]+ \(\d+s\)", out)
        assert re.search(rf"seed {seed}: test accuracy [\d.]+%", out)
    fin = json.loads((tmp_path / "r" / "finalists.json").read_text())["finalists"][0]
    assert [s["seed"] for s in fin["seeds"]] == [0, 1]
    assert all(len(s["history"]["loss"]) == 2 and s["final_val_accuracy"] is not None for s in fin["seeds"])
    with np.load(tiny_mnist) as f:
        x, y = f["x_test"][..., None].astype("float32"), f["y_test"]
    for s in fin["seeds"]:  # what a process reports is what it saved
        model = keras.saving.load_model(tmp_path / "r" / "finalists" / s["model_file"])
        assert float((model.predict(x, verbose=0).argmax(1) == y).mean()) == s["test_accuracy"]


def test_seed_processes_share_the_cores_and_one_runs_beside_a_gpu(monkeypatch):
    from budgetnas import seedpool

    monkeypatch.setattr(seedpool.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(seedpool, "_accelerator", lambda: False)
    assert seedpool.plan(6) == (6, 1)  # (processes, threads each): up to 2 jobs per core start at once
    assert seedpool.plan(9) == (4, 1)  # more: one process per core
    assert seedpool.plan(2) == (2, 2)
    assert seedpool.plan(1) == (1, 0)  # one process: threads left to TensorFlow
    assert seedpool.plan(6, requested=1) == (1, 0)
    monkeypatch.setattr(seedpool, "_accelerator", lambda: True)
    assert seedpool.plan(6) == (1, 0)
    assert seedpool.plan(6, requested=3) == (3, 1)


class Killed(Exception):
    """Stands in for the process being killed right after an epoch checkpoint."""


def test_an_interrupted_retrain_resumes_where_it_stopped(capsys, searched, monkeypatch):
    from budgetnas import trainer

    reports, saves = searched, []
    real = trainer._Checkpoint._save_model

    def save_then_die(self):  # seed 0: epochs 1 and 2 finish; seed 1 dies after epoch 1
        real(self)
        saves.append(1)
        if len(saves) == 3:
            raise Killed

    monkeypatch.setattr(trainer._Checkpoint, "_save_model", save_then_die)
    argv = ["retrain", "r", "--reports-dir", str(reports), "--top", "1", "--seeds", "2",
            "--jobs", "1", "--epochs", "2"]  # one job: in this process, where the patch applies
    with pytest.raises(Killed):
        main(argv)
    monkeypatch.undo()
    before = json.loads((reports / "r" / "finalists.json").read_text())["finalists"][0]
    assert [s["seed"] for s in before["seeds"]] == [0]
    (checkpoint,) = (reports / "r" / "finalists").glob("*_seed1.resume")
    run(capsys, "report", "r", "--reports-dir", reports)  # the report shows how far the stopped seed got
    md = (reports / "r" / "report.md").read_text()
    assert re.search(r"\| trial_\d+ \| 1 \| 1 / 2 \| [\d.]+% \| [\d.]+% \|", md) and "retrain r --resume" in md

    run(capsys, *argv, "--resume")
    after = json.loads((reports / "r" / "finalists.json").read_text())["finalists"][0]
    assert after["seeds"][0] == before["seeds"][0]  # the finished seed is kept, not retrained
    seed1 = after["seeds"][1]
    assert seed1["seed"] == 1 and seed1["history"]["resumed_at"] == 1 and len(seed1["history"]["loss"]) == 2
    assert not checkpoint.exists()
    assert "Retraining not finished" not in (reports / "r" / "report.md").read_text()

    assert main([*argv[:-1], "3", "--resume"]) == 2  # finished seeds of 2 epochs cannot join a 3-epoch run
    assert "ran 2 epochs, not 3" in capsys.readouterr().err


def test_spread_shows_a_std_only_over_several_seeds():
    from budgetnas.finalists import Finalist, SeedResult

    def seed(n, acc):
        return SeedResult(n, acc, None, 1.0, {}, f"s{n}.keras")

    f = Finalist("trial 2", 2, "space.toml", {}, "S32", 1000, 1000, 1, [32.0], 50, {}, seeds=[seed(0, 0.8779)])
    assert f.spread == "87.79% (1 seed)"  # not "± 0.00": one seed has no spread
    f.seeds.append(seed(1, 0.8821))
    assert f.spread == "88.00% ± 0.30"  # sample std of 87.79 and 88.21 = 0.297


def _finalist(label: str, trial, vals: list[float], tests: list[float]):
    from budgetnas.finalists import Finalist, SeedResult

    seeds = [SeedResult(seed=i, test_accuracy=t, final_val_accuracy=v, train_seconds=1.0, history={},
                        model_file="") for i, (v, t) in enumerate(zip(vals, tests))]
    return Finalist(label=label, trial=trial, space="space.toml", values={}, architecture="", params=1,
                    trainable_params=1, macs=1, final_rf=[1, 1], epochs=1, recipe={}, seeds=seeds)


def test_winner_is_chosen_on_validation_never_test():
    from budgetnas.finalists import winner

    # A: better on validation, worse on test; B the other way round. The rule must pick A.
    a = _finalist("trial 1", 1, vals=[0.993, 0.994], tests=[0.990, 0.991])
    b = _finalist("trial 2", 2, vals=[0.990, 0.991], tests=[0.996, 0.997])
    assert b.mean > a.mean and a.val_mean > b.val_mean
    assert winner([b, a]) is a and winner([a, b]) is a
    # a fixed baseline never wins while a searched finalist exists, whatever its numbers
    base = _finalist("seed_net", None, vals=[0.999], tests=[0.999])
    assert winner([base, b]) is b
    assert winner([base]) is base and winner([]) is None


def test_a_run_keeps_the_budget_it_was_searched_with(capsys, tmp_path, tiny_budgets):
    """Editing (here: deleting) the budget after a search changes nothing about the run."""
    budgets = tmp_path / "budgets.toml"
    text = tiny_budgets.read_text()
    budgets.write_text(text)
    reports = tmp_path / "reports"
    assert main(["--budgets", str(budgets), "search", "--budget", "tiny", "--name", "f", "--reports-dir",
                 str(reports), "--trials", "1", "--max-epochs", "1", "--no-retrain"]) == 0
    frozen = json.loads((reports / "f" / "budget.json").read_text())
    assert frozen["name"] == "tiny" and frozen["table"]["epochs"] == 2 and frozen["table"]["train"]["lr"] == 0.003
    # the budget's recipe and epochs change, then the budget goes altogether
    budgets.write_text(text.replace("epochs = 2\nvalidation = 100", "epochs = 5\nvalidation = 100")
                       .replace("lr = 0.003", "lr = 0.5"))
    from budgetnas.run.folder import open_folder

    _, budget, _, _ = open_folder(reports / "f")
    assert budget.epochs == 2 and budget.train.lr == 0.003
    budgets.write_text("")
    capsys.readouterr()
    run(capsys, "retrain", "f", "--reports-dir", reports, "--top", "1", "--seeds", "1", "--epochs", "1")
    fin = json.loads((reports / "f" / "finalists.json").read_text())["finalists"][0]
    assert fin["recipe"]["lr"] == 0.003 and fin["recipe"]["batch_size"] == 64
    out = run(capsys, "leaderboard", "f", "--reports-dir", reports)
    assert "Leaderboard — f" in out


def test_retrain_under_a_changed_recipe_branches_a_new_run(capsys, searched):
    reports = searched
    before = (reports / "r" / "budget.json").read_text()
    out = run(capsys, "retrain", "r", "--reports-dir", reports, "--top", "1", "--seeds", "1", "--epochs", "1",
              "--recipe", "ema=0.9", "--recipe", "label_smoothing=0.1", "--as", "r-ema")
    assert "recipe changed: ema=0.9, label_smoothing=0.1" in out and "Finalists — r-ema" in out
    assert (reports / "r" / "budget.json").read_text() == before  # the original run is untouched
    [fin] = json.loads((reports / "r-ema" / "finalists.json").read_text())["finalists"]
    assert fin["recipe"]["ema"] == 0.9 and fin["recipe"]["label_smoothing"] == 0.1
    # the same finalist the original run retrains: its best completed trial, read from the shared study
    from budgetnas.run.folder import load_records, ranked
    best = [r for r in ranked(load_records(reports / "r")[1]) if r.status == "complete"][0]
    assert fin["trial"] == best.number


def test_a_run_made_before_budgets_were_frozen_branches_from_the_budget_it_names(searched, tiny_budgets):
    """A run folder without ``budget.json`` (committed reports made before runs froze their budget) branches
    from the budget its ``run.json`` names, frozen then, with the change applied."""
    from budgetnas.run.folder import load_meta
    from budgetnas.run.start import branch

    (searched / "r" / "budget.json").unlink()
    assert load_meta(searched / "r").budgets_file == str(tiny_budgets)
    target = branch(searched / "r", "r-ema", ["ema=0.9"])
    frozen = json.loads((target / "budget.json").read_text())
    assert frozen["name"] == "tiny" and frozen["table"]["epochs"] == 2
    assert frozen["table"]["train"] == {"optimizer": "adam", "lr": 0.003, "batch_size": 64, "augment": "shift",
                                       "ema": 0.9}
    assert not (searched / "r" / "budget.json").exists()  # the original is left as it was


def test_a_fixed_network_branches_with_the_recipe_seeds_and_epochs_it_was_trained_with(capsys, tmp_path,
                                                                                       tiny_budgets):
    """`train --recipe baseline --epochs 1` (one seed, where the budget says 2 seeds and 2 epochs), branched under a
    changed recipe and retrained without --seeds or --epochs: the baseline recipe with the change, one seed, one
    epoch; a run made before runs froze their budget branches the same way from its finalists.json."""
    from budgetnas.run.start import branch
    from tests.conftest import ROOT

    budgets = tmp_path / "budgets.toml"
    budgets.write_text(tiny_budgets.read_text().replace(
        "[tiny.search]\n", '[tiny.baseline_train]\noptimizer = "sgd"\nlr = 0.02\nbatch_size = 32\n[tiny.search]\n', 1))
    run(capsys, "--budgets", budgets, "train", ROOT / "spaces" / "anchors" / "golf_820.toml", "--budget", "tiny",
        "--recipe", "baseline", "--epochs", "1", "--name", "g", "--reports-dir", tmp_path)
    run(capsys, "retrain", "g", "--reports-dir", tmp_path, "--recipe", "lr=0.01", "--as", "g2")
    baseline_changed = {"optimizer": "sgd", "lr": 0.01, "batch_size": 32}
    frozen = json.loads((tmp_path / "g2" / "budget.json").read_text())["table"]
    assert frozen["train"] == baseline_changed and frozen["search"]["seeds"] == 1
    [fin] = json.loads((tmp_path / "g2" / "finalists.json").read_text())["finalists"]
    assert [s["seed"] for s in fin["seeds"]] == [0] and len(fin["seeds"][0]["history"]["loss"]) == 1

    (tmp_path / "g" / "budget.json").unlink()
    frozen = json.loads((branch(tmp_path / "g", "g3", ["lr=0.01"]) / "budget.json").read_text())["table"]
    assert frozen["train"] == baseline_changed and frozen["search"]["seeds"] == 1


@pytest.mark.parametrize("argv, message", [
    (["--recipe", "ema=2", "--as", "bad1"], "--recipe: tiny.train.ema"),
    (["--recipe", "warmup=3", "--as", "bad2"], "--recipe: tiny.train.warmup: unknown"),
    (["--recipe", "ema=0.9"], "--recipe FIELD=VALUE and --as NAME go together"),
    (["--recipe", "ema", "--as", "bad3"], "--recipe 'ema': write FIELD=VALUE"),
])
def test_a_bad_recipe_change_is_one_line_and_exit_2(capsys, searched, argv, message):
    code = main(["retrain", "r", "--reports-dir", str(searched), "--epochs", "1", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not any((searched / n).exists() for n in ("bad1", "bad2", "bad3"))


def test_target_verdict_says_met_or_not_and_whether_the_margin_is_noise():
    from budgetnas.finalists import Finalist, SeedResult, target_verdict

    def fin(*accs):
        return Finalist("trial 3", 3, "space.toml", {}, "C8", 1, 1, 1, [1, 1], 15, {},
                        seeds=[SeedResult(i, a, None, 1.0, {}, f"s{i}.keras") for i, a in enumerate(accs)])

    # 99.46% on 10,000 images: one binomial standard error sqrt(.9946 * .0054 / 1e4) = 0.073 points
    line = target_verdict(fin(0.9946, 0.9941, 0.9951), 0.994, 10000)
    assert line == ("Target 99.40% met by trial 3: test mean 99.46% over 3 seeds, +0.06 points, within the noise "
                    "of a 10,000-image test set (one standard error 0.07 points).")
    assert "NOT met" in target_verdict(fin(0.9939), 0.994, 10000) and "-0.01 points" in target_verdict(
        fin(0.9939), 0.994, 10000) and "over 1 seed," in target_verdict(fin(0.9939), 0.994, 10000)
    assert "+0.20 points, beyond the noise" in target_verdict(fin(0.9960), 0.994, 10000)  # > 2 x 0.063


def test_a_run_folder_opens_after_a_move(capsys, searched, tmp_path):
    # run.json names its own study relative to the folder: the folder moved (or copied to another machine) opens
    import budgetnas
    from budgetnas.run.folder import load_meta

    (searched / "r").rename(tmp_path / "moved")
    assert json.loads((tmp_path / "moved" / "run.json").read_text())["storage"] == "sqlite:///study.db"
    assert load_meta(tmp_path / "moved").storage == f"sqlite:///{(tmp_path / 'moved' / 'study.db').resolve()}"
    board = json.loads(run(capsys, "leaderboard", str(tmp_path / "moved"), "--json"))
    assert board["counts"]["total"] == 2
    assert len(budgetnas.open_run(tmp_path / "moved").records()) == 2
    # a run saved before storage paths were relative (an absolute path that is gone) finds the study beside it
    meta = json.loads((tmp_path / "moved" / "run.json").read_text())
    meta["storage"] = "sqlite:////gone/elsewhere/r/study.db"
    (tmp_path / "moved" / "run.json").write_text(json.dumps(meta))
    assert json.loads(run(capsys, "leaderboard", str(tmp_path / "moved"), "--json"))["counts"]["total"] == 2


def test_the_retrained_front_keeps_finalists_no_other_beats_on_params_and_validation():
    from dataclasses import replace

    from budgetnas.report.document import retrained_front_markdown
    from budgetnas.run.folder import TrialRecord

    # (label, trial, params, validation means, test means): "trial 3" is beaten by the smaller, better "trial 1";
    # "trial 2" (a start point) is level on validation with nothing smaller: on the front
    rows = [("trial 1", 1, 700, [0.975, 0.977], [0.98, 0.98]), ("trial 2", 2, 800, [0.98, 0.98], [0.97, 0.99]),
            ("trial 3", 3, 900, [0.97, 0.97], [0.99, 0.99]), ("trial 4", 4, 3000, [0.99, 0.99], [0.99, 0.99])]
    fins = [replace(_finalist(label, n, vals, tests), params=p) for label, n, p, vals, tests in rows]
    lines = retrained_front_markdown(fins[::-1], [TrialRecord(number=2, status="complete", start="golf_820")])
    body = [line.split(" | ") for line in lines if line.startswith("| trial")]
    assert [(b[0], b[1], b[-1]) for b in body] == [("| trial 1", "", "yes |"), ("| trial 2", "golf_820", "yes |"),
                                                   ("| trial 3", "", "no |"), ("| trial 4", "", "yes |")]
    # independent check: on the front iff no other finalist has params <= and val mean >=, one strictly
    for f, b in zip(sorted(fins, key=lambda f: f.params), body):
        beaten = any(o.params <= f.params and o.val_mean >= f.val_mean and (o.params < f.params or
                     o.val_mean > f.val_mean) for o in fins if o is not f)
        assert (b[-1] == "no |") == beaten
    assert retrained_front_markdown(fins[:1], []) == []  # one finalist: no front to draw


def test_a_fixed_network_retrained_under_a_final_fit_budget_is_not_refitted(capsys, tmp_path, tiny_budgets):
    """`budgetnas train` never refits on all images; retraining its run under a changed recipe does not either."""
    from tests.conftest import ROOT

    budgets = tmp_path / "budgets.toml"
    budgets.write_text(tiny_budgets.read_text().replace("[tiny.search]\n", "[tiny.search]\nfinal_fit = \"all\"\n", 1))
    run(capsys, "--budgets", budgets, "train", ROOT / "spaces" / "anchors" / "golf_820.toml", "--budget", "tiny",
        "--epochs", "1", "--name", "g", "--reports-dir", tmp_path)
    run(capsys, "retrain", "g", "--reports-dir", tmp_path, "--recipe", "lr=0.001", "--as", "g2", "--seeds", "1",
        "--epochs", "1")
    for name in ("g", "g2"):
        [fin] = json.loads((tmp_path / name / "finalists.json").read_text())["finalists"]
        assert fin["fit"] == "train" and fin["label"] == "anchor_golf_820"
        assert fin["seeds"][0]["final_val_accuracy"] is not None  # scored on validation: no final fit
