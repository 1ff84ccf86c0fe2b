"""How much of the budget repaired candidates use: 200 random samples of each shipped budget's space.

A sampled candidate over the budget is repaired by the gate before any training; this prints, per
budget, how many samples needed repair, the share of the budget the repaired networks use (mean and
median), how many parameters a repair changed on average, and how many distinct networks were admitted.
Pure-Python plans only (no Keras model is built), a few seconds per budget.

    python benchmarks/repair_use.py [--samples 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import statistics

import budgetnas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budgets", default="budgets.toml")
    args = ap.parse_args()
    for name, budget in budgetnas.load_budgets(args.budgets).items():
        space = budgetnas.load_space(budget.space)
        rng = random.Random(args.seed)
        used, changes, admitted, repaired = [], [], set(), 0
        for _ in range(args.samples):
            verdict = budgetnas.judge(space.sample(rng), budget=budget, space=space, repair=True)
            if not verdict.ok:
                continue
            admitted.add(tuple(sorted((k, repr(v)) for k, v in verdict.values.items())))
            if verdict.repairs:
                repaired += 1
                used.append(verdict.total_params / budget.max_params)
                changes.append(len(verdict.repairs))
        if not used:
            print(f"{name}: no sample needed repair")
            continue
        print(f"{name}: {repaired}/{args.samples} repaired; repaired nets use {statistics.mean(used):.0%} of the "
              f"budget (median {statistics.median(used):.0%}), {statistics.mean(changes):.1f} parameters changed; "
              f"{len(admitted)} distinct networks admitted")


if __name__ == "__main__":
    main()
