"""The accuracy–size front: its numerics against independent references, the rung rule, and the front
search end to end (search, leaderboard, report, retrain, export) on tiny real data."""

import json
import math
import random

import numpy as np
import pytest

import budgetnas
from budgetnas import front
from budgetnas.cli import main
from budgetnas.front import Point


def test_fronts_match_a_pairwise_dominance_count():
    rng = random.Random(0)
    pts = [Point(round(rng.random(), 2), rng.randint(1, 20)) for _ in range(60)]
    rank = front.fronts(pts)
    for i, p in enumerate(pts):
        dominators = [j for j, q in enumerate(pts) if q.accuracy >= p.accuracy and q.cost <= p.cost
                      and (q.accuracy > p.accuracy or q.cost < p.cost)]
        assert (rank[i] == 0) == (not dominators)
        if dominators:  # one front below the best front that dominates it
            assert rank[i] == 1 + max(rank[j] for j in dominators)


def test_hypervolume_matches_optunas_own_computation():
    from optuna._hypervolume import compute_hypervolume  # Optuna's WFG implementation, written for minimisation

    rng = random.Random(1)
    for _ in range(20):
        pts = [Point(rng.uniform(0.9, 1.0), rng.uniform(500, 15000)) for _ in range(rng.randint(1, 12))]
        ref = Point(0.9, 20000)
        mine = front.hypervolume(pts, ref)
        theirs = compute_hypervolume(np.array([[-p.accuracy, math.log10(p.cost)] for p in pts]),
                                     np.array([-ref.accuracy, math.log10(ref.cost)]))
        assert mine == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    assert front.hypervolume([Point(0.8, 100)], Point(0.9, 1000)) == 0.0  # below the reference counts nothing
    assert front.hypervolume([Point(1.0, 10)], Point(0.0, 100)) == pytest.approx(1.0)  # one decade × 1.0
    assert front.hypervolume([Point(1.0, 10)], Point(0.0, 100), log_cost=False) == pytest.approx(90.0)


def test_a_clearly_dominated_candidate_stops_at_the_rung():
    others = [Point(0.95, 2000), Point(0.96, 3000), Point(0.97, 4000), Point(0.98, 5000), Point(0.90, 1000)]
    assert not front.promote(Point(0.80, 6000), others, reduction=3)  # beaten on both axes by every other


def test_a_small_non_dominated_candidate_goes_on_even_when_weak():
    others = [Point(0.95, 2000), Point(0.96, 3000), Point(0.97, 4000), Point(0.98, 5000), Point(0.90, 1000)]
    assert front.promote(Point(0.50, 300), others, reduction=3)  # the cheapest: nothing dominates it


def test_the_first_candidates_are_never_stopped_for_lack_of_company():
    assert front.promote(Point(0.1, 9000), [], reduction=3)
    assert front.promote(Point(0.1, 9000), [Point(0.99, 100), Point(0.99, 200)], reduction=3)
    assert not front.promote(Point(0.1, 9000), [Point(0.99, 100), Point(0.99, 200), Point(0.99, 300)],
                             reduction=3)


def test_promote_keeps_a_third_by_non_dominated_sorting():
    # fronts 0..5, one point each (a chain): ceil(6 / 3) = 2 go on
    chain = [Point(0.9 - 0.01 * i, 1000 + 100 * i) for i in range(6)]
    verdicts = [front.promote(p, [q for q in chain if q is not p], 3) for p in chain]
    assert verdicts == [True, True, False, False, False, False]


def test_spread_picks_points_along_the_front_in_log_cost():
    pts = [Point(0.90, 1000), Point(0.95, 2000), Point(0.97, 4000), Point(0.98, 8000), Point(0.99, 16000),
           Point(0.50, 16000)]  # the last is dominated
    assert front.spread(pts, 3) == [0, 2, 4]
    assert front.spread(pts, 1) == [4]  # one point: the most accurate
    assert front.spread(pts, 10) == [0, 1, 2, 3, 4]


def test_best_under_each_limit_is_the_most_accurate_that_fits():
    from budgetnas.run.folder import TrialRecord

    recs = [TrialRecord(0, "complete", params=900, val_accuracy=0.97),
            TrialRecord(1, "complete", params=4000, val_accuracy=0.99),
            TrialRecord(2, "pruned", params=1000, val_accuracy=0.999),  # not completed: not a candidate
            TrialRecord(3, "complete", params=4800, val_accuracy=0.985)]
    best = front.best_under(recs, {"a": 1000, "b": 5000, "c": 500})
    assert {k: r.number for k, r in best.items()} == {"a": 0, "b": 1}
    assert [r.number for r in front.front_records(recs)] == [0, 1]


def test_the_front_plot_shows_every_front_point_even_the_weak_small_ones():
    from budgetnas.report.figures import accuracy_vs_params
    from budgetnas.run.folder import TrialRecord

    # the smallest nets of a front score far below the rest, under the quartile a fixed-budget plot starts at
    recs = [TrialRecord(0, "complete", params=400, val_accuracy=0.52),
            TrialRecord(1, "complete", params=1200, val_accuracy=0.87)]
    recs += [TrialRecord(2 + i, "complete", params=13000 + i, val_accuracy=0.97 + 0.001 * i) for i in range(10)]
    fig = accuracy_vs_params(recs, 15000, limits={"mnist-5k": 5000}, log_x=True)
    low, high = fig.axes[0].get_ylim()
    assert low <= 0.52 and high >= 0.979

# ------------------------------------------------------------------ the driver's rung, without training
class _FakeEvaluate:
    """Stands in for drivers.common.evaluate: reports a fixed cost and rung-1 accuracy per trial."""

    def __init__(self, plan):
        self.plan = plan  # trial number -> (params, accuracy after epoch 1)

    def __call__(self, ctx, number, values, on_epoch=None, on_batch=None, seen=None, seed_of=None, on_built=None):
        from budgetnas.drivers.common import Pruned
        from budgetnas.run.folder import TrialRecord

        params, acc = self.plan[number]
        rec = TrialRecord(number=number, status="running", values=dict(values), params=params, macs=params * 10)
        on_built(rec)
        for epoch in range(1, ctx.epochs + 1):
            rec.curve.append(acc)
            rec.epochs, rec.val_accuracy = epoch, acc
            try:
                on_epoch(epoch, acc)
            except Pruned:
                rec.status = "pruned"
                return rec
        rec.status = "complete"
        return rec


@pytest.mark.parametrize("min_epochs", [1, 3])
def test_the_front_driver_prunes_a_dominated_candidate_and_tells_two_objectives(min_epochs, tmp_path, monkeypatch):
    import optuna

    from budgetnas.budget import get_budget
    from budgetnas.drivers import optuna_driver
    from budgetnas.drivers.common import SearchContext
    from budgetnas.space import load_space

    budget = get_budget("mnist-front")
    space = load_space("mnist_wide")
    ctx = SearchContext(budget=budget, space=space, train=None, val=None, classes=10, epochs=3, seed=0,
                        objective="front", min_epochs=min_epochs)  # 3 = --min-epochs 3: no rung before the end
    plan = {0: (2000, 0.95), 1: (3000, 0.96), 2: (4000, 0.97), 3: (9000, 0.50), 4: (300, 0.40)}
    monkeypatch.setattr(optuna_driver, "evaluate", _FakeEvaluate(plan))
    study = optuna_driver.make_study(f"sqlite:///{tmp_path / 's.db'}", "f", seed=0, min_epochs=1, max_epochs=3,
                                     load_if_exists=False, objective="front")
    done = []
    optuna_driver.run(ctx, study, trials=5, timeout_s=None, on_done=done.append)
    pruned = ["pruned"] if min_epochs == 1 else ["complete"]
    assert [r.status for r in done] == ["complete", "complete", "complete", *pruned, "complete"]
    assert study.metric_names == ["val accuracy", "params"]
    t = study.trials
    assert t[0].values == [0.95, 2000.0]
    assert t[3].state == (optuna.trial.TrialState.PRUNED if min_epochs == 1 else optuna.trial.TrialState.COMPLETE)
    assert {b.number for b in study.best_trials} == {0, 1, 2, 4}  # trial 3 is dominated either way


# ------------------------------------------------------------------ end to end
def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def front_budgets(tmp_path, tiny_mnist):
    from tests.conftest import ROOT

    path = tmp_path / "budgets.toml"
    common = f'dataset = "{tiny_mnist}"\nspace = "{ROOT / "spaces" / "mnist_wide.toml"}"\nvalidation = 100\n'
    path.write_text(f'''
[tf]
description = "tiny front"
{common}max_params = 15000
epochs = 2
[tf.train]
optimizer = "adam"
lr = 0.003
batch_size = 64
[tf.search]
objective = "front"
trials = 5
epochs = 2
min_epochs = 1
seeds = 1

[t8]
description = "a named budget under the front's"
{common}max_params = 8000
epochs = 2

[t3]
description = "a smaller one"
{common}max_params = 3000
epochs = 2
baseline_space = "{ROOT / "spaces" / "seed_mnist_13794.toml"}"
baseline_accuracy = 0.9942
''')
    return path


@pytest.mark.slow
def test_a_front_search_end_to_end(capsys, tmp_path, front_budgets):
    import optuna

    reports = tmp_path / "reports"
    code, out, err = run(capsys, "--budgets", front_budgets, "search", "--budget", "tf", "--name", "f",
                         "--reports-dir", reports, "--space", "mnist_wide", "--seed", "3")
    assert code == 0, err
    assert "Front — f" in out and "5 trials:" in out
    code, out, err = run(capsys, "leaderboard", "f", "--reports-dir", reports, "--json")
    trials = json.loads(out)["trials"]
    done = [t for t in trials if t["status"] == "complete"]
    line = [t for t in done if not any(o["val_accuracy"] >= t["val_accuracy"] and o["params"] <= t["params"]
                                       and (o["val_accuracy"] > t["val_accuracy"] or o["params"] < t["params"])
                                       for o in done)]
    code, out, _ = run(capsys, "leaderboard", "f", "--reports-dir", reports, "--front", "--json")
    cheapest_first = [t["number"] for t in sorted(line, key=lambda t: t["params"])]
    assert [t["number"] for t in json.loads(out)["trials"]] == cheapest_first
    code, out, _ = run(capsys, "leaderboard", "f", "--reports-dir", reports, "--front")
    assert code == 0 and "Front — f" in out
    for t in line:
        assert f"{t['params']:,}" in out

    # the run's hypervolume is Optuna's own computation (WFG, minimising) on its completed trials, log10 params
    from optuna._hypervolume import compute_hypervolume

    theirs = compute_hypervolume(np.array([[-t["val_accuracy"], math.log10(t["params"])] for t in done]),
                                 np.array([0.0, math.log10(20_000)]))
    assert budgetnas.open_run(reports / "f").hypervolume(ref_accuracy=0.0, ref_cost=20_000) == pytest.approx(theirs)

    # the study names its metrics and has two objectives: optuna-dashboard draws its Pareto front
    study = optuna.load_study(study_name="f", storage=f"sqlite:///{reports / 'f' / 'study.db'}")
    assert study.metric_names == ["val accuracy", "params"] and len(study.directions) == 2

    # the search retrained the best under each named budget that fits (t3, t8; not the front budget itself)
    fins = json.loads((reports / "f" / "finalists.json").read_text())["finalists"]
    expected = {}
    for name, limit in (("t3", 3000), ("t8", 8000)):
        fit = [t for t in done if t["params"] <= limit]
        if fit:
            expected[name] = max(fit, key=lambda t: (t["val_accuracy"], -t["params"]))["number"]
    assert sorted(f["trial"] for f in fins) == sorted(set(expected.values()))
    md = (reports / "f" / "report.md").read_text()
    assert "## Front" in md and "Best trial under each named budget" in md
    for name in expected:
        assert f"`{name}` (≤" in md

    # retrain K points spread along the front, then export one of them
    code, out, err = run(capsys, "retrain", "f", "--reports-dir", reports, "--front", "2", "--seeds", "1")
    assert code == 0, err
    fins = json.loads((reports / "f" / "finalists.json").read_text())["finalists"]
    assert len(fins) == min(2, len(line)) and {f["trial"] for f in fins} <= {t["number"] for t in line}
    n = fins[0]["trial"]
    code, out, err = run(capsys, "export", "f", "--reports-dir", reports, "--trial", n, "--format", "keras")
    assert code == 0, err
    assert f"exported trial {n}" in out


def test_a_front_needs_the_optuna_driver(capsys, tmp_path, front_budgets):
    code, _, err = run(capsys, "--budgets", front_budgets, "search", "--budget", "tf", "--name", "k",
                       "--reports-dir", tmp_path, "--driver", "keras-tuner")
    assert code == 2 and "--objective front: the keras-tuner driver searches accuracy only" in err


def test_a_bad_objective_in_a_budget_is_one_line(capsys, tmp_path):
    bad = tmp_path / "b.toml"
    bad.write_text('[x]\ndataset = "mnist"\nspace = "spaces/mnist_tiny.toml"\nmax_params = 100\nepochs = 1\n'
                   '[x.search]\nobjective = "pareto"\n')
    code, _, err = run(capsys, "--budgets", bad, "budgets")
    assert code == 2 and "x.search.objective = 'pareto' must be one of accuracy, front" in err
