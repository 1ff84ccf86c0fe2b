"""The command line, in-process, on real (tiny) data: listing, describe, rf, errors, search, resume."""

import json
import re
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from budgetnas.cli import main
from tests.conftest import ROOT


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_lists(capsys):
    code, out, _ = run(capsys, "spaces")  # shipped spaces, by the name `describe` and `--space` accept
    assert code == 0 and "mnist_tiny " in out and "seed_mnist_13794 " in out and ".toml" not in out
    code, out, _ = run(capsys, "spaces", "--dir", ROOT / "spaces")
    assert code == 0 and "mnist_tiny.toml" in out
    code, out, _ = run(capsys, "budgets")
    assert code == 0 and "mnist-15k" in out and "cifar10-sep-100k" in out


def test_describe_json_fixed_space(capsys):
    code, out, _ = run(capsys, "describe", ROOT / "spaces" / "seed_mnist_13794.toml", "--budget", "mnist-15k", "--json")
    d = json.loads(out)
    assert code == 0 and d["total_params"] == 13794 and d["trainable_params"] == 13582
    assert d["within_budget"] is True and d["violations"] == []
    last = [r for r in d["layers"] if r["kind"] == "Conv2D"][-1]
    assert last["rf"] == [28, 28] and last["jump"] == [2, 2] and last["start"] == [13.5, 13.5]
    assert {"name", "kind", "output_shape", "params"} <= set(last)


def test_describe_samples_and_verdicts(capsys):
    code, out, _ = run(capsys, "describe", ROOT / "spaces" / "cifar10_base_network.toml", "--budget",
                       "cifar10-sep-100k", "--json")
    d = json.loads(out)
    assert d["within_budget"] is False and d["total_params"] == 1172410
    assert any(v.startswith("layers: Conv2D is forbidden") for v in d["violations"])
    code, out, _ = run(capsys, "describe", ROOT / "spaces" / "mnist_tiny.toml", "--budget", "mnist-8k",
                       "--sample", "3", "--seed", "1", "--json")
    objs = [json.loads(line) for line in out.splitlines()]
    assert len(objs) == 3 and all(o["total_params"] <= 8000 for o in objs if o["within_budget"])


def test_describe_renders_a_table(capsys):
    code, out, _ = run(capsys, "describe", ROOT / "spaces" / "seed_mnist_13794.toml")
    assert code == 0 and "Total params 13,794 (trainable 13,582)" in out and "conv2d_1" in out


def test_rf_of_a_saved_model(capsys, tmp_path):
    from budgetnas.build import build_model
    from budgetnas.space import load_space

    path = tmp_path / "m.keras"
    build_model(load_space(ROOT / "spaces" / "seed_cifar10_separable_81973.toml"), {}).save(path)
    code, out, _ = run(capsys, "rf", path, "--json")
    d = json.loads(out)
    assert code == 0 and d["total_params"] == 81973 and d["layers"][-2]["rf"] == [44, 44]


@pytest.mark.parametrize("argv, fragment", [
    (["describe", "nope.toml"], "nope.toml: no such space file"),
    (["describe", "{bad}"], "bad.toml: blocks[0].chanels: unknown key"),
    (["describe", ROOT / "spaces" / "mnist_tiny.toml", "--budget", "mnist-1"], "no budget named 'mnist-1'"),
    (["describe", ROOT / "spaces" / "mnist_tiny.toml", "--values", "{\"blocks[0].channels\": 7}"],
     "no value given for parameter"),
    (["rf", "{junk}"], "junk.keras: cannot load as a Keras model"),
    (["leaderboard", "no-such-run", "--reports-dir", "{tmp}"], "no such run"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, fragment):
    bad = tmp_path / "bad.toml"
    bad.write_text('name="b"\n[input]\nshape=[28,28,1]\nclasses=10\n[[blocks]]\nkind="conv"\nchanels=4\n'
                   '[head]\nkind="gap"\n')
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    argv = [str(a).replace("{bad}", str(bad)).replace("{junk}", str(junk)).replace("{tmp}", str(tmp_path))
            for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and fragment in err
    assert "Traceback" not in err


def test_bad_input_exits_2_without_traceback_as_a_process(tmp_path):
    p = subprocess.run([sys.executable, "-m", "budgetnas", "describe", str(tmp_path / "missing.toml")],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == f"budgetnas: error: {tmp_path / 'missing.toml'}: no such space file"


# ------------------------------------------------------------------ search, end to end on tiny real data
def board(capsys, reports, run_name):
    code, out, _ = run(capsys, "leaderboard", run_name, "--reports-dir", reports, "--json")
    assert code == 0
    return json.loads(out)


@pytest.mark.slow
def test_resume_trains_the_trial_of_a_dead_process_again(capsys, tmp_path, tiny_budgets):
    import optuna

    reports = tmp_path / "reports"
    common = ["--budgets", tiny_budgets, "search", "--budget", "tiny", "--name", "r2", "--reports-dir", reports,
              "--no-retrain"]
    assert run(capsys, *common, "--trials", "1", "--max-epochs", "1")[0] == 0
    from budgetnas.run.folder import load_meta

    meta = load_meta(reports / "r2")  # run.json names the run's own study relative to its folder
    optuna.load_study(study_name=meta.study, storage=meta.storage).ask()  # a trial whose process died
    code, out, err = run(capsys, *common, "--trials", "3", "--resume")
    assert code == 0, err
    assert "trial(s) 1, stopped before they finished, train again" in out
    trials = board(capsys, reports, "r2")["trials"]
    assert trials[1]["status"] == "interrupted" and "process ended" in trials[1]["reason"]
    assert len(trials) == 4  # three that count toward --trials 3, and the interrupted one


@pytest.mark.slow
def test_a_diverging_trial_fails_with_its_reason_and_the_search_goes_on(capsys, tmp_path, tiny_budgets):
    text = tiny_budgets.read_text().split("[tiny-strict]")[0].replace("[tiny]", "[boom]").replace(
        "[tiny.", "[boom.").replace('lr = 0.003', 'lr = [0.003, 1e12]')
    budgets = tmp_path / "b.toml"
    budgets.write_text(text)
    code, out, err = run(capsys, "--budgets", budgets, "search", "--budget", "boom", "--name", "r4",
                         "--reports-dir", tmp_path, "--trials", "4", "--max-epochs", "1", "--json")
    assert code == 0, err
    trials = json.loads(out.strip().splitlines()[-1])["trials"]
    assert len(trials) == 4
    failed = [t for t in trials if t["status"] == "failed"]
    assert failed and all(t["values"]["train.lr"] == 1e12 and "loss became" in t["reason"] for t in failed)
    assert any(t["status"] == "complete" for t in trials)


@pytest.mark.slow
def test_search_then_retrain_in_one_command(capsys, tmp_path, tiny_budgets):
    code, out, err = run(capsys, "--budgets", tiny_budgets, "search", "--budget", "tiny", "--name", "r5",
                         "--reports-dir", tmp_path, "--trials", "1", "--max-epochs", "1")
    assert code == 0, err
    assert "retrained 1 finalist(s)" in out and "Winner trial 0: per-layer table" in out
    assert (tmp_path / "r5" / "report.html").is_file()



def test_search_takes_a_shipped_space_by_its_bare_name(capsys, tmp_path, tiny_budgets):
    """`--space mnist_tiny` names the shipped file, as `describe` and `rf` accept (once a traceback)."""
    code, out, err = run(capsys, "--budgets", tiny_budgets, "search", "--budget", "tiny", "--space", "mnist_tiny",
                         "--name", "r6", "--reports-dir", tmp_path, "--trials", "1", "--max-epochs", "1",
                         "--no-retrain")
    assert code == 0, err
    meta = json.loads((tmp_path / "r6" / "run.json").read_text())
    assert meta["space"].endswith("mnist_tiny.toml") and Path(meta["space"]).is_file()
    assert (tmp_path / "r6" / "space.toml").read_text() == Path(meta["space"]).read_text()
    # the finalists' command it prints finds the run where it is
    assert f"finalists: `budgetnas retrain r6 --reports-dir {tmp_path}` (skipped: --no-retrain)" in out

RESIDUAL_MNIST = """
name = "mnist_residual"
[input]
shape = [28, 28, 1]
classes = 10
[defaults]
padding = "same"
batchnorm = "before"
[[blocks]]
kind = "separable"
channels = 8
depth_multiplier = 2
[[blocks]]
kind = "separable"
channels = [8, 12]
repeat = 2
residual = true
[[blocks]]
kind = "maxpool"
[head]
kind = "gap"
layer = "separable"
"""


@pytest.mark.slow
def test_a_residual_space_is_described_searched_reported_and_exported(capsys, tmp_path, tiny_budgets):
    space = tmp_path / "mnist_residual.toml"
    space.write_text(RESIDUAL_MNIST)
    code, out, err = run(capsys, "describe", space)
    assert code == 0, err
    assert re.search(r"\(S(8|12)pB S(8|12)pB\)\+", out) and "add_1" in out
    code, out, err = run(capsys, "--budgets", tiny_budgets, "search", "--budget", "tiny", "--space", space,
                         "--name", "res", "--reports-dir", tmp_path, "--trials", "1", "--max-epochs", "1",
                         "--jobs", "1")
    assert code == 0, err
    md = (tmp_path / "res" / "report.md").read_text()
    assert re.search(r"\| add_1 \| Add \| 28×28×(8|12) \| 0 \|", md)  # the RF table lists the merge
    assert ")+" in md and "`(S64pB S64pB)+`: a residual block" in md
    assert run(capsys, "export", "res", "--reports-dir", tmp_path)[0] == 0
    model = keras.saving.load_model(tmp_path / "res" / "export" / "model.keras")
    assert [type(layer).__name__ for layer in model.layers].count("Add") == 1


def test_a_command_prints_no_tensorflow_start_up_lines():
    # TensorFlow writes absl / oneDNN / CPU-feature lines before it reads TF_CPP_MIN_LOG_LEVEL; a command holds
    # them back (compat.import_tensorflow_quietly) unless the user set the level
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    got = subprocess.run([sys.executable, "-m", "budgetnas", "describe", "mnist_tiny", "--budget", "mnist-15k"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr
    assert "Total params" in got.stdout
    assert "oneDNN" not in got.stderr and "absl" not in got.stderr and "I0000" not in got.stderr, got.stderr


def test_the_search_options_are_declared_once_for_the_parser_and_the_api():
    from dataclasses import fields

    import budgetnas
    from budgetnas.cli import build_parser
    from budgetnas.errors import ConfigError
    from budgetnas.run.options import SearchOptions

    search = build_parser()._subparsers._group_actions[0].choices["search"]
    dests = {a.dest for a in search._actions}
    assert {f.name for f in fields(SearchOptions)} - {"budgets_file"} <= dests
    args = build_parser().parse_args(["search", "--no-start", "--max-epochs", "2", "--timeout", "1.5"])
    assert (args.start, args.max_epochs, args.timeout, args.budget) == (False, 2, 1.5, "mnist-15k")
    with pytest.raises(ConfigError, match="search: no option max_epoch "):
        budgetnas.search("mnist-8k", max_epoch=3)
