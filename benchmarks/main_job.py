"""The default main job over seeds: does a fresh `budgetnas search` clear its budget's target, and how fast?

    python benchmarks/main_job.py run --seeds 0 1 2 3 4     # one default main job per seed, one after another
    python benchmarks/main_job.py table                     # -> benchmarks/main_job/table.md

Each run is exactly the README's main job with only ``--seed`` and ``--name`` set (default budget, its
search, its finalists retrained with their seeds side by side), in ``main_job/runs/`` (not committed).
A finished run appends one row to ``main_job/runs.csv``: the winner's params, its mean final validation
accuracy (which chose it), its test mean and std over the seeds (scored once per seed, never used to
choose), and the wall minutes. A run stopped midway is continued with ``--resume`` by the next ``run``;
its minutes are then the sum of its attempts and the row says so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jobs as jobs_mod  # beside this script: CSV rows

HERE = Path(__file__).resolve().parent / "main_job"
RUNS = HERE / "runs"
CSV = HERE / "runs.csv"
FIELDS = ["seed", "params", "val_mean", "test_mean", "test_std", "minutes", "hardware", "budget", "notes", "final_fit"]
HARDWARE = f"{os.cpu_count()}-core CPU"


def _rows() -> list[dict]:
    return jobs_mod.read_rows(CSV)


def final_fit() -> str:
    """The default budget's ``search.final_fit`` as it stands: rows are kept apart by it."""
    import budgetnas

    return budgetnas.load_budget("mnist-15k").search.final_fit


def run_one(seed: int, data_dir: str | None) -> dict:
    fit = final_fit()
    name = f"main-s{seed}" + ("" if fit == "train" else f"-{fit}")
    folder = RUNS / name
    attempts_file = folder / "attempts.json"
    attempts = json.loads(attempts_file.read_text()) if attempts_file.exists() else []
    argv = [sys.executable, "-m", "budgetnas", "search", "--seed", str(seed), "--name", name,
            "--reports-dir", str(RUNS)]
    if (folder / "run.json").exists():
        argv.append("--resume")
    env = {**os.environ, **({"BUDGETNAS_DATA_DIR": data_dir} if data_dir else {})}
    t0 = time.monotonic()
    code = subprocess.call(argv, env=env)
    attempts.append(round(time.monotonic() - t0, 1))
    folder.mkdir(parents=True, exist_ok=True)
    attempts_file.write_text(json.dumps(attempts))
    if code != 0:
        raise SystemExit(f"{name}: budgetnas search exited {code}; `run` again continues it")
    data = json.loads((folder / "finalists.json").read_text())
    fins = [f for f in data["finalists"] if f["trial"] is not None]
    refit = [f for f in fins if f.get("fit") == "all"]
    # the winner rule of budgetnas.finalists.winner: the final fit of the validation winner when there is one,
    # else the best mean final validation accuracy over its seeds
    win = refit[0] if refit else max(fins, key=lambda f: (statistics.fmean(s["final_val_accuracy"] for s in f["seeds"]),
                                                          f.get("val_accuracy_search") or 0.0))
    tests = [s["test_accuracy"] for s in win["seeds"]]
    budget = json.loads((folder / "run.json").read_text())["budget"]
    chose = [f for f in fins if f.get("fit", "train") == "train" and f["trial"] == win["trial"]]
    val = (statistics.fmean(s["final_val_accuracy"] for s in chose[0]["seeds"]) if chose
           else win.get("val_accuracy_search") or 0.0)  # one finalist and a final fit: the search's score chose it
    return {"seed": seed, "params": win["params"], "final_fit": fit,
            "val_mean": f"{100 * val:.2f}",
            "test_mean": f"{100 * statistics.fmean(tests):.2f}",
            "test_std": f"{100 * statistics.stdev(tests):.2f}" if len(tests) > 1 else "",
            "minutes": f"{sum(attempts) / 60:.1f}", "hardware": HARDWARE, "budget": budget,
            "notes": "" if len(attempts) == 1 else f"resumed: {len(attempts)} attempts"}


def table() -> str:
    lines = ["# The default main job over seeds", "",
             f"`budgetnas search --seed S --name main-sS` (nothing else set), one run at a time, "
             f"`python benchmarks/main_job.py run --seeds …`; {HARDWARE}. Test = mean over the winner's seeds, "
             "final epoch; the winner is chosen on validation (val: the winner's mean final validation accuracy; "
             "with one finalist and a final fit, the search's own validation score, which chose it).", ""]
    for fit, title in (("train", "Finalists trained on the 55k training split (`final_fit = \"train\"`)"),
                       ("all", "Final fit on all 60k training images (`final_fit = \"all\"`)")):
        rows = [r for r in _rows() if (r.get("final_fit") or "train") == fit]
        if not rows:
            continue
        lines += [f"## {title}", "", "| seed | params | val | test mean ± std | minutes | notes |",
                  "| ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in rows:
            lines.append(f"| {r['seed']} | {int(r['params']):,} | {r['val_mean']}% | {r['test_mean']}% ± {r['test_std']} "
                         f"| {r['minutes']} | {r['notes']} |")
        tests = [float(r["test_mean"]) for r in rows]
        mins = [float(r["minutes"]) for r in rows]
        lines += ["", f"{len(rows)} runs: test mean {statistics.fmean(tests):.2f}% (lowest {min(tests):.2f}%, "
                      f"{sum(t >= 99.40 for t in tests)} of {len(rows)} at or above 99.40%), median "
                      f"{statistics.median(mins):.1f} min.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the default main job for each seed not yet in runs.csv")
    r.add_argument("--seeds", type=int, nargs="+", required=True)
    r.add_argument("--data-dir", default=None)
    sub.add_parser("table", help="write main_job/table.md")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        RUNS.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            if (str(seed), final_fit()) in {(row["seed"], row.get("final_fit") or "train") for row in _rows()}:
                continue
            row = run_one(seed, args.data_dir)
            jobs_mod.append_rows(CSV, FIELDS, [row])
            print(f"seed {seed}: {row}", flush=True)
    else:
        (HERE / "table.md").write_text(table(), encoding="utf-8")
        print(table())


if __name__ == "__main__":
    main()
