"""The benchmarks' own numerics (rank statistics) and the committed ranking sample."""

import csv
import itertools
import random
from pathlib import Path

import numpy as np
import pytest

# the benchmark scripts import as top-level modules: pyproject's pytest `pythonpath = ["benchmarks"]`
import mnist_recipe
import proxies
import ranking
import search_vs_random
import tta

ROOT = Path(__file__).resolve().parent.parent


def _tau_by_pairs(a, b) -> float:
    """Kendall's τ-b counted pair by pair (the textbook definition, written independently)."""
    conc = disc = ties_a = ties_b = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        da, db = a[i] - a[j], b[i] - b[j]
        if da == 0 and db == 0:
            continue
        if da == 0:
            ties_a += 1
        elif db == 0:
            ties_b += 1
        elif (da > 0) == (db > 0):
            conc += 1
        else:
            disc += 1
    return (conc - disc) / ((conc + disc + ties_a) * (conc + disc + ties_b)) ** 0.5


def test_kendall_tau_matches_the_pair_count_definition():
    assert proxies.kendall_tau_b([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert proxies.kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # 5 items, one swap of neighbours: 9 concordant, 1 discordant pair -> 0.8
    assert proxies.kendall_tau_b([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.8)
    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(4, 12)
        a = [rng.choice([0.98, 0.985, 0.99, 0.991, 0.992]) for _ in range(n)]  # ties on purpose
        b = [rng.randint(0, 5) for _ in range(n)]
        if len(set(a)) > 1 and len(set(b)) > 1:
            assert proxies.kendall_tau_b(a, b) == pytest.approx(_tau_by_pairs(a, b))


def test_spearman_matches_the_closed_form_without_ties():
    rng = np.random.default_rng(0)
    for _ in range(10):
        a, b = rng.permutation(9) + 0.5, rng.normal(size=9)
        d = proxies.ranks(a) - proxies.ranks(b)
        n = len(a)
        assert proxies.spearman(a, b) == pytest.approx(1 - 6 * (d ** 2).sum() / (n * (n * n - 1)))
    assert list(proxies.ranks([3.0, 1.0, 3.0, 2.0])) == [3.5, 1.0, 3.5, 2.0]  # ties share their mean rank


def test_top3_recall():
    truth = [0.990, 0.995, 0.980, 0.993, 0.991]  # network 1 is best
    assert proxies.top_k_recall([5, 4, 1, 3, 2], truth)  # proxy's top 3: 0, 1, 3
    assert not proxies.top_k_recall([5, 1, 2, 4, 3], truth)  # proxy's top 3: 0, 3, 4


def test_seed_noise_ceiling_falls_with_noise():
    truth = np.linspace(0.990, 0.995, 12)
    low = proxies.seed_noise_ceiling([(0.9930, 0.9931), (0.9910, 0.9909)], truth, draws=200)
    high = proxies.seed_noise_ceiling([(0.9930, 0.9950), (0.9910, 0.9890)], truth, draws=200)
    assert low[0] == pytest.approx(1e-4 / 2 ** 0.5) and high[0] == pytest.approx(2e-3 / 2 ** 0.5)  # sd(diff) / √2
    assert 0.9 < low[1] <= 1.0 and high[1] < 0.6


def test_the_committed_ranking_sample_is_what_its_seed_draws():
    with ranking.NETWORKS.open(newline="", encoding="utf-8") as f:
        committed = list(csv.DictReader(f))
    drawn = ranking.sample_networks()
    assert [(r["architecture"], r["values"]) for r in committed] == \
        [(r["architecture"], r["values"]) for r in drawn]
    assert len({r["architecture"] for r in drawn}) == len(drawn) >= 28  # distinct, winners included
    assert all(int(r["params"]) <= 8000 for r in drawn)
    jobs = ranking.jobs(committed)
    assert len(jobs) == len(set(jobs)) == len(committed) + 5 and (0, 1) in jobs


def test_the_speed_benchmark_splits_a_separable_conv_into_parts_that_compose_to_it():
    """benchmarks/separable_speed.py times a SeparableConv2D as its depthwise and pointwise halves;
    with the separable layer's own weights, the two halves give its output."""
    import keras

    import separable_speed

    x = np.random.default_rng(0).normal(size=(2, 12, 12, 5)).astype("float32")
    sep = keras.layers.SeparableConv2D(7, 3, padding="same", depth_multiplier=2, dilation_rate=2)
    want = np.asarray(sep(x))
    dw, pw = separable_speed.split_separable(sep)
    dw.build(x.shape)
    pw.build((2, 12, 12, 10))
    depthwise_kernel, pointwise_kernel, bias = sep.get_weights()
    dw.set_weights([depthwise_kernel])
    pw.set_weights([pointwise_kernel, bias])
    np.testing.assert_allclose(np.asarray(pw(dw(x))), want, rtol=1e-5, atol=1e-5)


def test_the_speed_benchmark_times_the_network_its_committed_rows_name():
    """The rows in separable_speed.md are for the 97,696-param, 11.45 M-MAC network; the benchmark pins
    it rather than reading whatever reports/cifar10-sep-100k/ holds today."""
    import separable_speed
    from budgetnas import gate
    from budgetnas.budget import get_budget
    from budgetnas.space import load_space

    build, macs = separable_speed._winner()
    assert build().count_params() == 97_696
    verdict, _ = gate.admit(get_budget("cifar10-sep-100k"), load_space(separable_speed.SPACE),
                            separable_speed.VALUES, allow_repair=False, build=False)
    assert verdict.ok and verdict.total_params == 97_696 and verdict.macs == macs == 11_448_384


def test_rescoring_simulation_on_scores_that_know_or_contradict_the_truth():
    truth = np.linspace(0.95, 0.99, 20)
    exact = proxies.rescoring(truth, truth, truth, pool=8, draws=200)
    assert exact["shortfall_plain"] == exact["shortfall_rescored"] == 0.0
    assert exact["hit_plain"] == exact["hit_rescored"] == 1.0 and exact["better"] == exact["worse"] == 0.0
    # a second score that contradicts the truth can only move the pick away from the best of the top 3
    hurt = proxies.rescoring(truth, -10 * truth, truth, pool=8, draws=200)
    assert hurt["hit_plain"] == 1.0 and hurt["better"] == 0.0 and hurt["worse"] == 1.0
    assert hurt["shortfall_rescored"] > 0.0


def test_pick_quality_is_the_pools_best_for_a_perfect_score_and_its_worst_for_a_reversed_one():
    truth = np.linspace(0.95, 0.99, 20)
    rng = np.random.default_rng(0)
    pools = [rng.choice(20, size=5, replace=False) for _ in range(300)]
    best = proxies.pick_quality(truth, truth, pool=5, draws=300)
    worst = proxies.pick_quality(-truth, truth, pool=5, draws=300)
    assert best == pytest.approx(np.mean([truth[p].max() for p in pools]))  # same generator, same pools
    assert worst == pytest.approx(np.mean([truth[p].min() for p in pools]))
    assert worst < truth.mean() < best


def _trial(n: int, status: str, val: str, params: int, arch: str) -> dict:
    return {"trial": str(n), "status": status, "val_accuracy": val, "params": str(params), "architecture": arch}


def test_a_prefix_pick_is_what_the_search_ranks_first_among_its_first_n_trials():
    """The n-trial pick follows budgetnas.run.folder.ranked: completed trials only, best score, then fewer params."""
    from budgetnas.run.folder import TrialRecord, ranked

    trials = [_trial(0, "complete", "0.9880", 7000, "a"), _trial(1, "pruned", "0.9900", 6000, "b"),
              _trial(2, "complete", "0.9890", 7900, "c"), _trial(3, "complete", "0.9890", 7100, "d"),
              _trial(4, "duplicate", "0.9890", 7100, "d"), _trial(5, "complete", "0.9930", 7500, "e")]
    assert search_vs_random.prefix_pick(trials, 1)["architecture"] == "a"
    assert search_vs_random.prefix_pick(trials, 2)["architecture"] == "a"  # the pruned one never counts
    assert search_vs_random.prefix_pick(trials, 3)["architecture"] == "c"
    assert search_vs_random.prefix_pick(trials, 5)["architecture"] == "d"  # a tie goes to fewer params
    assert search_vs_random.prefix_pick(trials, 6)["architecture"] == "e"
    assert search_vs_random.prefix_pick([_trial(0, "pruned", "0.9", 1, "x")], 1) is None
    records = [TrialRecord(number=int(t["trial"]), status=t["status"], val_accuracy=float(t["val_accuracy"]),
                           params=int(t["params"]), architecture=t["architecture"]) for t in trials]
    assert ranked(records)[0].architecture == search_vs_random.prefix_pick(trials, 6)["architecture"]
    assert [r.architecture for r in ranked(records[:5]) if r.status == "complete"][0] == "d"


def _append_many(path: str, start: int) -> None:
    for i in range(start, start + 200):
        ranking.append_row(Path(path), ["id", "text"], {"id": i, "text": "x" * 300})


def test_benchmark_rows_appended_by_several_processes_at_once_stay_whole(tmp_path):
    """Benchmark processes append to one CSV (ranking, proxies, search_vs_random): one header, no torn rows."""
    import multiprocessing

    path = tmp_path / "rows.csv"
    procs = [multiprocessing.get_context("spawn").Process(target=_append_many, args=(str(path), k * 1000))
             for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    rows = ranking.read_csv(path)
    assert path.read_text().count("id,text") == 1
    assert sorted(int(r["id"]) for r in rows) == sorted(k * 1000 + i for k in range(3) for i in range(200))
    assert {r["text"] for r in rows} == {"x" * 300}


def test_signed_points_never_print_minus_zero():
    assert search_vs_random.points(0.9940 - 0.9940 - 1e-12) == "+0.00"
    assert search_vs_random.points(0.0012) == "+0.12" and search_vs_random.points(-0.0005001) == "-0.05"


def test_a_rescored_prefix_pick_is_what_the_search_ranks_first_once_its_top_k_are_rescored():
    """Candidates are the k best completed trials among the first n by the search's own score (what
    rescore_top trains); the pick is the one budgetnas.run.folder.ranked puts first once they carry re-scores."""
    from budgetnas.run.folder import TrialRecord, ranked

    trials = [_trial(0, "complete", "0.9880", 7000, "a"), _trial(1, "pruned", "0.9950", 6000, "b"),
              _trial(2, "complete", "0.9890", 7900, "c"), _trial(3, "complete", "0.9890", 7100, "d"),
              _trial(4, "complete", "0.9870", 7200, "e"), _trial(5, "complete", "0.9930", 7500, "f")]
    assert [t["architecture"] for t in search_vs_random.best_completed(trials, 5, 3)] == ["d", "c", "a"]
    scores = {0: 0.9900, 2: 0.9920, 3: 0.9920, 4: 0.9990}  # trial 4 is not among the first 5's top 3
    assert search_vs_random.rescored_pick(trials, 5, 3, scores)["architecture"] == "d"  # tie: fewer params
    assert search_vs_random.rescored_pick(trials, 5, 3, {0: 0.99, 2: 0.99}) is None  # trial 3 not re-scored yet
    top = {int(t["trial"]) for t in search_vs_random.best_completed(trials, 5, 3)}
    records = [TrialRecord(number=int(t["trial"]), status=t["status"], val_accuracy=float(t["val_accuracy"]),
                           params=int(t["params"]), architecture=t["architecture"],
                           rescore=scores.get(int(t["trial"])) if int(t["trial"]) in top else None)
               for t in trials[:5]]
    assert ranked(records)[0].architecture == "d"


def test_rescores_merge_the_whole_search_and_the_prefix_files_and_a_folder_keeps_its_trial_count(tmp_path):
    old = search_vs_random.OUT
    try:
        search_vs_random.use_folder(tmp_path)
        ranking.append_row(search_vs_random.RESCORED, search_vs_random.RESCORE_FIELDS,
                           {"method": "tpe", "search_seed": 0, "rescored": '{"3": 0.99, "5": 0.98}'})
        ranking.append_row(search_vs_random.PREFIX_RESCORES, search_vs_random.PREFIX_RESCORE_FIELDS,
                           {"method": "tpe", "search_seed": 0, "trial": 1, "rescore": "0.9870"})
        ranking.append_row(search_vs_random.PREFIX_RESCORES, search_vs_random.PREFIX_RESCORE_FIELDS,
                           {"method": "random", "search_seed": 2, "trial": 4, "rescore": "0.9860"})
        assert search_vs_random.rescores() == {("tpe", "0"): {3: 0.99, 5: 0.98, 1: 0.987},
                                               ("random", "2"): {4: 0.986}}
        assert search_vs_random.setup()["trials"] == 24  # a folder without setup.json: the first table's count
        search_vs_random.SETUP.write_text('{"trials": 12, "hardware": "test box"}')
        with pytest.raises(SystemExit, match="run 12 trials"):
            search_vs_random.main(["run", "--out", str(tmp_path), "--trials", "24", "--seeds", "0"])
    finally:
        search_vs_random.use_folder(old)


def test_recipe_table_pairs_each_setting_with_base_on_the_same_network_and_seed(tmp_path, monkeypatch):
    rows = [("base", 1, 0, 0.9950), ("base", 2, 0, 0.9930), ("lr=0.1", 1, 0, 0.9940), ("lr=0.1", 2, 0, 0.9960),
            ("base", 1, 1, 0.9946), ("lr=0.1", 1, 1, 0.9954), ("ema=0.999", 2, 0, 0.9935)]
    path = tmp_path / "results.csv"
    for setting, net, seed, val in rows:
        ranking.append_row(path, mnist_recipe.FIELDS, {"setting": setting, "changes": "{}", "network": net,
                                                       "seed": seed, "final_val_accuracy": val,
                                                       "test_accuracy": 0.99, "wall_seconds": 600})
    monkeypatch.setattr(mnist_recipe, "RESULTS", path)
    lines = {line.split(" | ")[0].lstrip("| "): line for line in mnist_recipe.table().splitlines()
             if line.startswith("| ") and "---" not in line}
    # lr=0.1 against base, pair by pair: (99.40 - 99.50), (99.60 - 99.30), (99.54 - 99.46) -> mean +0.0933
    assert "| +0.09 |" in lines["lr=0.1"] and "| 3 |" in lines["lr=0.1"]
    assert "99.40 / 99.54" in lines["lr=0.1"] and "| 99.51 |" in lines["lr=0.1"]  # mean of the three runs
    assert "| +0.05 |" in lines["ema=0.999"]  # one pair: 99.35 - 99.30
    assert "setting" in lines and "augment=none" not in lines  # settings without a run are left out


def test_last_tenth_pairs_each_setting_with_the_first_row_on_the_same_network_and_seed():
    import last_tenth

    rows = [{"network": n, "seed": s, "setting": st, "accuracy": a, "status": "ok"}
            for n, s, st, a in (("a", "1", "fit 50k", "99.00"), ("a", "1", "fit 55k", "99.10"),
                                ("b", "1", "fit 50k", "99.20"), ("b", "1", "fit 55k", "99.10"),
                                ("a", "2", "fit 55k", "99.90"))]  # no 50k row for seed 2: not paired
    assert last_tenth._delta(rows, "fit 55k", "fit 50k") == "+0.00 (2: +0.10, -0.10)"
    assert last_tenth._delta(rows, "fit 50k", "fit 50k") == "—"


def test_the_cifar_screen_reads_one_row_per_setting_and_length(tmp_path, monkeypatch):
    import cifar_recipe
    import jobs

    path = tmp_path / "runs.csv"
    jobs.append_rows(path, cifar_recipe.FIELDS, [
        {"setting": s, "epochs": e, "val_accuracy": v, "epoch_seconds": t, "status": "ok", "hardware": hw}
        for s, e, v, t, hw in (("base", 15, "85.00", "60", cifar_recipe.HARDWARE),
                               ("ema 0.999", 15, "86.00", "60", cifar_recipe.HARDWARE),
                               ("base", 50, "89.00", "5", "a GPU"),  # measured elsewhere: marked, its time apart
                               ("ema 0.999", 50, "88.50", "60", cifar_recipe.HARDWARE))])
    jobs.append_rows(path, cifar_recipe.FIELDS, [{"setting": "base", "epochs": 50, "val_accuracy": "91.00",
                                                  "epoch_seconds": "60", "status": "ok", "seed": 2,
                                                  "hardware": cifar_recipe.HARDWARE}])  # another weights seed
    monkeypatch.setattr(cifar_recipe, "CSV", path)
    text = cifar_recipe.table()
    assert "| base | 85.00% | 89.00% * | 60 |" in text  # seed 0's row, not seed 2's
    assert "Other weights seeds, same split (`run --seed N`; the 3-seed comparisons below cite them): base, 50 " \
           "epochs, seed 2: 91.00%." in text
    assert "\n\\* a GPU.\n" in text  # escaped: not a list item
    assert "Order at 15 epochs: ema 0.999, base; at 50: base, ema 0.999." in text


def test_a_job_another_live_process_holds_is_not_run_twice(tmp_path):
    import os

    import jobs

    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "held.claim").write_text(str(os.getppid()))  # a live process holds it
    ran = []
    assert jobs.run_once(tmp_path / "claims", tmp_path / "r.csv", ["k"], "held", lambda: ran.append(1)) is None
    assert jobs.run_once(tmp_path / "claims", tmp_path / "r.csv", ["k"], "free", lambda: {"k": "v"}) == {"k": "v"}
    assert ran == [] and jobs.read_rows(tmp_path / "r.csv") == [{"k": "v"}]
    assert not (tmp_path / "claims" / "free.claim").exists()  # released once its row is written
    assert jobs.run_once(tmp_path / "claims", tmp_path / "r.csv", ["k"], "seeds", lambda: [{"k": 1}, {"k": 2}])
    assert jobs.run_once(tmp_path / "claims", tmp_path / "r.csv", ["k"], "failed", lambda: []) == []
    assert jobs.read_rows(tmp_path / "r.csv") == [{"k": "v"}, {"k": "1"}, {"k": "2"}]  # a list: one row each


def test_a_job_written_while_the_claim_was_taken_is_not_run_again(tmp_path, monkeypatch):
    import jobs

    path, ran = tmp_path / "r.csv", []
    jobs.append_rows(path, ["k"], [{"k": "a"}])
    assert jobs.run_once(tmp_path / "claims", path, ["k"], "a", lambda: ran.append(1),
                         done=lambda rows: any(r["k"] == "a" for r in rows)) is None  # done before the claim
    real_claim = jobs.claim

    def claim_while_another_finishes(folder, name):  # the other process writes its row, then lets the job go
        jobs.append_rows(path, ["k"], [{"k": "b"}])
        return real_claim(folder, name)

    monkeypatch.setattr(jobs, "claim", claim_while_another_finishes)
    assert jobs.run_once(tmp_path / "claims", path, ["k"], "b", lambda: ran.append(1),
                         done=lambda rows: any(r["k"] == "b" for r in rows)) is None
    assert ran == [] and [r["k"] for r in jobs.read_rows(path)] == ["a", "b"]
    assert not (tmp_path / "claims" / "b.claim").exists()  # let go again


@pytest.mark.parametrize("setting", ["adamw 0.01 + gap head", "adamw 0.01 + gap head, 7x7 stage 2",
                                     "adamw 0.01 + gap head, 7x7 stage 2, one downsample",
                                     "adamw 0.01 + gap head, stage 3 176 wide", "adamw 0.01 + residual search pick"])
def test_the_cifar_screens_changed_networks_are_the_sizes_and_space_points_the_table_names(setting):
    import cifar_recipe
    from budgetnas import gate
    from budgetnas.budget import get_budget
    from budgetnas.space import load_space

    network = load_space(cifar_recipe.NETWORKS[setting])
    verdict, _ = gate.admit(get_budget("cifar10-sep-100k"), network, {}, allow_repair=False, build=False)
    assert verdict.ok and verdict.total_params == int(network.name.split("_")[1])  # the size in its name
    k7, one, wide = "7x7" in setting, "one downsample" in setting, "176" in setting
    values = {"blocks[0].channels": 48, "blocks[0].depth_multiplier": 2, "blocks[1].channels": 48,
              "blocks[1].repeat": 2, "blocks[1].residual": False, "blocks[2].dropout": 0.1, "blocks[3].channels": 96,
              "blocks[3].kernel": 7 if k7 else 3, "blocks[3].repeat": 3, "blocks[3].residual": True,
              "blocks[4].dropout": 0.15, "blocks[4].repeat": 0 if one else 1, "blocks[5].channels": 160,
              "blocks[5].kernel": 5, "blocks[5].dilation": 2, "blocks[5].repeat": 2, "blocks[5].residual": False,
              "blocks[6].repeat": 0, "blocks[6].dropout": 0.1, "head.kind": "gap", "head.dropout": 0.0}
    if "search pick" in setting:  # the search's trial 10, its values as the study recorded them (after repair)
        values = {"blocks[0].channels": 48, "blocks[0].depth_multiplier": 2, "blocks[1].channels": 64,
                  "blocks[1].repeat": 2, "blocks[1].residual": False, "blocks[2].dropout": 0.1,
                  "blocks[3].channels": 96, "blocks[3].kernel": 3, "blocks[3].repeat": 2, "blocks[3].residual": True,
                  "blocks[4].dropout": 0.1, "blocks[4].repeat": 0, "blocks[5].channels": 160, "blocks[5].kernel": 7,
                  "blocks[5].dilation": 1, "blocks[5].repeat": 2, "blocks[5].residual": False,
                  "blocks[6].dropout": 0.2, "blocks[6].repeat": 1, "head.kind": "gap", "head.dropout": 0.1}
    space = load_space(cifar_recipe.ROOT / "spaces" / "cifar10_separable_residual.toml")
    point = space.resolve(values).describe()
    if wide:  # 176 channels: between the space's widths of 160 and 192, the same network otherwise
        assert point.replace("S160", "S176") == network.resolve({}).describe() != point
    else:
        assert point == network.resolve({}).describe()


def test_test_time_flips_mirror_the_width_axis_and_average_the_two_outputs():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 3, 4, 2))  # N, H, W, C: height and width differ, so a wrong axis shows
    weights = rng.normal(size=(3 * 4 * 2, 5))

    def predict(x):
        return x.reshape(len(x), -1) @ weights

    def mirror(img):  # written out pixel by pixel: column c takes column W-1-c
        h, w, _ = img.shape
        return np.array([[img[r][w - 1 - c] for c in range(w)] for r in range(h)])

    plain = [int(np.argmax(img.reshape(-1) @ weights)) for img in images]
    flip = [int(np.argmax((img.reshape(-1) @ weights + mirror(img).reshape(-1) @ weights) / 2)) for img in images]
    labels = np.array(flip)  # right exactly where the reference's flip is; a wrong axis or mean would miss some
    assert 0 < np.mean(np.array(plain) == labels) < 1  # the mirror changed some predictions, not all
    assert tta.accuracies(predict, images, labels) == pytest.approx((np.mean(np.array(plain) == labels), 1.0))
