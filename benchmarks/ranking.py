"""Ground truth for the search: a fixed sample of mnist-8k networks, each trained at full fidelity.

    python benchmarks/ranking.py networks            # (re)write networks.csv: the fixed sample
    python benchmarks/ranking.py run [--stop-after-s S]   # train what is missing; resumable
    python benchmarks/ranking.py status              # what is done

``networks.csv`` is the committed, seeded sample: the committed mnist-8k winners first, then
uniform samples of ``spaces/mnist_tiny.toml`` sent through the budget gate exactly as a search sends
them (over-budget samples repaired), kept when their network is new (by architecture string).
``jobs()`` lists what to train: every network with seed 0, and a second seed (1) for a few of them to
measure how much of a ranking is seed noise. Each job trains with the budget's recipe for the
budget's epochs on all training images (the 55k left after the 5k validation split) and appends one
row to ``results.csv``: per-epoch validation accuracy and training loss, final validation and test
accuracy, params, MACs and wall time. Test accuracy is recorded for completeness only; nothing is
chosen on it.

Several processes may run at once (one TensorFlow thread each is fastest on a 2-core CPU): a job is
claimed with an exclusive lock file, a finished job is a row, and a killed job continues from its
last finished epoch (the trainer's epoch checkpoint under ``work/``) when any process picks it up.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import random
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent / "ranking"  # the sample, its results and the work folder
ROOT = HERE.parents[1]
NETWORKS = HERE / "networks.csv"
RESULTS = HERE / "results.csv"
WORK = HERE / "work"  # claims and epoch checkpoints; not committed
BUDGET = "mnist-8k"
SAMPLE_SEED = 2026
N_RANDOM = 24
SECOND_SEED_EVERY = 6  # a second seed for networks 0, 6, 12, 18 (fixed before any training)

# The mnist-8k winners the tool found before this benchmark (reports/mnist-8k/HISTORY.md): their values
# as their finalists.json recorded them; the first is the canonical reports/mnist-8k result.
WINNERS = [
    ("7,210-param winner (reports/mnist-8k)", {
        "blocks[0].channels": 10, "blocks[1].channels": 20, "blocks[2].channels": 12, "blocks[2].repeat": 0,
        "blocks[4].channels": 20, "blocks[4].kind": "separable", "blocks[4].repeat": 3, "blocks[5].channels": 16,
        "blocks[5].dilation": 2, "blocks[5].padding": "valid", "blocks[5].repeat": 1,
        "defaults.batchnorm": "before", "defaults.dropout": 0.05, "head.kind": "gap"}),
    ("7,726-param earlier winner", {
        "blocks[0].channels": 12, "blocks[1].channels": 12, "blocks[2].channels": 12, "blocks[2].repeat": 1,
        "blocks[4].channels": 12, "blocks[4].kind": "conv", "blocks[4].repeat": 2, "blocks[5].channels": 12,
        "blocks[5].dilation": 2, "blocks[5].padding": "valid", "blocks[5].repeat": 1,
        "defaults.batchnorm": "before", "defaults.dropout": 0.0, "head.kind": "shrink"}),
    ("7,032-param earlier winner", {
        "blocks[0].channels": 8, "blocks[1].channels": 12, "blocks[2].channels": 8, "blocks[2].repeat": 1,
        "blocks[4].channels": 12, "blocks[4].kind": "conv", "blocks[4].repeat": 3, "blocks[5].channels": 18,
        "blocks[5].dilation": 1, "blocks[5].padding": "same", "blocks[5].repeat": 1,
        "defaults.batchnorm": "after", "defaults.dropout": 0.0, "head.kind": "gap"}),
    ("6,826-param earlier winner", {
        "blocks[0].channels": 10, "blocks[1].channels": 12, "blocks[2].channels": 14, "blocks[2].repeat": 1,
        "blocks[4].channels": 12, "blocks[4].kind": "separable", "blocks[4].repeat": 3, "blocks[5].channels": 16,
        "blocks[5].dilation": 1, "blocks[5].padding": "valid", "blocks[5].repeat": 0,
        "defaults.batchnorm": "after", "defaults.dropout": 0.0, "head.kind": "shrink"}),
]
NET_FIELDS = ["id", "source", "architecture", "params", "macs", "values"]
RESULT_FIELDS = ["id", "seed", "architecture", "params", "macs", "epochs", "train_images", "val_images",
                 "final_val_accuracy", "test_accuracy", "val_accuracy_curve", "loss_curve", "epoch_seconds",
                 "wall_seconds", "threads", "host", "finished_utc"]


def budget_and_space():
    """The benchmark's budget (from the repository's ``budgets.toml``) and its space."""
    import budgetnas

    budget = budgetnas.load_budget(BUDGET, budgets_file=ROOT / "budgets.toml")
    return budget, budgetnas.load_space(ROOT / budget.space)


def sample_networks() -> list[dict]:
    """The fixed sample: committed winners, then seeded random gate-passing networks (distinct)."""
    import budgetnas

    budget, space = budget_and_space()
    rows, seen = [], set()

    def add(source: str, values: dict) -> None:
        verdict = budgetnas.judge(values, budget=budget, space=space, repair=True)
        if verdict.ok and verdict.architecture not in seen:
            seen.add(verdict.architecture)
            rows.append({"id": len(rows), "source": source, "architecture": verdict.architecture,
                         "params": verdict.total_params, "macs": verdict.macs,
                         "values": json.dumps(dict(verdict.values), sort_keys=True)})

    for source, values in WINNERS:
        add(source, values)
    rng = random.Random(SAMPLE_SEED)
    while len(rows) < len(WINNERS) + N_RANDOM:
        # every parameter drawn uniformly, in the space's order (the gate ignores inactive ones)
        add(f"random (seed {SAMPLE_SEED})", {p.name: rng.choice(p.domain.options) for p in space.params})
    return rows


def read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def jobs(networks: list[dict]) -> list[tuple[int, int]]:
    """(network id, seed) in training order: second seeds interleaved early, so a benchmark stopped
    partway already says how much of its ranking is seed noise."""
    ids = [int(n["id"]) for n in networks]
    first = [(i, 0) for i in ids]
    second = [(i, 1) for i in ids[::SECOND_SEED_EVERY]]
    return first[:8] + second[:2] + first[8:16] + second[2:] + first[16:]


def claim(key: str) -> bool:
    """Take the job's lock file; a lock left by a dead process on this host is taken over."""
    WORK.mkdir(parents=True, exist_ok=True)
    lock = WORK / f"{key}.claim"
    me = f"{socket.gethostname()} {os.getpid()}"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        host, _, pid = lock.read_text().partition(" ")
        alive = host == socket.gethostname() and pid.isdigit() and Path(f"/proc/{pid}").exists()
        if alive and int(pid) != os.getpid():
            return False
        lock.write_text(me)
        return True
    os.write(fd, me.encode())
    os.close(fd)
    return True


def append_row(path: Path, fields: list[str], row: dict) -> None:
    """Append one row to a CSV, with the header when the file is new; several processes may append at once."""
    with path.open("a", newline="", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        w = csv.DictWriter(f, fieldnames=fields)
        if f.tell() == 0:
            w.writeheader()
        w.writerow(row)


def train_one(net: dict, seed: int, data_dir: str | None, checkpoint: Path | None = None) -> dict:
    """Train one network at full fidelity (:func:`budgetnas.train_candidate`); its results row.
    ``checkpoint``: the epoch checkpoint folder."""
    import budgetnas

    budget, space = budget_and_space()
    key = f"net{int(net['id']):02d}_seed{seed}" if str(net["id"]).isdigit() else f"{net['id']}_seed{seed}"
    t = budgetnas.train_candidate(
        json.loads(net["values"]), budget=budget, space=space, seed=seed, data_dir=data_dir,
        checkpoint_dir=checkpoint or WORK / f"{key}.resume",
        on_epoch=lambda e, logs: print(f"{time.strftime('%H:%M:%S')} {key} epoch {e}/{budget.epochs} "
                                       f"val {logs.get('val_accuracy', 0):.4f} ({logs['seconds']:.0f} s)", flush=True))
    if not t.within_budget or t.architecture != net["architecture"]:
        raise SystemExit(f"network {net['id']} no longer builds as recorded ({t.architecture})")
    return {"id": net["id"], "seed": seed, "architecture": net["architecture"], "params": t.params,
            "macs": t.macs, "epochs": t.epochs, "train_images": t.train_images, "val_images": budget.validation,
            **training_fields(t.history, t.test_accuracy, t.seconds)}


def training_fields(h, test_acc: float, wall: float) -> dict:
    """The part of a results row every full-fidelity training shares: scores, curves, time and machine."""
    return {"final_val_accuracy": f"{h.val_accuracy[-1]:.4f}", "test_accuracy": f"{test_acc:.4f}",
            "val_accuracy_curve": json.dumps([round(v, 4) for v in h.val_accuracy]),
            "loss_curve": json.dumps([round(v, 5) for v in h.loss]),
            "epoch_seconds": json.dumps([round(s, 1) for s in h.epoch_seconds]),
            "wall_seconds": f"{wall:.0f}", "threads": os.environ.get("TF_NUM_INTRAOP_THREADS", "default"),
            "host": f"{os.cpu_count()}-core CPU", "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def run(data_dir: str | None, stop_after_s: float | None) -> None:
    networks = read_csv(NETWORKS)
    if not networks:
        sys.exit(f"{NETWORKS}: no sample yet; run `{Path(__file__).name} networks` first")
    by_id = {int(n["id"]): n for n in networks}
    t0 = time.monotonic()
    for i, seed in jobs(networks):
        if stop_after_s is not None and time.monotonic() - t0 > stop_after_s:
            break
        done = {(int(r["id"]), int(r["seed"])) for r in read_csv(RESULTS)}
        key = f"net{i:02d}_seed{seed}"
        if (i, seed) in done or not claim(key):
            continue
        print(f"{time.strftime('%H:%M:%S')} start {key}: {by_id[i]['architecture']}", flush=True)
        row = train_one(by_id[i], seed, data_dir)
        append_row(RESULTS, RESULT_FIELDS, row)
        print(f"{time.strftime('%H:%M:%S')} done {key}: val {row['final_val_accuracy']} "
              f"test {row['test_accuracy']} ({row['wall_seconds']} s)", flush=True)
        (WORK / f"{key}.claim").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("networks", help="write networks.csv (the fixed sample)")
    r = sub.add_parser("run", help="train the jobs not yet in results.csv")
    r.add_argument("--data-dir", default=None)
    r.add_argument("--stop-after-s", type=float, default=None, help="start no new job after this many seconds")
    sub.add_parser("status", help="jobs done / left")
    args = ap.parse_args(argv)
    if args.cmd == "networks":
        rows = sample_networks()
        with NETWORKS.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=NET_FIELDS)
            w.writeheader()
            w.writerows(rows)
        print(f"{NETWORKS}: {len(rows)} networks")
    elif args.cmd == "run":
        run(args.data_dir, args.stop_after_s)
    else:
        networks = read_csv(NETWORKS)
        done = {(int(r["id"]), int(r["seed"])) for r in read_csv(RESULTS)}
        todo = jobs(networks)
        print(f"{sum(j in done for j in todo)} of {len(todo)} jobs done")


if __name__ == "__main__":
    main()
