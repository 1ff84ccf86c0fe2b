"""Training for small networks (≤ 5k params), chosen on validation: epochs and one recipe change at a time.

    python benchmarks/small_recipe.py run &      # twice side by side: each takes the next job nobody holds
    python benchmarks/small_recipe.py table      # -> benchmarks/small_recipe/table.md (from runs.csv)

Three small networks: two public hand-made ones without BatchNorm (``golf_820``, ``sep_997`` of
``spaces/anchors/``) and the 1,254-param point of the earlier committed ``reports/mnist-front`` (with BatchNorm;
its space and values: ``small_recipe/front_1254_*``); and, for the 5k budget, the 4,250-param winner of the
earlier committed ``reports/mnist-5k`` (with BatchNorm and dropout; ``small_recipe/wide_4250_*``) and the best
pick of a 16-trial ``mnist_tiny`` search under the same budget (``budgetnas search --budget mnist-5k --space
mnist_tiny --seed 1``: 4,944 params, GAP head; ``small_recipe/tiny_4944_*``); and two narrower copies of the
8,132-param plain-7918 anchor, points of ``spaces/mnist_front.toml`` under 5k (``plain_4838``: every conv narrower;
``plain_4776``: a 6-wide stem, the middle convs 12 wide; ``small_recipe/plain_*_values.json``); and five
hand-made 5k networks, each a one-network space beside this script (``hand_4966``, ``sepmid_4754``,
``plain3_4826``, ``valid_4798``, ``sepwide_4816``; each file says how it is built).
Base: the ``mnist-front`` budget's recipe as it was (SGD-Nesterov one-cycle, peak 0.1, batch 128, label
smoothing 0.05, ±8° rotation, no clipping; ``BASE``), 15 epochs. Each setting changes one thing. Seed 1 for the weights and the 5k validation
split (``budgetnas.train_candidate(..., split_seed=1, seed=1, test=False)``): the test set is not touched.
A diverged run (the loss went NaN) is a row too. Rows append to ``small_recipe/runs.csv``; ``run`` skips
rows it has.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jobs as jobs_mod  # beside this script: CSV rows and job claims

HERE = Path(__file__).resolve().parent / "small_recipe"
ROOT = HERE.parent.parent
CSV = HERE / "runs.csv"
FIELDS = ["network", "params", "setting", "epochs", "val_accuracy", "seconds", "epoch_seconds", "status",
          "hardware"]
HARDWARE = f"{os.cpu_count()}-core CPU"
BUDGET = "mnist-front"
NETWORKS = ("golf_820", "sep_997", "front_1254", "wide_4250", "tiny_4944", "plain_4838", "plain_4776",
            "hand_4966", "sepmid_4754", "plain3_4826", "valid_4798", "sepwide_4816")
# values kept beside this script (``NAME_values.json``), with the space they are a point of: their own copy
# (``NAME_space.toml``: the runs they came from were replaced) or the one the file names (``"space"``)
KEPT = NETWORKS[2:]
# setting -> (epochs, recipe changes); base first, then one change each
# The mnist-front budget's recipe as it stood when this table was started (it now clips at 1.0, from this
# table), written out so that later changes to the budget do not change what "base" means here.
BASE = {"optimizer": "sgd", "lr": 0.1, "schedule": "onecycle", "batch_size": 128, "label_smoothing": 0.05,
        "momentum": 0.9, "augment": "rotate", "clipnorm": 0.0, "weight_decay": 0.0, "ema": 0.0}
SETTINGS = {
    "base": (15, {}),
    "clipnorm 1": (15, {"clipnorm": 1.0}),
    "lr 0.05": (15, {"lr": 0.05}),
    "label smoothing 0": (15, {"label_smoothing": 0.0}),
    "no augmentation": (15, {"augment": "none"}),
    "batch 256": (15, {"batch_size": 256}),
    "label smoothing 0 + clipnorm 1": (15, {"label_smoothing": 0.0, "clipnorm": 1.0}),
    "shift-rotate": (15, {"augment": "shift-rotate"}),
    "30 epochs + clipnorm 1": (30, {"clipnorm": 1.0}),
    "30 epochs + label smoothing 0 + clipnorm 1": (30, {"label_smoothing": 0.0, "clipnorm": 1.0}),
    "60 epochs + clipnorm 1": (60, {"clipnorm": 1.0}),
    "60 epochs + label smoothing 0 + clipnorm 1": (60, {"label_smoothing": 0.0, "clipnorm": 1.0}),
}


def network(name: str):
    """(space, values) of one of the networks."""
    from budgetnas import load_space

    if name in KEPT:
        point = json.loads((HERE / f"{name}_values.json").read_text())
        space = ROOT / point["space"] if "space" in point else HERE / f"{name}_space.toml"
        return load_space(space), point["values"]
    return load_space(ROOT / "spaces" / "anchors" / f"{name}.toml"), {}


def run_one(net: str, setting: str, splits) -> dict:
    import statistics

    import budgetnas

    space, values = network(net)
    epochs, change = SETTINGS[setting]
    t0 = time.monotonic()
    row = {"network": net, "setting": setting, "epochs": epochs, "hardware": HARDWARE}
    try:
        t = budgetnas.train_candidate(values, budget=BUDGET, space=space, epochs=epochs, seed=1,
                                      recipe={**BASE, **change}, splits=splits, test=False)
    except budgetnas.TrialFailed as exc:
        return {**row, "params": "", "val_accuracy": "", "seconds": f"{time.monotonic() - t0:.0f}",
                "epoch_seconds": "", "status": f"diverged ({exc})"}
    return {**row, "params": t.params, "val_accuracy": f"{100 * t.val_accuracy:.2f}", "seconds": f"{t.seconds:.0f}",
            "epoch_seconds": f"{statistics.median(t.history.epoch_seconds):.1f}", "status": "ok"}


def cell(rows: list[dict], net: str, setting: str) -> str:
    """One network's validation accuracy under one setting: "" (not run), "diverged" or "99.38%"."""
    got = [r for r in rows if r["network"] == net and r["setting"] == setting]
    return "" if not got else "diverged" if got[0]["status"] != "ok" else f"{got[0]['val_accuracy']}%"


def group_table(rows: list[dict], group: tuple[str, ...]) -> list[str]:
    """The markdown lines of one table: a column per network of ``group`` that has rows, a line per setting run."""
    nets = [n for n in group if any(r["network"] == n for r in rows)]
    params = {n: next((r["params"] for r in rows if r["network"] == n and r["params"]), "?") for n in nets}
    lines = ["| setting | epochs | " + " | ".join(f"{n} ({params[n]} params)" for n in nets) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in nets) + " |"]
    for setting, (epochs, _) in SETTINGS.items():
        cells = [cell(rows, n, setting) for n in nets]
        if any(cells):
            lines.append(f"| {setting} | {epochs} | " + " | ".join(cells) + " |")
    return lines


def table() -> str:
    rows = jobs_mod.read_rows(CSV)
    lines = ["# Training small networks, chosen on validation", "",
             f"`python benchmarks/small_recipe.py run` (twice side by side), then `table`; {HARDWARE}, one thread "
             "per training. Validation accuracy after the last epoch (5k split, seed 1; one seed, weights seed 1), "
             "never the test set. Base: the `mnist-front` recipe before this table (no gradient clipping) at 15 epochs; "
             "each row changes one thing. The noise "
             "floor of one seed on a 5k split is ≈ 0.1-0.2 points: smaller differences are not results.", ""]
    for title, group in (("Networks of 820 to 1,254 params", NETWORKS[:3]), ("Networks under 5,000 params", NETWORKS[3:])):
        lines += [f"## {title}", "", *group_table(rows, group), ""]
    nets = [n for n in NETWORKS if any(r["network"] == n for r in rows)]
    secs = {n: [float(r["epoch_seconds"]) for r in rows if r["network"] == n and r["epoch_seconds"]] for n in nets}
    lines += ["Median epoch time over all rows (55k training images; two or three trainings shared the 2 cores): "
              + ", ".join(
        f"{n} {sorted(s)[len(s) // 2]:.1f} s" for n, s in secs.items() if s) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train every (network, setting) not yet in runs.csv")
    r.add_argument("--networks", nargs="*", choices=NETWORKS, default=list(NETWORKS))
    r.add_argument("--settings", nargs="*", choices=list(SETTINGS), default=list(SETTINGS))
    r.add_argument("--data-dir", default=None)
    sub.add_parser("table", help="write small_recipe/table.md")
    args = ap.parse_args(argv)
    if args.cmd == "table":
        (HERE / "table.md").write_text(table(), encoding="utf-8")
        print(table())
        return
    import budgetnas

    splits = budgetnas.load_splits(BUDGET, seed=1, data_dir=args.data_dir)
    for setting in args.settings:
        for net in args.networks:
            row = jobs_mod.run_once(HERE / "claims", CSV, FIELDS, f"{net}--{setting}".replace(" ", "_"),
                                    lambda: run_one(net, setting, splits),
                                    done=lambda rows: any(r["network"] == net and r["setting"] == setting
                                                          for r in rows))
            if row is not None:
                print(f"{net} {setting}: {row['val_accuracy'] or row['status']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
