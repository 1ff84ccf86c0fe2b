"""The budget gate: exact verdicts, every reason, repair, and the smallest-network check."""

import random
from pathlib import Path
from dataclasses import replace

import pytest

from budgetnas import gate
from budgetnas.budget import load_budgets
from budgetnas.errors import OverBudgetError
from budgetnas.space import load_space, parse_space
from tests.conftest import ROOT

BUDGETS = load_budgets(ROOT / "budgets.toml")
PAIRS = [(name, b.space) for name, b in BUDGETS.items()]
PAIRS.append(("cifar10-sep-100k", str(ROOT / "spaces" / "cifar10_separable_residual.toml")))


@pytest.mark.parametrize("name, space_path", PAIRS, ids=[f"{p[0]}-{Path(p[1]).stem}" for p in PAIRS])
def test_at_least_90_percent_of_random_samples_pass_after_repair(name, space_path):
    budget, space = BUDGETS[name], load_space(space_path)
    rng = random.Random(0)
    n, passed, repaired = 100, 0, 0
    for _ in range(n):
        verdict, _ = gate.admit(budget, space, space.sample(rng), build=False)
        passed += verdict.ok
        repaired += bool(verdict.repairs)
    ratio = passed / n
    print(f"{name}: {ratio:.0%} pass after repair ({repaired} repaired)")
    assert ratio >= 0.9


@pytest.mark.parametrize("name, space_path", PAIRS, ids=[f"{p[0]}-{Path(p[1]).stem}" for p in PAIRS])
def test_repaired_candidates_are_within_budget_by_the_keras_count(name, space_path):
    budget, space = BUDGETS[name], load_space(space_path)
    rng = random.Random(1)
    admitted = 0
    for _ in range(3):
        verdict, model = gate.admit(budget, space, space.sample(rng))
        if verdict.ok:
            assert model is not None and model.count_params() <= budget.max_params
            assert model.count_params() == verdict.total_params
            admitted += 1
        else:
            assert model is None and verdict.violations
    assert admitted >= 2  # ≥ 90% pass after repair (test above): most of these three must be checked


def test_repair_shrinks_widths_and_records_it():
    budget, space = BUDGETS["mnist-8k"], load_space(ROOT / "spaces" / "mnist_tiny.toml")
    values = {p.name: max(p.domain.options) if p.name.endswith(("channels", "repeat")) else p.domain.options[0]
              for p in space.params}
    raw, _ = gate.admit(budget, space, values, allow_repair=False, build=False)
    assert not raw.ok and raw.violations[0].startswith("params:")
    fixed, _ = gate.admit(budget, space, values, build=False)
    assert fixed.ok and fixed.total_params <= 8000
    assert any("channels" in r and "→" in r for r in fixed.repairs)


def test_repair_gives_back_the_widths_a_later_change_made_unnecessary():
    # Trial 0 of a real mnist-8k search: widest-first shrinking took every width to its minimum before
    # the shrink head went to GAP, leaving 2,588 params (32% of the budget) for 6 changes.
    budget, space = BUDGETS["mnist-8k"], load_space(ROOT / "spaces" / "mnist_tiny.toml")
    sampled = {"defaults.batchnorm": "before", "defaults.dropout": 0.05, "blocks[0].channels": 14,
               "blocks[1].channels": 28, "blocks[2].channels": 12, "blocks[2].repeat": 0,
               "blocks[4].kind": "separable", "blocks[4].channels": 20, "blocks[4].repeat": 1,
               "blocks[5].channels": 24, "blocks[5].padding": "same", "blocks[5].dilation": 2,
               "blocks[5].repeat": 1, "head.kind": "shrink"}
    fixed, _ = gate.admit(budget, space, sampled, build=False)
    assert fixed.ok and fixed.total_params <= budget.max_params
    # nothing was taken that the budget did not need: every changed parameter, moved one option back
    # towards what was sampled, breaks a rule
    # the absent 1x1 block's width builds nothing: set to its first option, not a repair
    assert fixed.values["blocks[2].channels"] == 8 and not any("blocks[2]" in r for r in fixed.repairs)
    sampled = space.canonical(sampled)
    changed = [p for p in space.params if fixed.values[p.name] != sampled[p.name]]
    assert changed and len(changed) == len(fixed.repairs)
    for p in changed:
        opts = list(p.domain.options)
        i, j = opts.index(fixed.values[p.name]), opts.index(sampled[p.name])
        back = opts[i + (1 if j > i else -1)] if p.domain.is_range else sampled[p.name]
        verdict, _ = gate.admit(budget, space, {**fixed.values, p.name: back}, allow_repair=False, build=False)
        assert not verdict.ok, f"{p.name} {fixed.values[p.name]}→{back} still fits"


def test_repair_shrinks_a_shared_blocks_tied_widths_together_and_keeps_it():
    # The shared-1936 anchor (2,372 params as Keras counts it) under the 2k budget: shrinking one of the two 26-wide
    # blocks alone leaves the shared block's input and output unequal, which once ended the shrinking, and the
    # repair dropped the shared block (repeat 3→0) instead.
    budget, space = BUDGETS["mnist-2k"], load_space(ROOT / "spaces" / "mnist_front.toml")
    start = dict(space.start)["shared_2372"]
    fixed, _ = gate.admit(budget, space, start, build=False)
    assert fixed.ok and fixed.total_params == 1976  # the plan's count: both widths 22 (24 would be 2,170)
    assert fixed.values["blocks[5].repeat"] == 3 and fixed.values["blocks[5].shared"] is True
    assert fixed.values["blocks[3].channels"] == fixed.values["blocks[5].channels"] == 22
    assert sorted(fixed.repairs) == ["blocks[3].channels 26→22", "blocks[5].channels 26→22"]


def test_every_reason_is_reported():
    space = parse_space({
        "name": "t", "input": {"shape": [32, 32, 3], "classes": 10},
        "blocks": [{"kind": "conv", "channels": 64}, {"kind": "pointwise", "channels": 64}],
        "head": {"kind": "flatten", "hidden": [32]},
    }, "t.toml")
    budget = replace(BUDGETS["cifar10-sep-100k"], max_macs=1000)
    verdict, model = gate.admit(budget, space, {}, allow_repair=False)
    assert model is None and not verdict.ok
    kinds = [v.split(":")[0] for v in verdict.violations]
    assert kinds == ["params", "layers", "layers", "batchnorm", "dropout", "macs", "rf"]
    assert "Conv2D is forbidden (conv2d_1, conv2d_2)" in verdict.violations[1]


def test_a_map_below_1x1_is_rejected_before_building():
    space = parse_space({
        "name": "t", "input": {"shape": [8, 8, 1], "classes": 10},
        "blocks": [{"kind": "conv", "channels": 4, "kernel": 5}, {"kind": "conv", "channels": 4, "kernel": 5}],
        "head": {"kind": "gap"},
    }, "t.toml")
    verdict, model = gate.admit(BUDGETS["mnist-15k"], space, {}, allow_repair=False)
    assert model is None and "below 1x1" in verdict.violations[0]


def test_trainable_only_counting():
    space = load_space(ROOT / "spaces" / "seed_mnist_13794.toml")
    total = replace(BUDGETS["mnist-15k"], max_params=13_600)
    trainable = replace(total, count="trainable")
    assert not gate.admit(total, space, {}, build=False)[0].ok  # 13,794 > 13,600
    assert gate.admit(trainable, space, {}, build=False)[0].ok  # 13,582 ≤ 13,600


def test_space_whose_smallest_network_breaks_the_budget_is_refused():
    budget = replace(BUDGETS["mnist-8k"], max_params=500)
    space = load_space(ROOT / "spaces" / "mnist_tiny.toml")
    values, n = gate.smallest(budget, space)
    assert n == gate.admit(budget, space, values, allow_repair=False, build=True)[0].total_params
    with pytest.raises(OverBudgetError, match=r"budget 'mnist-8k' \(500 total params\).*mnist_tiny.toml.*"
                                              rf"{n:,} params"):
        gate.check_space_fits(budget, space)


def test_shipped_fixed_baselines_against_their_budgets():
    seed = load_space(ROOT / "spaces" / "seed_cifar10_separable_81973.toml")
    gate.check_space_fits(BUDGETS["cifar10-sep-100k"], seed)  # the hand-made net meets task 3's rules
    picked = load_space(ROOT / "spaces" / "cifar10_residual_99120.toml")
    gate.check_space_fits(BUDGETS["cifar10-sep-100k"], picked)  # residual, and still separable-only
    base = load_space(ROOT / "spaces" / "cifar10_base_network.toml")
    with pytest.raises(OverBudgetError):
        gate.check_space_fits(BUDGETS["cifar10-sep-100k"], base)


def test_residual_networks_keep_a_separable_only_budget_separable_only():
    budget, space = BUDGETS["cifar10-sep-100k"], load_space(ROOT / "spaces" / "cifar10_separable_residual.toml")
    rng = random.Random(4)
    projected = residual = 0
    for _ in range(30):
        values = space.sample(rng)
        values.update({k: True for k in values if k.endswith(".residual")})
        verdict, _ = gate.admit(budget, space, values, build=False)  # repair may drop a costly skip
        assert verdict.ok, verdict.violations
        kinds = [r.kind for r in verdict.table.rows]
        assert "Conv2D" not in kinds and "Dense" not in kinds
        assert kinds.count("Add") == verdict.architecture.count(")+")
        residual += kinds.count("Add")
        projected += sum(r.kind == "SeparableConv2D" and r.kernel == (1, 1) for r in verdict.table.rows[:-3])
    assert residual >= 45 and projected > 0  # most stages kept their skip; widening ones got a separable 1x1


def test_the_gates_jobs_run_alone_and_admit_is_their_composition():
    from budgetnas.build import build_model

    budget, space = BUDGETS["mnist-8k"], load_space(ROOT / "spaces" / "mnist_tiny.toml")
    rng = random.Random(3)
    for _ in range(5):
        sampled = space.sample(rng)
        fixed, changes = gate.repair(budget, space, space.canonical(sampled))
        judged = gate.judge(budget, space, fixed, tuple(changes))  # no build: the plan's table
        admitted, model = gate.admit(budget, space, sampled)  # repair, judge, build, judge the built model
        assert (judged.ok, judged.values, judged.repairs, judged.total_params) == \
            (admitted.ok, admitted.values, admitted.repairs, admitted.total_params)
        built = gate.judge_built(budget, space, build_model(space, fixed, seed=0), judged)
        assert built.total_params == (model.count_params() if model is not None else built.total_params)
        assert built.violations == admitted.violations


def test_the_residual_cifar_space_holds_7x7_kernels_and_one_downsample():
    """Two words of its space: a 7x7 depthwise kernel in the residual stages, and the second pool left out (one
    downsample; stage 3 then runs at 16x16). The built network keeps the budget's rules."""
    budget, space = BUDGETS["cifar10-sep-100k"], load_space(ROOT / "spaces" / "cifar10_separable_residual.toml")
    values = {p.name: p.domain.options[0] for p in space.params}
    values.update({"blocks[3].kernel": 7, "blocks[4].repeat": 0, "blocks[5].kernel": 7, "blocks[5].dilation": 1})
    verdict, model = gate.admit(budget, space, values, allow_repair=False)
    assert verdict.ok, verdict.violations
    assert model.count_params() == verdict.total_params <= budget.max_params
    depthwise = [r for r in verdict.table.rows if r.kind == "SeparableConv2D" and r.kernel == (7, 7)]
    assert {r.output_shape[:2] for r in depthwise} == {(16, 16)}  # stage 2 and stage 3 both at 16x16
    assert len(depthwise) == values["blocks[3].repeat"] + values["blocks[5].repeat"]
    assert sum(r.kind == "MaxPooling2D" for r in verdict.table.rows) == 1
