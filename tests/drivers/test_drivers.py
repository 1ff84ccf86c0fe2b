"""One suite, run against every driver (Optuna's BasicSamplerTestCase style): tiny real data, few trials."""

import json
import time

import pytest

from budgetnas.cli import main

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


@pytest.mark.slow
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


@pytest.mark.slow
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

    from budgetnas.drivers.kerastuner_driver import hyperparameters, values_from
    from budgetnas.space import parse_space

    space = parse_space({"name": "t", "input": {"shape": [28, 28, 1], "classes": 10},
                         "blocks": [{"kind": ["conv", "depthwise"], "channels": [8, 16],
                                     "depth_multiplier": [1, 2]}],
                         "head": {"kind": "gap"}}, "t.toml")
    hp = hyperparameters(space, space.params)
    hp.values["blocks[0].kind"] = "depthwise"
    assert not hp.is_active("blocks[0].channels") and hp.is_active("blocks[0].depth_multiplier")
    assert values_from(hp, space, space.params)["blocks[0].channels"] == 8  # inactive: first option
    assert isinstance(hp, kt.HyperParameters)


def test_a_network_already_trained_is_not_trained_again(capsys, tmp_path, tiny_budgets, monkeypatch):
    # two possible networks, five trials: at least three proposals repeat a finished trial
    from budgetnas import build

    builds = []  # every Keras build goes through build.build_architecture, whoever asks for it
    real_build = build.build_architecture
    monkeypatch.setattr(build, "build_architecture", lambda *a, **k: builds.append(1) or real_build(*a, **k))
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


# ---------------------------------------------------------------- active-only sampling, keys, pruner, timeout
OPTIONAL = {"name": "opt", "input": {"shape": [28, 28, 1], "classes": 10},
            "blocks": [{"kind": "conv", "channels": [4, 8]},
                       {"kind": ["conv", "depthwise"], "channels": [6, 10, 12], "depth_multiplier": [1, 2],
                        "padding": ["valid", "same"], "repeat": [0, 1]},
                       {"kind": "maxpool"}],
            "head": {"kind": "gap"}}


def _asked_in_study(sampler, n: int = 40):
    """Run n define-by-run trials of the OPTIONAL space on an in-memory study; their asked params."""
    import optuna

    from budgetnas.drivers import domains
    from budgetnas.space import parse_space

    space = parse_space(OPTIONAL, "opt.toml")
    study = optuna.create_study(sampler=sampler, direction="maximize")
    out = []
    for i in range(n):
        trial = study.ask()
        values = space.choose(lambda p: domains.suggest(trial, p))
        study.tell(trial, float(values["blocks[0].channels"] + i % 3))
        out.append((dict(trial.params), values))
    return space, out


@pytest.mark.parametrize("algorithm", ["tpe", "random"])
def test_an_absent_blocks_parameters_are_never_sampled(algorithm):
    from budgetnas.drivers.optuna_driver import make_sampler

    space, trials = _asked_in_study(make_sampler(algorithm, seed=0))
    absent = [(asked, v) for asked, v in trials if v["blocks[1].repeat"] == 0]
    present = [(asked, v) for asked, v in trials if v["blocks[1].repeat"] == 1]
    assert absent and present
    for asked, values in absent:  # only the repeat itself and the stem were asked
        assert set(asked) == {"blocks[0].channels", "blocks[1].repeat"}
        assert values["blocks[1].channels"] == 6 and values["blocks[1].kind"] == "conv"  # first options
    for asked, values in present:
        assert ("blocks[1].channels" in asked) == (values["blocks[1].kind"] == "conv")
        assert ("blocks[1].depth_multiplier" in asked) == (values["blocks[1].kind"] == "depthwise")


def test_keras_tuner_scopes_an_optional_blocks_fields_under_its_repeat():
    from budgetnas.drivers.kerastuner_driver import hyperparameters, values_from
    from budgetnas.space import parse_space

    space = parse_space(OPTIONAL, "opt.toml")
    hp = hyperparameters(space, space.params)
    hp.values["blocks[1].repeat"] = 0
    assert not any(hp.is_active(n) for n in ("blocks[1].kind", "blocks[1].channels", "blocks[1].padding"))
    hp.values.update({"blocks[1].repeat": 1, "blocks[1].kind": "depthwise", "blocks[1].padding": "same"})
    assert hp.is_active("blocks[1].padding") and hp.is_active("blocks[1].depth_multiplier")
    assert not hp.is_active("blocks[1].channels")
    hp.values["blocks[1].repeat"] = 0
    got = values_from(hp, space, space.params)
    assert got["blocks[1].padding"] == "valid" and got["blocks[1].kind"] == "conv"  # absent: first options


def test_two_spellings_of_one_network_are_one_duplicate(tiny_budgets):
    import optuna

    from budgetnas.budget import get_budget
    from budgetnas.drivers.common import SearchContext, network_key
    from budgetnas.drivers.optuna_driver import finished_with
    from budgetnas.space import parse_space

    space = parse_space(OPTIONAL, "opt.toml")
    budget = get_budget("tiny", tiny_budgets)
    ctx = SearchContext(budget=budget, space=space, train=None, val=None, classes=10, epochs=1, seed=0)
    base = {"blocks[0].channels": 8, "blocks[1].repeat": 0, "blocks[1].kind": "conv",
            "blocks[1].channels": 6, "blocks[1].depth_multiplier": 1, "blocks[1].padding": "valid"}
    # the same network: the absent block's fields differ
    other = {**base, "blocks[1].kind": "depthwise", "blocks[1].channels": 12, "blocks[1].padding": "same"}
    assert network_key(ctx, base) == network_key(ctx, other)
    # a depthwise block's channels build nothing either
    dw = {**base, "blocks[1].repeat": 1, "blocks[1].kind": "depthwise"}
    assert network_key(ctx, dw) == network_key(ctx, {**dw, "blocks[1].channels": 10})
    # ... but a real difference is a different key
    assert network_key(ctx, base) != network_key(ctx, {**base, "blocks[0].channels": 4})
    assert network_key(ctx, dw) != network_key(ctx, {**dw, "blocks[1].depth_multiplier": 2})

    study = optuna.create_study(direction="maximize")
    t = study.ask()
    for k, v in {"status": "complete", "key": network_key(ctx, base), "val_accuracy": 0.5, "epochs": 1}.items():
        t.set_user_attr(k, v)
    study.tell(t, 0.5)
    found = finished_with(study, network_key(ctx, other))
    assert found is not None and found.number == 0 and found.val_accuracy == 0.5
    assert finished_with(study, network_key(ctx, other), min_epochs=2) is None  # a shorter rung is no repeat
    # a trial recorded before keys existed is keyed from its values
    t2 = study.ask()
    for k, v in {"status": "complete", "values": dw, "val_accuracy": 0.7, "epochs": 1}.items():
        t2.set_user_attr(k, v)
    study.tell(t2, 0.7)
    key = network_key(ctx, {**dw, "blocks[1].channels": 12})
    assert finished_with(study, key) is None
    assert finished_with(study, key, lambda v: network_key(ctx, v)).number == 1


def test_the_pruner_stops_a_weak_candidate_at_the_first_rung(tmp_path):
    import optuna

    from budgetnas.drivers.optuna_driver import make_study

    study = make_study(f"sqlite:///{tmp_path / 's.db'}", "p", seed=0, min_epochs=1, max_epochs=3,
                       load_if_exists=False)
    scores = [0.9, 0.95, 0.97, 0.5]  # the last is far below the others after one epoch
    verdicts = []
    for score in scores:
        t = study.ask()
        t.report(score, 1)
        verdicts.append(t.should_prune())
        if verdicts[-1]:
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
        else:
            t.report(score, 3)
            study.tell(t, score)
    assert verdicts == [False, False, False, True]


def test_timeout_stops_proposing(capsys, tmp_path, tiny_budgets):
    code, out, err = run(capsys, "--budgets", tiny_budgets, "search", "--budget", "tiny", "--name", "t",
                         "--reports-dir", tmp_path, "--trials", "50", "--max-epochs", "1", "--timeout", "0.01",
                         "--no-retrain")
    assert code == 0, err
    trials = board(capsys, tmp_path, "t")["trials"]
    assert len(trials) == 1  # 0.6 s: the first trial starts and outlasts it; no second one is proposed


def test_ranked_puts_re_scored_trials_first_by_their_re_score():
    from budgetnas.run.folder import TrialRecord, ranked

    recs = [TrialRecord(0, "complete", val_accuracy=0.990, rescore=0.985),
            TrialRecord(1, "complete", val_accuracy=0.984, rescore=0.991),  # the pick
            TrialRecord(2, "complete", val_accuracy=0.995),  # never re-scored: after the re-scored ones
            TrialRecord(3, "pruned", val_accuracy=0.999)]
    assert [r.number for r in ranked(recs)] == [1, 0, 2, 3]
    assert recs[1].score == 0.991 and recs[2].score == 0.995


@pytest.mark.slow
def test_rescoring_trains_the_top_trials_on_all_images_and_finalists_follow_it(capsys, tmp_path, tiny_budgets):
    import csv

    import optuna

    from budgetnas.run.folder import RESCORES, load_meta

    text = tiny_budgets.read_text().replace("seeds = 2\n", "seeds = 1\nrescore = 2\n", 1)
    budgets = tmp_path / "b.toml"
    budgets.write_text(text)
    code, out, err = run(capsys, "--budgets", budgets, "search", "--budget", "tiny", "--name", "rs", "--reports-dir",
                         tmp_path, "--trials", "4", "--max-epochs", "1", "--train-subset", "300")
    assert code == 0, err
    assert "re-scoring the 2 best completed trials on all training images" in out
    assert out.count("re-scored trial") == 2
    meta = load_meta(tmp_path / "rs")
    stored = optuna.load_study(study_name=meta.study, storage=meta.storage).user_attrs[RESCORES]
    trials = board(capsys, tmp_path, "rs")["trials"]
    completed = sorted((t for t in trials if t["status"] == "complete"), key=lambda t: -t["val_accuracy"])
    assert len(completed) >= 3  # one epoch each: the 1-epoch rung is the last, nothing is pruned
    assert sorted(stored) == sorted(str(t["number"]) for t in completed[:2])  # the search's own top 2
    assert all(0.0 <= v <= 1.0 for v in stored.values())
    fin = json.loads((tmp_path / "rs" / "finalists.json").read_text())["finalists"][0]
    top = max(stored.values())  # two re-scored trials may tie (1 epoch on 300 images, 100 validation images)
    assert str(fin["trial"]) in {n for n, v in stored.items() if v == top}
    assert fin["val_accuracy_search"] == pytest.approx(top)
    with (tmp_path / "rs" / "trials.csv").open() as f:
        rows = {r["number"]: r["rescore"] for r in csv.DictReader(f)}
    assert {n for n, v in rows.items() if v} == set(stored)
    # a resumed search trains nothing again
    code, out, err = run(capsys, "--budgets", budgets, "search", "--budget", "tiny", "--name", "rs", "--reports-dir",
                         tmp_path, "--resume", "--no-retrain")
    assert code == 0, err
    assert "re-scored trial" not in out


def test_a_retried_start_point_keeps_its_name():
    """A start point's trial whose worker died (``fail_dead_trials``) or stopped for want of heartbeats
    (``_abandon``) is retried under the same start name, so ``retrain --start`` and the report still find it."""
    import optuna

    from budgetnas.drivers.optuna_driver import _abandon
    from budgetnas.storage import fail_dead_trials

    store = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=store, study_name="s")
    study.enqueue_trial({"x": 1.0}, user_attrs={"start": "golf_820"})
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
    dead.set_user_attr("heartbeat", time.time() - 60)
    assert fail_dead_trials(study, store, grace=5) == [dead.number]
    retry = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
    assert retry.params == {"x": 1.0}
    assert retry.user_attrs["start"] == "golf_820" and retry.user_attrs["retry_of"] == dead.number
    _abandon(study, retry, "no heartbeat")  # the retry stops too: retried again, still the same trial and start
    again = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
    assert again.params == {"x": 1.0}
    assert again.user_attrs["start"] == "golf_820" and again.user_attrs["retry_of"] == dead.number
    plain = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})  # a sampled trial carries no start
    _abandon(study, plain, "no heartbeat")
    assert study.ask({"x": optuna.distributions.FloatDistribution(0, 2)}).user_attrs == {"retry_of": plain.number}
