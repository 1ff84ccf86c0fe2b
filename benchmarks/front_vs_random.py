"""Does the front search find a better accuracy–size front than random sampling? (mnist-front)

    python benchmarks/front_vs_random.py run --methods tpe random --seeds 0 1 2 3 4   # resumable
    python benchmarks/front_vs_random.py naive --seeds 0 1 2 3 4                      # after `run ... tpe`
    python benchmarks/front_vs_random.py check --searches tpe-s0 random-s0            # front order, full fidelity
    python benchmarks/front_vs_random.py table                                        # -> front_vs_random/table.md

``run``: for each method and seed one ``budgetnas search --budget mnist-front --algorithm METHOD --seed SEED
--no-retrain`` with the trial count and fidelity fixed in ``front_vs_random/setup.json`` (the same for every
search): Optuna's multi-objective TPE (the default) or its ``RandomSampler``, both with the front search's
own rung rule (``search/front.py``).

``naive``: the way a user would do it without the tool's front search: random sampling with no pruning
(``--min-epochs`` = ``--max-epochs``), stopped after as many minutes of training as the TPE search of the
same seed took (``--timeout``; the trial running then finishes).

``check``: ``budgetnas retrain RUN --front 3 --seeds 1`` on the named searches (three points spread along each
front, the budget's full epochs on all training images): does the front's order survive full training?

``table``: the hypervolume of each search's front of (validation accuracy, total params) over its completed
trials, with the cost axis in log10 (each doubling of params weighs alike) and the reference point of
setup.json (accuracy below it, or params at or above it, count nothing); mean ± standard error per method, and
paired differences by seed. Hypervolume unit: accuracy points × decades of params. Test accuracy plays no part.

Searches live in ``front_vs_random/runs/`` (not committed); a stopped search continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import budgetnas
import ranking  # benchmarks/ranking.py, beside this script: its CSV reader

HERE = Path(__file__).resolve().parent / "front_vs_random"
RUNS = HERE / "runs"
SETUP = HERE / "setup.json"
TABLE = HERE / "table.md"
SEARCHES = HERE / "searches.csv"
CHECKED = HERE / "checked.csv"  # the front points `check` trained in full
BUDGET = "mnist-front"
DEFAULT_SETUP = {"trials": 24, "max_epochs": 2, "train_subset": 10000, "ref_accuracy": 0.90, "ref_params": 15000,
                 "hardware": f"{os.cpu_count()}-core CPU", "threads": "TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1"}
LIMITS = {"2k": 2000, "5k": 5000, "8k": 8000, "15k": 15000}  # the best validation accuracy under each, per search


def setup() -> dict:
    if SETUP.exists():
        return {**DEFAULT_SETUP, **json.loads(SETUP.read_text())}
    HERE.mkdir(parents=True, exist_ok=True)
    SETUP.write_text(json.dumps(DEFAULT_SETUP, indent=1) + "\n")
    return dict(DEFAULT_SETUP)


def search(name: str, seed: int, algorithm: str, extra: list[str], data_dir: str | None) -> int:
    s = setup()
    argv = [sys.executable, "-m", "budgetnas", "search", "--budget", BUDGET, "--name", name, "--seed", str(seed),
            "--algorithm", algorithm, "--objective", "front", "--max-epochs", str(s["max_epochs"]),
            "--train-subset", str(s["train_subset"]), "--reports-dir", str(RUNS), "--no-retrain", *extra]
    if (RUNS / name / "run.json").exists():
        argv.append("--resume")
    env = {**os.environ, **({"BUDGETNAS_DATA_DIR": data_dir} if data_dir else {})}
    env.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    return subprocess.call(argv, env=env, stdout=subprocess.DEVNULL)


def finished(name: str, trials: int, runs: Path = RUNS) -> bool:
    if not (runs / name / "run.json").exists():
        return False
    recs = budgetnas.open_run(runs / name).records()
    return sum(1 for r in recs if r.status not in ("interrupted", "running") and r.retry_of is None) >= trials


def training_minutes(recs) -> float:
    return sum(r.wall_seconds for r in recs) / 60


def cmd_run(args) -> None:
    trials = setup()["trials"]
    for seed in args.seeds:
        for method in args.methods:
            name = f"{method}-s{seed}"
            if finished(name, trials):
                continue
            print(f"{name}: searching", flush=True)
            code = search(name, seed, method, ["--trials", str(trials)], args.data_dir)
            if code != 0:
                raise SystemExit(f"{name}: budgetnas search exited {code}; `run` again continues it")


def cmd_naive(args) -> None:
    s = setup()
    for seed in args.seeds:
        name = f"naive-s{seed}"
        if (RUNS / name / "naive.done").exists():  # its time was spent: `naive` again does not extend it
            continue
        paired = RUNS / f"tpe-s{seed}"
        if not finished(paired.name, s["trials"]):
            raise SystemExit(f"{name}: the TPE search of seed {seed} is not finished (`run --methods tpe`)")
        minutes = training_minutes(budgetnas.open_run(paired).records())
        print(f"{name}: random, no pruning, {minutes:.1f} min of training", flush=True)
        code = search(name, seed, "random", ["--min-epochs", str(s["max_epochs"]), "--timeout", f"{minutes:.2f}",
                                             "--trials", "1000"], args.data_dir)
        if code != 0:
            raise SystemExit(f"{name}: budgetnas search exited {code}")
        (RUNS / name / "naive.done").write_text(f"{minutes:.2f}\n")


def cmd_check(args) -> None:
    for name in args.searches:
        if (RUNS / name / "finalists.json").exists():
            continue
        env = {**os.environ, **({"BUDGETNAS_DATA_DIR": args.data_dir} if args.data_dir else {})}
        print(f"{name}: retraining {args.points} front points", flush=True)
        code = subprocess.call([sys.executable, "-m", "budgetnas", "retrain", name, "--reports-dir", str(RUNS),
                                "--front", str(args.points), "--seeds", "1"], env=env, stdout=subprocess.DEVNULL)
        if code != 0:
            raise SystemExit(f"{name}: budgetnas retrain exited {code}; `check` again continues it")


CHECK_FIELDS = ["search", "trial", "params", "val_search", "val_full", "test"]  # accuracies in percent


def checked() -> list[dict]:
    """The front points trained in full (``check``): from the run folders here, else as ``checked.csv`` keeps
    them (the run folders are not committed)."""
    kept = {(r["search"], r["trial"]): r for r in ranking.read_csv(CHECKED)}
    for p in sorted(RUNS.glob("*/finalists.json")) if RUNS.exists() else []:
        for f in budgetnas.open_run(p.parent).finalists():
            kept[(p.parent.name, str(f.trial))] = {
                "search": p.parent.name, "trial": str(f.trial), "params": str(f.params),
                "val_search": f"{100 * f.val_accuracy_search:.2f}", "val_full": f"{100 * f.val_mean:.2f}",
                "test": f"{100 * f.mean:.2f}"}
    rows = sorted(kept.values(), key=lambda r: (r["search"], int(r["params"])))
    write_csv(CHECKED, CHECK_FIELDS, rows)
    return rows


def write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    import csv

    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


SEARCH_FIELDS = ["search", "completed", "pruned", "front", "hypervolume", "train_min",
                 *(f"best_{label}" for label in LIMITS)]


def searches() -> list[dict]:
    """One row per search: summarised from its run folder where there is one, else as ``searches.csv`` keeps it
    (numbers parsed back); ``searches.csv`` is rewritten with both."""
    kept = {r["search"]: r for r in ranking.read_csv(SEARCHES)}
    names = sorted(p.name for p in RUNS.iterdir() if (p / "run.json").exists()) if RUNS.exists() else []
    kept.update({r["search"]: r for r in (summarise(n, setup()) for n in names) if r is not None})
    rows = [kept[n] for n in sorted(kept)]
    write_csv(SEARCHES, SEARCH_FIELDS, rows)

    def number(key: str, v):
        if v in (None, ""):
            return None
        return int(v) if key in ("completed", "pruned", "front") else float(v)

    return [{k: (v if k == "search" else number(k, v)) for k, v in r.items()} for r in rows]


def summarise(name: str, s: dict, runs: Path = RUNS) -> dict | None:
    """One search's row: its front's hypervolume (setup ``s``'s reference point), counts, best under each limit."""
    if not (runs / name / "run.json").exists():
        return None
    run = budgetnas.open_run(runs / name)
    recs = run.records()
    done = [r for r in recs if r.status == "complete" and r.val_accuracy is not None and r.params]
    hv = 100 * run.hypervolume(ref_accuracy=s["ref_accuracy"], ref_cost=s["ref_params"])  # accuracy in points
    row = {"search": name, "completed": len(done), "pruned": sum(r.status == "pruned" for r in recs),
           "front": len(run.leaderboard(front=True).rows), "hypervolume": round(hv, 4),
           "train_min": round(training_minutes(recs), 1)}
    for label, limit in LIMITS.items():
        fit = [r.val_accuracy for r in done if r.params <= limit]
        row[f"best_{label}"] = round(100 * max(fit), 2) if fit else None
    return row


def mean_se(xs: list[float]) -> str:
    if not xs:
        return "—"
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs) / len(xs) ** 0.5:.3f}"


def method_row(label: str, rows: list[dict]) -> str | None:
    """One table row over the searches named ``LABEL-sN``: hypervolume mean ± SE, the other columns' means."""
    mine = [r for r in rows if r["search"].startswith(f"{label}-s")]
    if not mine:
        return None

    def col(key: str) -> str:
        xs = [r[key] for r in mine if r[key] not in (None, "")]
        return mean_se(xs) if key == "hypervolume" else (f"{statistics.fmean(xs):.2f}" if xs else "—")

    return (f"| {label} | {len(mine)} | {col('hypervolume')} | {col('completed')} | {col('pruned')} | {col('front')} | "
            f"{col('train_min')} | {col('best_2k')} | {col('best_5k')} | {col('best_8k')} | {col('best_15k')} |")


def cmd_table(args) -> None:
    s = setup()
    rows = searches()
    by = {r["search"]: r for r in rows}
    out = ["# Front search vs random sampling (mnist-front)", "",
           f"Every search: `budgetnas search --budget {BUDGET} --objective front --max-epochs {s['max_epochs']} "
           f"--train-subset {s['train_subset']} --no-retrain`, {s['trials']} trials (`naive`: random, no pruning, "
           f"the TPE search's training minutes), {s['hardware']}, one process per search "
           f"({s['threads']}), two at a time. Hypervolume of the front of (validation accuracy, total params) over "
           f"completed trials: accuracy in points above {100 * s['ref_accuracy']:.0f}%, params in log10 decades "
           f"below {s['ref_params']:,} (reference point ({100 * s['ref_accuracy']:.0f}%, {s['ref_params']:,})). "
           "Validation split only (5k images, seed = the search seed); test plays no part.", "",
           "| method | searches | hypervolume | completed | pruned | front points | training min | best ≤2k | "
           "best ≤5k | best ≤8k | best ≤15k |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for m in ("tpe", "random", "naive"):
        line = method_row(m, rows)
        if line:
            out.append(line)
    out += ["", "Paired by seed (same validation split, same fidelity):", ""]
    for a, b in (("tpe", "random"), ("tpe", "naive"), ("random", "naive")):
        diffs = [by[f"{a}-s{k}"]["hypervolume"] - by[f"{b}-s{k}"]["hypervolume"]
                 for k in sorted({int(n.split("-s")[1]) for n in by}) if f"{a}-s{k}" in by and f"{b}-s{k}" in by]
        if diffs:
            wins = sum(d > 0 for d in diffs)
            out.append(f"- {a} − {b}: {mean_se(diffs)} hypervolume ({len(diffs)} pairs; {a} ahead in {wins})")
    rows_checked = [f"| {r['search']} | {r['trial']} | {int(r['params']):,} | {r['val_search']}% | {r['val_full']}% | "
                    f"{r['test']}% |" for r in checked()]
    if rows_checked:
        out += ["", "Front points trained in full (`check`: the budget's 15 epochs on all 55k training images, 1 seed; "
                "the test column is recorded, never used to choose):", "",
                "| search | trial | params | val, search fidelity | val, full | test |",
                "| --- | ---: | ---: | ---: | ---: | ---: |", *rows_checked]
    out += ["", "Per search: `searches.csv`; points trained in full: `checked.csv`. Command: "
            "`python benchmarks/front_vs_random.py run` (and `naive`), then "
            "`python benchmarks/front_vs_random.py table`.", ""]
    TABLE.write_text("\n".join(out))
    print("\n".join(out))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--methods", nargs="+", default=["tpe", "random"], choices=["tpe", "random"])
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    r.add_argument("--data-dir", default=None)
    r.set_defaults(func=cmd_run)
    n = sub.add_parser("naive")
    n.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    n.add_argument("--data-dir", default=None)
    n.set_defaults(func=cmd_naive)
    c = sub.add_parser("check")
    c.add_argument("--searches", nargs="+", default=["tpe-s0", "random-s0"])
    c.add_argument("--points", type=int, default=3)
    c.add_argument("--data-dir", default=None)
    c.set_defaults(func=cmd_check)
    t = sub.add_parser("table")
    t.set_defaults(func=cmd_table)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
