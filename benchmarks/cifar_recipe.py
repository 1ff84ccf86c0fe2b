"""CIFAR-10 recipe screening that fits a CPU and goes on across sittings.

    python benchmarks/cifar_recipe.py run --epochs 15 &          # twice side by side: each takes the next free job
    python benchmarks/cifar_recipe.py run --epochs 50 --settings base "ema 0.999"   # confirm the best two
    python benchmarks/cifar_recipe.py table                       # -> benchmarks/cifar_recipe/table.md

The committed `cifar10-sep-100k` network (`spaces/cifar10_residual_99120.toml`, 99,120 params) trained with the
budget's recipe changed one thing at a time, one seed (weights 0, or ``--seed``; the run's validation split, seed
0), scored on the 5k validation split after the last epoch; the test set is not loaded. A shorter run compresses
the whole schedule (the one-cycle spans the epochs it is given). Every training checkpoints each epoch under the ignored
``cifar_recipe/work/``: a process stopped midway (the end of a sitting, a kill) continues from its last finished
epoch when any ``run`` takes the job again. A finished job is a row of ``cifar_recipe/runs.csv``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import jobs as jobs_mod  # beside this script: CSV rows and job claims

HERE = Path(__file__).resolve().parent / "cifar_recipe"
ROOT = HERE.parent.parent
CSV = HERE / "runs.csv"
RETRAIN = HERE / "retrain.md"
FIELDS = ["setting", "epochs", "val_accuracy", "seconds", "epoch_seconds", "status", "hardware", "seed"]
HARDWARE = f"{os.cpu_count()}-core CPU"
BUDGET = "cifar10-sep-100k"
NETWORK = ROOT / "spaces" / "cifar10_residual_99120.toml"
# setting -> changes to the budget's recipe (one-cycle, batch 128, label smoothing 0.1, crops and flips), each
# written out from one of two bases: the SGD-Nesterov recipe the screen began from, and AdamW at peak 0.01, the
# budget's recipe since its 3-seed retrain won on validation
SGD = {"optimizer": "sgd", "lr": 0.1, "weight_decay": 0.0005}
ADAMW = {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.05}
SETTINGS = {
    "base": SGD,
    "ema 0.999": {**SGD, "ema": 0.999},
    "cutout": {**SGD, "augment": "crop-flip-cutout"},
    "label smoothing 0": {**SGD, "label_smoothing": 0.0},
    "sgd peak 0.05": {**SGD, "lr": 0.05},
    "sgd peak 0.2": {**SGD, "lr": 0.2},
    "adamw 0.01": ADAMW,
    "adamw 0.02": {**ADAMW, "lr": 0.02},
    "adamw 0.005": {**ADAMW, "lr": 0.005},  # the other side of the chosen peak
    "mixup 0.2": {**SGD, "mixup": 0.2},
    "mixup 0.5": {**SGD, "mixup": 0.5},
    "rotate-jitter": {**SGD, "augment": "crop-flip-rotate-jitter"},
    "adamw 0.01 + rotate-jitter": {**ADAMW, "augment": "crop-flip-rotate-jitter"},
    "adamw 0.01 + mixup 0.2": {**ADAMW, "mixup": 0.2},
    "adamw 0.01 + ema 0.999": {**ADAMW, "ema": 0.999},
}
# setting -> the network it trains under the AdamW recipe, where it is not the committed one: files beside this
# script (the space features, 7x7 depthwise kernels and one downsample, with the GAP head that pays for the
# kernels; the first three are points of cifar10_separable_residual)
NETWORKS = {
    "adamw 0.01 + gap head": HERE / "gap_89040_space.toml",
    "adamw 0.01 + gap head, 7x7 stage 2": HERE / "k7_98640_space.toml",
    "adamw 0.01 + gap head, 7x7 stage 2, one downsample": HERE / "onek7_98640_space.toml",
    "adamw 0.01 + gap head, stage 3 176 wide": HERE / "w176_96688_space.toml",
    "adamw 0.01 + residual search pick": HERE / "pick_90720_space.toml",  # #40 item 3's short search, its pick
}
SETTINGS.update({setting: ADAMW for setting in NETWORKS})


def _key(setting: str, epochs: int, seed: int = 0) -> str:
    return (f"{setting}--{epochs}" + (f"--seed{seed}" if seed else "")).replace(" ", "_")


def _seed(row: dict) -> int:
    return int(row.get("seed") or 0)


def run_one(setting: str, epochs: int, splits, seed: int = 0) -> dict:
    import budgetnas

    row = {"setting": setting, "epochs": epochs, "hardware": HARDWARE, "seed": seed}
    t0 = time.monotonic()
    try:
        t = budgetnas.train_candidate({}, budget=BUDGET, space=NETWORKS.get(setting, NETWORK), epochs=epochs, seed=seed,
                                      recipe=SETTINGS[setting], splits=splits, test=False,
                                      checkpoint_dir=HERE / "work" / _key(setting, epochs, seed))
    except budgetnas.TrialFailed as exc:
        return {**row, "status": f"diverged ({exc})", "seconds": f"{time.monotonic() - t0:.0f}"}
    return {**row, "val_accuracy": f"{100 * t.val_accuracy:.2f}", "seconds": f"{t.seconds:.0f}",
            "epoch_seconds": f"{statistics.median(t.history.epoch_seconds):.1f}", "status": "ok"}


def table() -> str:
    every = jobs_mod.read_rows(CSV)
    rows = [r for r in every if _seed(r) == 0]  # the screen: weights seed 0; other seeds are listed under it
    lengths = sorted({int(r["epochs"]) for r in rows})
    others = sorted({r["hardware"] for r in rows if r["hardware"] != HARDWARE})

    def elsewhere(row: dict) -> str:  # a mark for a row measured on other hardware, explained under the table
        return "" if row["hardware"] == HARDWARE else " " + "*" * (1 + others.index(row["hardware"]))

    lines = ["# CIFAR-10 recipe screening on the CPU", "",
             f"`python benchmarks/cifar_recipe.py run --epochs 15` (two side by side), the best two again with "
             f"`--epochs 50`, then `table`; {HARDWARE}, one thread per training. The committed 99,120-param network, "
             "one change at a time from the `cifar10-sep-100k` recipe as it was (SGD-Nesterov one-cycle, peak 0.1, weight "
             "decay 0.0005; `base`) or, in the rows named `adamw 0.01 + …`, from AdamW one-cycle at peak 0.01 (weight decay "
             "0.05; `adamw 0.01`, the budget's recipe since the 3-seed retrain below), weights seed 0; the rows "
             "naming a `gap head` train that network changed (`cifar_recipe/*_space.toml`: the shrink head's 8×8 "
             "depthwise kernel swapped for GAP + a 1×1 separable conv, 89,040 params; with it, 7×7 depthwise kernels "
             "in the residual 16×16 stage, 98,640; and with that, the second pool dropped, 98,640; or instead a stage 3 "
             "of 176 channels, not 160, 96,688; `residual search pick`: the pick of a short search of "
             "`cifar10_separable_residual` under this recipe, 90,720 params, described in its file); "
             "validation accuracy (5k split) "
             "after the last epoch, never the test set. One seed: differences under ≈ 0.3 points are noise. "
             "`ema 0.999` (SGD) was measured while the averaged weights were scored with the live weights' "
             "batch-norm statistics; `adamw 0.01 + ema 0.999` scored 80.74% that way, the row is its re-run "
             "with statistics measured for the average (`search/trainer.py`). It and the `gap head` rows ran three "
             "at a time on the two cores at 15 epochs (two at 50): their seconds per epoch (the median over both "
             "lengths) are not comparable with the others'. The `residual search pick` (28.3 M MACs, the committed "
             "network 16.6 M) ran beside one other training at 15 epochs and alone, with two threads, at 50 (its "
             "seconds per epoch are the median of the two).", "",
             "| setting | " + " | ".join(f"{e} epochs" for e in lengths) + " | seconds per epoch |",
             "| --- | " + " | ".join("---:" for _ in lengths) + " | ---: |"]
    for setting in SETTINGS:
        got = {e: [r for r in rows if r["setting"] == setting and int(r["epochs"]) == e] for e in lengths}
        if not any(got.values()):
            continue
        cells = [("" if not g else g[0]["val_accuracy"] + "%" + elsewhere(g[0]) if g[0]["status"] == "ok"
                  else "diverged") for g in got.values()]
        secs = [float(r["epoch_seconds"]) for g in got.values() for r in g
                if r.get("epoch_seconds") and r["hardware"] == HARDWARE]
        lines.append(f"| {setting} | " + " | ".join(cells) + (f" | {statistics.median(secs):.0f} |" if secs else " | |"))
    if others:
        lines += [""] + ["\\*" * (1 + i) + f" {hw}." for i, hw in enumerate(others)]
    if len(lengths) > 1:
        short, long = lengths[0], lengths[-1]
        both = [s for s in SETTINGS if all(any(r["setting"] == s and int(r["epochs"]) == e and r["status"] == "ok"
                                               for r in rows) for e in (short, long))]
        if len(both) > 1:
            acc = {(r["setting"], int(r["epochs"])): float(r["val_accuracy"]) for r in rows if r["status"] == "ok"}
            order = lambda e: sorted(both, key=lambda s: -acc[(s, e)])  # noqa: E731
            lines += ["", f"Order at {short} epochs: {', '.join(order(short))}; at {long}: {', '.join(order(long))}."]
    more = [r for r in every if _seed(r) != 0 and r["status"] == "ok"]
    if more:
        lines += ["", "Other weights seeds, same split (`run --seed N`; the 3-seed comparisons below cite them): "
                  + "; ".join(f"{r['setting']}, {r['epochs']} epochs, seed {r['seed']}: {r['val_accuracy']}%"
                              + elsewhere(r) for r in more) + "."]
    if RETRAIN.exists():  # the 3-seed retrain of the winner, written by hand beside the rows (not a row of runs.csv)
        lines += ["", RETRAIN.read_text(encoding="utf-8").rstrip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train every setting not yet in runs.csv at this length")
    r.add_argument("--epochs", type=int, default=15)
    r.add_argument("--settings", nargs="*", choices=list(SETTINGS), default=list(SETTINGS))
    r.add_argument("--seed", type=int, default=0, help="weights seed (the split stays seed 0's)")
    r.add_argument("--data-dir", default=None)
    sub.add_parser("table", help="write cifar_recipe/table.md")
    args = ap.parse_args(argv)
    if args.cmd == "table":
        (HERE / "table.md").write_text(table(), encoding="utf-8")
        print(table())
        return
    import budgetnas

    HERE.mkdir(exist_ok=True)
    splits = budgetnas.load_splits(BUDGET, seed=0, data_dir=args.data_dir)
    splits = budgetnas.Splits(splits.train, splits.val, None)  # the test set stays out of reach
    for setting in args.settings:
        row = jobs_mod.run_once(HERE / "claims", CSV, FIELDS, _key(setting, args.epochs, args.seed),
                                lambda: run_one(setting, args.epochs, splits, args.seed),
                                done=lambda rows: any(r["setting"] == setting and int(r["epochs"]) == args.epochs
                                                      and _seed(r) == args.seed for r in rows))
        if row is not None:
            print(f"{setting} {args.epochs} epochs, seed {args.seed}: {row.get('val_accuracy') or row['status']}",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
