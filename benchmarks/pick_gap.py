"""Is the last tenth in the pick? mnist-8k's 7,774-param winner under mnist-15k's rules, on validation only.

    python benchmarks/pick_gap.py run        # twice side by side: each takes the next free job
    python benchmarks/pick_gap.py table      # -> benchmarks/pick_gap/table.md

The default main job (`benchmarks/main_job/`, `final_fit = "train"` rows) chose, on each seed's validation split,
a 13-15k-param network whose mean final validation accuracy is in `main_job/runs.csv`. Here mnist-8k's exported
winner (`reports/mnist-8k/`, found by a search on another split) trains on the same split of each seed (55k images,
the mnist-15k recipe and epochs, weights seed = the split's seed) and is scored on that split's 5k validation images;
the test set is not loaded. If it matches or beats the picks there, a 15k search misses networks its own space holds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import jobs as jobs_mod  # beside this script: CSV rows and job claims

HERE = Path(__file__).resolve().parent / "pick_gap"
ROOT = HERE.parent.parent
CSV = HERE / "runs.csv"
MAIN_JOB = ROOT / "benchmarks" / "main_job" / "runs.csv"
FIELDS = ["split", "network", "recipe", "params", "val_accuracy", "seconds", "hardware"]
HARDWARE = f"{os.cpu_count()}-core CPU"
BUDGET = "mnist-15k"
EIGHT_K = ROOT / "reports" / "mnist-8k"
RECIPES = {"mnist-15k": {}, "mnist-8k": {"lr": 0.1, "augment": "rotate"}}  # mnist-8k's differs in these two


def _network() -> tuple[dict, Path]:
    finalist = json.loads((EIGHT_K / "finalists.json").read_text())["finalists"][0]
    return finalist["values"], EIGHT_K / "space.toml"


def run_one(split: int, recipe: str) -> dict:
    import budgetnas

    values, space = _network()
    t0 = time.monotonic()
    t = budgetnas.train_candidate(values, budget=BUDGET, space=space, seed=split, split_seed=split,
                                  recipe=RECIPES[recipe], test=False)
    return {"split": split, "network": "mnist-8k winner", "recipe": recipe, "params": t.params,
            "val_accuracy": f"{100 * t.val_accuracy:.2f}", "seconds": f"{time.monotonic() - t0:.0f}",
            "hardware": HARDWARE}


def table() -> str:
    rows = jobs_mod.read_rows(CSV)
    picks = {int(r["seed"]): r for r in jobs_mod.read_rows(MAIN_JOB) if r["final_fit"] == "train"}
    lines = ["# The pick: mnist-8k's winner on the default main job's validation splits", "",
             f"`python benchmarks/pick_gap.py run` (two side by side), then `table`; {HARDWARE}, one thread per "
             "training. Validation accuracy (5k split of each seed) after the 15th epoch, 55k training images; the "
             "test set is not loaded. The pick: the network the main job's search chose on that split "
             "(`benchmarks/main_job/runs.csv`, `final_fit = \"train\"`: its mean over 3 weight seeds); mnist-8k's "
             "7,774-param winner: one weight seed (the split's).", "",
             "| split | pick params | pick val | recipe | 8k winner val | Δ |", "| ---: | ---: | ---: | --- | ---: | ---: |"]
    deltas: dict[str, list[float]] = {}
    for r in sorted(rows, key=lambda r: (r["recipe"], int(r["split"]))):
        pick = picks.get(int(r["split"]))
        if pick is None:
            continue
        d = float(r["val_accuracy"]) - float(pick["val_mean"])
        deltas.setdefault(r["recipe"], []).append(d)
        lines.append(f"| {r['split']} | {int(pick['params']):,} | {pick['val_mean']}% | {r['recipe']} | "
                     f"{r['val_accuracy']}% | {jobs_mod.signed(d)} |")
    lines.append("")
    for recipe, ds in deltas.items():
        sd = f" ± {statistics.stdev(ds):.2f}" if len(ds) > 1 else ""
        lines.append(f"- {recipe} recipe: Δ {jobs_mod.signed(statistics.mean(ds))}{sd} over {len(ds)} splits, "
                     f"{sum(d > 0 for d in ds)} of {len(ds)} above the pick.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["run", "table"])
    p.add_argument("--splits", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--recipes", nargs="+", default=["mnist-15k"], choices=sorted(RECIPES))
    args = p.parse_args(argv)
    if args.command == "table":
        (HERE / "table.md").write_text(table())
        print((HERE / "table.md").read_text())
        return 0
    HERE.mkdir(parents=True, exist_ok=True)
    for recipe in args.recipes:
        for split in args.splits:
            row = jobs_mod.run_once(HERE / "claims", CSV, FIELDS, f"{split}--{recipe}",
                                    lambda: run_one(split, recipe),
                                    done=lambda rows: any(r["split"] == str(split) and r["recipe"] == recipe
                                                          for r in rows))
            if row is not None:
                print(f"split {split} {recipe}: {row['val_accuracy']}%", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
