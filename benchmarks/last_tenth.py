"""The last tenth of a point on MNIST: distillation and a final fit on all training images, measured without
the test set.

    python benchmarks/last_tenth.py run --settings ... &   # twice side by side: each takes the next free job
    python benchmarks/last_tenth.py table                  # -> benchmarks/last_tenth/table.md (from runs.csv)

The data: MNIST's 60k training images split as every ``mnist-15k`` run with seed 1 splits them (55k train,
5k validation), and a second 5k split (the *holdout*, seed 101) carved out of those 55k. The test set is not
loaded.

- **Final fit** (``fit 50k`` / ``fit 55k``): the network trains on the 50k left after the holdout, or on those
  50k plus the validation split (55k: +10%, as a final fit on all 60k images adds 9% to 55k), and both are
  scored on the holdout, which neither saw.
- **Distillation** (``no teacher`` / ``teacher …``): the network trains on the 55k training split as a run
  does, scored on the 5k validation split; a teacher (``spaces/teachers/``) trains once on the same 55k
  images and is cached (``budgetnas.distill``).

Every training: the ``mnist-15k`` budget's recipe and 15 epochs, test never looked at. Networks: ids 0 and 1
of ``benchmarks/ranking/networks.csv`` (the 7,210- and 7,726-param ``mnist-8k`` winners) and the
``reports/mnist-15k`` finalist (14,632 params). Rows append to ``last_tenth/runs.csv``; ``run`` skips rows it
has.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

import jobs as jobs_mod  # beside this script: CSV rows and job claims

HERE = Path(__file__).resolve().parent / "last_tenth"
ROOT = HERE.parent.parent
CSV = HERE / "runs.csv"
FIELDS = ["network", "params", "seed", "setting", "train_images", "scored_on", "accuracy", "seconds",
          "epoch_seconds", "teacher_params", "teacher_val_accuracy", "teacher_minutes", "status", "hardware"]
HARDWARE = f"{os.cpu_count()}-core CPU"
BUDGET = "mnist-15k"
SPLIT_SEED, HOLDOUT_SEED = 1, 101
NETWORKS = ("ranking-0", "ranking-1", "mnist-15k")
# setting -> recipe changes (distillation) or the training set (final fit)
FIT = {"fit 50k": "50k", "fit 55k": "55k"}
DISTILL = {
    "no teacher": {},
    "teacher 30k a0.5 T4": {"teacher": "teachers/mnist_30k", "distill_alpha": 0.5, "distill_temperature": 4.0},
    "teacher 30k a0.9 T2": {"teacher": "teachers/mnist_30k", "distill_alpha": 0.9, "distill_temperature": 2.0},
    "teacher 100k a0.5 T4": {"teacher": "teachers/mnist_100k", "distill_alpha": 0.5, "distill_temperature": 4.0},
    "teacher 100k a0.9 T2": {"teacher": "teachers/mnist_100k", "distill_alpha": 0.9, "distill_temperature": 2.0},
    "teacher 100k a0.5 T4 clean": {"teacher": "teachers/mnist_100k", "distill_alpha": 0.5,
                                   "distill_temperature": 4.0, "distill_targets": "clean"},
}
SETTINGS = [*FIT, *DISTILL]


def network(name: str):
    """(space, values) of one of the networks."""
    from budgetnas import load_space

    if name.startswith("ranking-"):
        with (ROOT / "benchmarks" / "ranking" / "networks.csv").open(newline="", encoding="utf-8") as f:
            row = next(r for r in csv.DictReader(f) if r["id"] == name.removeprefix("ranking-"))
        return load_space(ROOT / "spaces" / "mnist_tiny.toml"), json.loads(row["values"])
    fin = json.loads((ROOT / "reports" / "mnist-15k" / "finalists.json").read_text())["finalists"][0]
    return load_space(ROOT / "spaces" / "mnist_tiny.toml"), fin["values"]


def data(data_dir: str | None):
    """(train 55k, validation 5k, train 50k, holdout 5k, train 50k + validation): the holdout is carved out of
    the 55k as the validation split is carved out of the 60k (stratified, seed ``HOLDOUT_SEED``)."""
    import budgetnas

    s = budgetnas.load_splits(BUDGET, seed=SPLIT_SEED, data_dir=data_dir)
    train50, holdout = s.train.split(5000, HOLDOUT_SEED)
    return s.train, s.val, train50, holdout, train50.join(s.val)


def run_one(net: str, seed: int, setting: str, arrays) -> dict:
    import budgetnas

    train55, val, train50, holdout, train50_val = arrays
    space, values = network(net)
    row = {"network": net, "seed": seed, "setting": setting, "hardware": HARDWARE}
    if setting in FIT:
        train = train50 if FIT[setting] == "50k" else train50_val
        splits, recipe, scored = budgetnas.Splits(train, holdout, None), {}, "holdout"
    else:
        splits, recipe, scored = budgetnas.Splits(train55, val, None), DISTILL[setting], "validation"
    t0 = time.monotonic()
    try:
        t = budgetnas.train_candidate(values, budget=BUDGET, space=space, seed=seed, recipe=recipe, splits=splits,
                                      split_seed=SPLIT_SEED, test=False,
                                      checkpoint_dir=HERE / "work" / f"{net}--{seed}--{setting}".replace(" ", "_"))
    except budgetnas.TrialFailed as exc:
        return {**row, "status": f"diverged ({exc})", "seconds": f"{time.monotonic() - t0:.0f}"}
    teacher = t.history.teacher
    return {**row, "params": t.params, "train_images": t.train_images, "scored_on": scored,
            "accuracy": f"{100 * t.val_accuracy:.2f}", "seconds": f"{t.seconds:.0f}",
            "epoch_seconds": f"{statistics.median(t.history.epoch_seconds):.1f}",
            "teacher_params": teacher["params"] if teacher else "",
            "teacher_val_accuracy": f"{100 * teacher['val_accuracy']:.2f}" if teacher else "",
            "teacher_minutes": f"{teacher['minutes']:.1f}" if teacher else "", "status": "ok"}


def _cell(rows: list[dict]) -> str:
    ok = [float(r["accuracy"]) for r in rows if r["status"] == "ok"]
    if not rows:
        return ""
    if not ok:
        return "diverged"
    return f"{statistics.fmean(ok):.2f}%" + (f" ({len(ok)} seeds)" if len(ok) > 1 else "")


def _delta(rows: list[dict], setting: str, base: str) -> str:
    """Mean difference to ``base`` over the (network, seed) pairs that have both, in points."""
    acc = {(r["network"], r["seed"], r["setting"]): float(r["accuracy"]) for r in rows if r["status"] == "ok"}
    diffs = [acc[(n, s, setting)] - acc[(n, s, base)] for (n, s, st) in acc if st == setting and (n, s, base) in acc]
    if setting == base or not diffs:
        return "—"
    signed = jobs_mod.signed
    return f"{signed(statistics.fmean(diffs))} ({len(diffs)}: {', '.join(signed(d) for d in diffs)})"


def table() -> str:
    rows = jobs_mod.read_rows(CSV)
    nets = [n for n in NETWORKS if any(r["network"] == n for r in rows)]
    params = {n: next((r["params"] for r in rows if r["network"] == n and r["params"]), "?") for n in nets}
    head = ("| setting | " + " | ".join(f"{n} ({int(params[n]):,} params)" for n in nets)
            + " | Δ against the first row, mean (pairs) | seconds per epoch |")
    rule = "| --- | " + " | ".join("---:" for _ in nets) + " | ---: | ---: |"
    lines = ["# The last tenth: final fit and distillation, measured without the test set", "",
             f"`python benchmarks/last_tenth.py run` (two processes side by side), then `table`; {HARDWARE}, one "
             "thread per training, the `mnist-15k` recipe, 15 epochs. Accuracy after the last epoch; the noise "
             "floor of one seed on a 5k split is ≈ 0.1-0.2 points. Seconds per epoch: median over the row's "
             "trainings, with two to four trainings sharing the two cores (compare within a table only).", ""]
    for title, settings, note in (
            ("Final fit: more training images, scored on a 5k holdout that no training saw", FIT,
             "`fit 55k` adds the 5k validation split to the 50k (+10%)."),
            ("Distillation: trained on the 55k training split, scored on the 5k validation split", DISTILL,
             "`clean`: the teacher's soft targets computed once on the un-augmented images; otherwise on "
             "each augmented batch.")):
        lines += [f"## {title}", "", note, "", head, rule]
        first = next(iter(settings))
        for setting in settings:
            got = {n: [r for r in rows if r["network"] == n and r["setting"] == setting] for n in nets}
            secs = [float(r["epoch_seconds"]) for g in got.values() for r in g if r.get("epoch_seconds")]
            if any(got.values()):
                lines.append(f"| {setting} | " + " | ".join(_cell(got[n]) for n in nets)
                             + f" | {_delta(rows, setting, first)} |"
                             + (f" {statistics.median(secs):.1f} |" if secs else " |"))
        lines.append("")
    teachers = {}
    for r in rows:
        if r.get("teacher_params"):
            teachers.setdefault(r["setting"].split(" a")[0], r)
    if teachers:
        lines += ["Teachers (trained once on the 55k training split, same recipe and epochs; validation accuracy):", ""]
        lines += [f"- {k}: {int(r['teacher_params']):,} params, {r['teacher_val_accuracy']}% validation, "
                  f"{r['teacher_minutes']} min" for k, r in teachers.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train every (network, seed, setting) not yet in runs.csv")
    r.add_argument("--networks", nargs="*", choices=NETWORKS, default=list(NETWORKS))
    r.add_argument("--settings", nargs="*", choices=SETTINGS, default=SETTINGS)
    r.add_argument("--seeds", nargs="*", type=int, default=[1])
    r.add_argument("--data-dir", default=None)
    sub.add_parser("table", help="write last_tenth/table.md")
    args = ap.parse_args(argv)
    if args.cmd == "table":
        (HERE / "table.md").write_text(table(), encoding="utf-8")
        print(table())
        return
    HERE.mkdir(exist_ok=True)
    arrays = data(args.data_dir)
    for seed in args.seeds:
        for setting in args.settings:
            for net in args.networks:
                row = jobs_mod.run_once(HERE / "claims", CSV, FIELDS, f"{net}--{seed}--{setting}".replace(" ", "_"),
                                        lambda: run_one(net, seed, setting, arrays),
                                        done=lambda rows: any(r["network"] == net and r["setting"] == setting
                                                              and r["seed"] == str(seed) for r in rows))
                if row is not None:
                    print(f"{net} seed {seed} {setting}: {row.get('accuracy') or row['status']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
