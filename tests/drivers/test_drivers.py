"""One suite, run against every driver (Optuna's BasicSamplerTestCase style): tiny real data, few trials."""

import json

import pytest

from search.cli import main

DRIVERS = {
    "optuna": [],
    "keras-tuner-random": ["--driver", "keras-tuner", "--algorithm", "random"],
    "keras-tuner-hyperband": ["--driver", "keras-tuner", "--algorithm", "hyperband"],
}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def board(capsys, reports, name):
    code, out, err = run(capsys, "leaderboard", name, "--reports-dir", reports, "--json")
    assert code == 0, err
    return json.loads(out)


def strip(trials):
    return [{k: v for k, v in t.items() if k != "rank"} for t in trials]


@pytest.mark.parametrize("driver", ["optuna", "keras-tuner-random", "keras-tuner-hyperband"])
def test_search_persists_resumes_and_refuses_to_overwrite(driver, capsys, tmp_path, tiny_budgets):
    reports = tmp_path / "reports"
    common = ["--budgets", tiny_budgets, "search", "--budget", "tiny", "--name", "r1", "--reports-dir", reports,
              "--no-retrain", *DRIVERS[driver]]
    code, out, err = run(capsys, *common, "--trials", "2")
    assert code == 0, err
    assert "Leaderboard — r1" in out and "2 trials:" in out
    first = board(capsys, reports, "r1")
    assert len(first["trials"]) == 2
    for t in first["trials"]:
        assert {"number", "status", "params", "macs", "val_accuracy", "epochs", "reason"} <= set(t)
        assert t["status"] in ("complete", "pruned") and t["params"] <= 15000 and t["architecture"]
        assert len(t["curve"]) == t["epochs"] >= 1 and t["steps"] > 0

    code, _, err = run(capsys, *common, "--trials", "3")
    assert code == 2 and "exists; continue it with --resume" in err

    code, out, err = run(capsys, *common, "--trials", "3", "--resume")
    assert code == 0, err
    after = board(capsys, reports, "r1")
    assert [t["number"] for t in after["trials"]] == [0, 1, 2]
    assert strip(after["trials"][:2]) == strip(first["trials"])  # finished trials are untouched, not repeated

    code, out, _ = run(capsys, "leaderboard", reports / "r1", "--top", "2")
    assert code == 0 and "Leaderboard — r1" in out and "3 trials:" in out


@pytest.mark.parametrize("driver", ["optuna", "keras-tuner-random"])
def test_over_budget_candidates_are_rejected_without_training(driver, capsys, tmp_path, tiny_budgets):
    code, out, err = run(capsys, "--budgets", tiny_budgets, "search", "--budget", "tiny-strict", "--name", "r3",
                         "--reports-dir", tmp_path, "--trials", "4", "--json", *DRIVERS[driver])
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert len(result["trials"]) == 4  # the search does not stop at rejections
    rejected = [t for t in result["trials"] if t["status"] == "rejected"]
    assert rejected, "repair is off and the budget is tiny: some samples must be rejected"
    for t in rejected:
        assert t["steps"] == 0 and t["epochs"] == 0 and t["reason"].startswith("params:")
        assert t["params"] > 3000
    assert result["counts"]["rejected_by_reason"] == {"params": len(rejected)}


def test_keras_tuner_hyperband_records_rungs_and_retrains(capsys, tmp_path, tiny_budgets):
    code, out, err = run(capsys, "--budgets", tiny_budgets, "search", "--budget", "tiny", "--name", "hb",
                         "--reports-dir", tmp_path, "--trials", "4", *DRIVERS["keras-tuner-hyperband"])
    assert code == 0, err
    trials = board(capsys, tmp_path, "hb")["trials"]
    assert len(trials) == 4
    for t in trials:
        assert t["status"] in ("complete", "pruned")
        assert (t["status"] == "pruned") == (t["epochs"] < 2)
    assert "retrained 1 finalist(s)" in out


def test_conditional_scopes_follow_block_kinds():
    import keras_tuner as kt

    from search.drivers.kerastuner_driver import hyperparameters, values_from
    from search.space import parse_space

    space = parse_space({"name": "t", "input": {"shape": [28, 28, 1], "classes": 10},
                         "blocks": [{"kind": ["conv", "depthwise"], "channels": [8, 16],
                                     "depth_multiplier": [1, 2]}],
                         "head": {"kind": "gap"}}, "t.toml")
    hp = hyperparameters(space, space.params)
    hp.values["blocks[0].kind"] = "depthwise"
    assert not hp.is_active("blocks[0].channels") and hp.is_active("blocks[0].depth_multiplier")
    assert values_from(hp, space.params)["blocks[0].channels"] == 8  # inactive: first option, builds nothing
    assert isinstance(hp, kt.HyperParameters)


def test_a_network_already_trained_is_not_trained_again(capsys, tmp_path, tiny_budgets, monkeypatch):
    # two possible networks, five trials: at least three proposals repeat a finished trial
    from search import gate

    builds = []
    real_build = gate.build_architecture
    monkeypatch.setattr(gate, "build_architecture", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    space = tmp_path / "two.toml"
    space.write_text('name = "two"\n[input]\nshape = [28, 28, 1]\nclasses = 10\n'
                     '[[blocks]]\nkind = "conv"\nchannels = [4, 8]\n[[blocks]]\nkind = "maxpool"\n'
                     '[head]\nkind = "gap"\nlayer = "conv"\n')
    code, out, err = run(capsys, "--budgets", tiny_budgets, "search", "--budget", "tiny", "--space", space,
                         "--name", "d", "--reports-dir", tmp_path, "--trials", "5", "--max-epochs", "1",
                         "--no-retrain")
    assert code == 0, err
    result = board(capsys, tmp_path, "d")
    trials = {t["number"]: t for t in result["trials"]}
    trained = [t for t in trials.values() if t["status"] in ("complete", "pruned")]
    dups = [t for t in trials.values() if t["status"] == "duplicate"]
    assert len(trials) == 5 and len(trained) <= 2 and len(dups) == 5 - len(trained)
    assert {t["architecture"] for t in trained} == {t["architecture"] for t in trials.values()}
    for t in dups:
        first = trials[int(t["reason"].split("trial ")[1].split(" ")[0])]
        assert first["status"] in ("complete", "pruned") and first["values"] == t["values"]
        assert t["val_accuracy"] == first["val_accuracy"] and t["steps"] == 0 and t["epochs"] == 0
    assert f"{len(dups)} duplicates (not trained again)" in out
    assert len(builds) == len(trained)  # a duplicate is not even built

    import optuna  # the sampler is told the score of the trial it repeats
    study = optuna.load_study(study_name="d", storage=f"sqlite:///{tmp_path / 'd' / 'study.db'}")
    for t in dups:
        ft = study.trials[t["number"]]
        if t["reason"].endswith("(complete); not trained again"):
            assert ft.state == optuna.trial.TrialState.COMPLETE and ft.value == t["val_accuracy"]
        else:
            assert ft.state == optuna.trial.TrialState.PRUNED
