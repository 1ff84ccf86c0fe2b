"""The MNIST training recipe, chosen on validation: one change at a time from the ``mnist-15k`` recipe.

    python benchmarks/mnist_recipe.py run [--stop-after-s S]   # train what is missing; resumable, run two at once
    python benchmarks/mnist_recipe.py status                   # jobs done / left
    python benchmarks/mnist_recipe.py table                    # -> benchmarks/mnist_recipe/table.md

Every setting is the ``[mnist-15k.train]`` recipe with one field changed (``SETTINGS``), trained at full
fidelity (all 55k training images left after the seed-0 5k validation split, the budget's 15 epochs unless
the setting changes them) on fixed networks of the ranking benchmark (``NETWORKS``, ids of
``ranking/networks.csv``), weights seed 0; ``SECOND_SEED`` settings again with seed 1. One row per job in
``mnist_recipe/results.csv``: final validation accuracy (which the table compares), test accuracy
(recorded, never used to choose), curves and wall time. Jobs are claimed with lock files like the ranking
benchmark's, and a killed job resumes from its last finished epoch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
import ranking  # noqa: E402  (benchmarks/ranking.py, beside this script: its sample, claims and CSV appends)

OUT = HERE / "mnist_recipe"
RESULTS = OUT / "results.csv"
WORK = OUT / "work"  # claims and epoch checkpoints; not committed
BUDGET = "mnist-15k"
NETWORKS = (1, 2)  # ranking/networks.csv: 7,726 params (BN before, shrink head) and 7,032 (BN after, GAP head)
# (label, recipe fields changed, epochs or None for the budget's): the order is the order of importance,
# so a benchmark stopped partway has the questions that matter most answered.
SETTINGS = [
    ("base", {}, None),
    ("lr=0.1", {"lr": 0.1}, None),
    ("epochs=19", {}, 19),
    ("ema=0.999", {"ema": 0.999}, None),
    ("label_smoothing=0.1", {"label_smoothing": 0.1}, None),
    ("label_smoothing=0", {"label_smoothing": 0.0}, None),
    ("augment=rotate", {"augment": "rotate"}, None),
    ("lr=0.025", {"lr": 0.025}, None),
    ("adamw lr=0.003", {"optimizer": "adamw", "lr": 0.003, "weight_decay": 0.0001}, None),
    ("batch_size=64", {"batch_size": 64}, None),
    ("augment=none", {"augment": "none"}, None),
]
SECOND_SEED = ("base", "lr=0.1", "ema=0.999")  # tied with base after seed 0 (Δ within ±0.01): seed 1 too
FIELDS = ["setting", "changes", "network", "seed", "architecture", "params", "epochs", "final_val_accuracy",
          "test_accuracy", "val_accuracy_curve", "loss_curve", "epoch_seconds", "wall_seconds", "threads",
          "host", "finished_utc"]


def jobs() -> list[tuple[str, int, int]]:
    out = [(label, net, 0) for label, _, _ in SETTINGS for net in NETWORKS]
    return out + [(label, net, 1) for label in SECOND_SEED for net in NETWORKS]


def train_job(label: str, net_id: int, seed: int, data_dir: str | None) -> dict:
    import budgetnas

    changes, epochs = next((c, e) for lab, c, e in SETTINGS if lab == label)
    budget = budgetnas.load_budget(BUDGET, budgets_file=ranking.ROOT / "budgets.toml")
    net = next(n for n in ranking.read_csv(ranking.NETWORKS) if int(n["id"]) == net_id)
    epochs = epochs or budget.epochs
    key = f"{label.replace(' ', '_')}_net{net_id:02d}_seed{seed}"
    t = budgetnas.train_candidate(
        json.loads(net["values"]), budget=budget, space=ranking.ROOT / budget.space, epochs=epochs, seed=seed,
        recipe=changes, data_dir=data_dir, checkpoint_dir=WORK / f"{key}.resume",
        on_epoch=lambda e, logs: print(f"{time.strftime('%H:%M:%S')} {key} epoch {e}/{epochs} "
                                       f"val {logs.get('val_accuracy', 0):.4f} ({logs['seconds']:.0f} s)", flush=True))
    if not t.within_budget or t.architecture != net["architecture"]:
        raise SystemExit(f"network {net_id} no longer builds as recorded ({t.architecture})")
    return {"setting": label, "changes": json.dumps(changes, sort_keys=True), "network": net_id, "seed": seed,
            "architecture": net["architecture"], "params": t.params, "epochs": epochs,
            **ranking.training_fields(t.history, t.test_accuracy, t.seconds)}


def run(data_dir: str | None, stop_after_s: float | None) -> None:
    ranking.WORK = WORK  # claims live beside this benchmark's checkpoints
    t0 = time.monotonic()
    for label, net, seed in jobs():
        if stop_after_s is not None and time.monotonic() - t0 > stop_after_s:
            break
        done = {(r["setting"], int(r["network"]), int(r["seed"])) for r in ranking.read_csv(RESULTS)}
        key = f"{label.replace(' ', '_')}_net{net:02d}_seed{seed}"
        if (label, net, seed) in done or not ranking.claim(key):
            continue
        print(f"{time.strftime('%H:%M:%S')} start {key}", flush=True)
        row = train_job(label, net, seed, data_dir)
        ranking.append_row(RESULTS, FIELDS, row)
        print(f"{time.strftime('%H:%M:%S')} done {key}: val {row['final_val_accuracy']} ({row['wall_seconds']} s)",
              flush=True)
        (WORK / f"{key}.claim").unlink(missing_ok=True)


def table() -> str:
    """Mean final validation accuracy per setting and its paired change from ``base`` (same network, seed)."""
    rows = ranking.read_csv(RESULTS)
    acc = {(r["setting"], int(r["network"]), int(r["seed"])): 100 * float(r["final_val_accuracy"]) for r in rows}
    test = {(r["setting"], int(r["network"]), int(r["seed"])): 100 * float(r["test_accuracy"]) for r in rows}
    mins = {(r["setting"], int(r["network"]), int(r["seed"])): float(r["wall_seconds"]) / 60 for r in rows}
    lines = ["# MNIST recipe, one change at a time (validation decides)", "",
             f"`[{BUDGET}.train]` with one field changed; networks {', '.join(map(str, NETWORKS))} of "
             "`ranking/networks.csv`, all 55k training images, 5k validation split (seed 0). 2-core CPU, TensorFlow, "
             "one thread per process, two processes at once. `python benchmarks/mnist_recipe.py run` (twice, side by "
             "side), then `python benchmarks/mnist_recipe.py table`.", "",
             "Δ val: paired change from `base` on the same network and seed (mean over pairs). Noise floor: ≈ 0.1 "
             "point on the 5k validation split, ≈ 0.08 between seeds; a Δ below it is no result. Test is recorded "
             "only, never used to choose. Minutes are wall time per run and include spells when the test suite ran "
             "beside the two processes: a cost indication, not a speed measurement. `ema=0.999` was measured while "
             "the averaged weights were scored with the live weights' batch-norm statistics (before they were "
             "measured for the average, `search/trainer.py`).", "",
             "| setting | runs | " + " | ".join(f"val net {n}" for n in NETWORKS) + " | mean val | Δ val vs base | "
             "mean test | min per run |",
             "| --- | ---: | " + " | ".join("---:" for _ in NETWORKS) + " | ---: | ---: | ---: | ---: |"]
    for label, _, _ in SETTINGS:
        keys = [k for k in acc if k[0] == label]
        if not keys:
            continue
        per_net = []
        for n in NETWORKS:
            v = [acc[k] for k in keys if k[1] == n]
            per_net.append(" / ".join(f"{x:.2f}" for x in v) if v else "–")
        pairs = [acc[k] - acc[("base", k[1], k[2])] for k in keys if ("base", k[1], k[2]) in acc]
        delta = f"{statistics.mean(pairs):+.2f}" if pairs and label != "base" else ""
        lines.append(f"| {label} | {len(keys)} | " + " | ".join(per_net)
                     + f" | {statistics.mean(acc[k] for k in keys):.2f} | {delta} | "
                     f"{statistics.mean(test[k] for k in keys):.2f} | {statistics.mean(mins[k] for k in keys):.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train the jobs not yet in results.csv")
    r.add_argument("--data-dir", default=None)
    r.add_argument("--stop-after-s", type=float, default=None, help="start no new job after this many seconds")
    sub.add_parser("status", help="jobs done / left")
    sub.add_parser("table", help="write mnist_recipe/table.md")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        run(args.data_dir, args.stop_after_s)
    elif args.cmd == "status":
        done = {(r["setting"], int(r["network"]), int(r["seed"])) for r in ranking.read_csv(RESULTS)}
        todo = jobs()
        print(f"{sum(j in done for j in todo)} of {len(todo)} jobs done")
    else:
        OUT.mkdir(exist_ok=True)
        (OUT / "table.md").write_text(table(), encoding="utf-8")
        print((OUT / "table.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
