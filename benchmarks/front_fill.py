"""Which front space fills the accuracy–size front best, the small end included? (mnist-front)

    python benchmarks/front_fill.py run --spaces front-log front-linear front-start --seeds 0 1 2   # resumable
    python benchmarks/front_fill.py table                                              # -> front_fill/table.md

Each search is ``budgetnas search --budget mnist-front --space SPACE --objective front --seed S --no-retrain``
at the fidelity and trial count of ``front_vs_random/setup.json`` (24 trials, 2 epochs on a 10k subset), so its
hypervolume (validation accuracy × log10 params, reference point (90%, 15,000)) compares with the ``tpe``
searches of ``benchmarks/front_vs_random/`` on the earlier space (``wide`` here: ``spaces/mnist_wide.toml``,
seeds 0-4, read from that benchmark's ``searches.csv``). Spaces:

* ``front-log``: ``spaces/mnist_front.toml``, widths sampled on a log scale, without its start points
  (``--no-start``);
* ``front-linear``: the same space with every width range sampled uniformly (written to
  ``front_fill/mnist_front_linear.toml`` from the shipped file by dropping ``log = true``), ``--no-start``;
* ``front-start``: ``spaces/mnist_front.toml`` as shipped: the search begins with its ``[[start]]`` points,
  the six public hand-made networks of ``spaces/anchors/``, then samples.
* ``front-full``: as ``front-start``, without the pruning rung (``--min-epochs`` = the search's epochs): every
  candidate trains all its epochs, so nets that start slowly and end well (no BatchNorm, GAP heads) are not cut
  after their first epoch.

Validation split only (seed = the search seed); test plays no part. Searches live in ``front_fill/runs/``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path

import budgetnas

import anchors  # beside this script: the anchors' names, files and 15-epoch rows
import front_vs_random as fvr  # beside this script: the same setup, summary and hypervolume
import jobs  # beside this script: CSV rows

HERE = Path(__file__).resolve().parent / "front_fill"
ROOT = HERE.parent.parent
RUNS = HERE / "runs"
SEARCHES = HERE / "searches.csv"
STARTS = HERE / "start_points.csv"  # each front-full search's start points (trials 0-5) at search fidelity
START_FIELDS = ["search", "start", "params", "val_epoch1", "val_accuracy"]
TABLE = HERE / "table.md"
SPACES = {"front-log": ROOT / "spaces" / "mnist_front.toml", "front-linear": HERE / "mnist_front_linear.toml",
          "front-start": ROOT / "spaces" / "mnist_front.toml", "front-full": ROOT / "spaces" / "mnist_front.toml"}
NO_START = ("front-log", "front-linear")  # searched without the space's start points
NO_RUNG = ("front-full",)  # searched without pruning


def linear_space() -> Path:
    text = SPACES["front-log"].read_text(encoding="utf-8").replace(", log = true}", "}")
    text = text.replace('name = "mnist_front"', 'name = "mnist_front_linear"')
    HERE.mkdir(parents=True, exist_ok=True)
    SPACES["front-linear"].write_text(text, encoding="utf-8")
    return SPACES["front-linear"]


def cmd_run(args) -> None:
    s = fvr.setup()
    linear_space()
    for seed in args.seeds:
        for space in args.spaces:
            name = f"{space}-s{seed}"
            if fvr.finished(name, s["trials"], RUNS):
                continue
            argv = [sys.executable, "-m", "budgetnas", "search", "--budget", fvr.BUDGET, "--space", str(SPACES[space]),
                    "--name", name, "--seed", str(seed), "--objective", "front", "--max-epochs", str(s["max_epochs"]),
                    "--train-subset", str(s["train_subset"]), "--trials", str(s["trials"]),
                    "--reports-dir", str(RUNS), "--no-retrain", *(["--no-start"] if space in NO_START else []),
                    *(["--min-epochs", str(s["max_epochs"])] if space in NO_RUNG else [])]
            if (RUNS / name / "run.json").exists():
                argv.append("--resume")
            env = {**os.environ, **({"BUDGETNAS_DATA_DIR": args.data_dir} if args.data_dir else {})}
            env.setdefault("TF_NUM_INTRAOP_THREADS", "1")
            env.setdefault("TF_NUM_INTEROP_THREADS", "1")
            print(f"{name}: searching", flush=True)
            if subprocess.call(argv, env=env, stdout=subprocess.DEVNULL) != 0:
                print(f"{name}: budgetnas search failed; `run` again continues it", flush=True)


def rows() -> list[dict]:
    s = fvr.setup()
    kept = {r["search"]: r for r in fvr.ranking.read_csv(SEARCHES)}
    names = sorted(p.name for p in RUNS.iterdir() if (p / "run.json").exists()) if RUNS.exists() else []
    kept.update({r["search"]: r for r in (fvr.summarise(n, s, RUNS) for n in names) if r is not None})
    out = [kept[n] for n in sorted(kept)]
    fvr.write_csv(SEARCHES, fvr.SEARCH_FIELDS, out)
    wide = [{**r, "search": r["search"].replace("tpe-", "wide-")} for r in fvr.ranking.read_csv(fvr.SEARCHES)
            if r["search"].startswith("tpe-s")]
    return [{k: (v if k == "search" or v in (None, "") else float(v)) for k, v in r.items()} for r in wide + out]


def start_rows() -> list[dict]:
    """The start points of every ``front-full`` search (enqueued first, in the space's order) as it scored them."""
    names = [st["name"] for st in tomllib.loads(SPACES["front-full"].read_text(encoding="utf-8"))["start"]]
    kept = {(r["search"], r["start"]): r for r in jobs.read_rows(STARTS)}
    for run_dir in sorted(RUNS.glob("front-full-s*")) if RUNS.exists() else []:
        if not (run_dir / "run.json").exists():
            continue
        recs = {r.number: r for r in budgetnas.open_run(run_dir).records()}
        for number, start in enumerate(names):
            r = recs.get(number)
            if r is not None and r.status == "complete" and r.curve:
                kept[(run_dir.name, start)] = {"search": run_dir.name, "start": start, "params": r.params,
                                               "val_epoch1": round(100 * r.curve[0], 2),
                                               "val_accuracy": round(100 * r.val_accuracy, 2)}
    out = [kept[k] for k in sorted(kept)]
    fvr.write_csv(STARTS, START_FIELDS, out)
    return out


def start_table() -> list[str]:
    got = start_rows()
    if not got:
        return []
    by_file = {spec[0].removesuffix(".toml"): name for name, spec in anchors.ANCHORS.items()}
    full = [r for r in jobs.read_rows(anchors.CSV) if r["recipe"] == "front"]
    lines = ["", "The anchors (the space's start points) as the `front-full` searches scored them, beside the same network "
             "after the front's full training (`benchmarks/anchors/table.md`, recipe `front`: 15 epochs on 55k images). "
             "Validation means over the searches and seeds:", "",
             "| start point | params | val after epoch 1 | val after the search's epochs | val, 15 epochs (3 seeds) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    by_start: dict[str, list[dict]] = {}
    for r in got:
        by_start.setdefault(r["start"], []).append(r)
    for start, mine in sorted(by_start.items(), key=lambda kv: int(kv[1][0]["params"])):
        trained = [float(r["val_accuracy"]) for r in full if r["anchor"] == by_file.get(start)]
        lines.append(f"| {start} | {int(mine[0]['params']):,} | "
                     f"{statistics.fmean(float(r['val_epoch1']) for r in mine):.2f}% | "
                     f"{statistics.fmean(float(r['val_accuracy']) for r in mine):.2f}% | "
                     + (f"{statistics.fmean(trained):.2f}% |" if trained else "— |"))
    return lines


def cmd_table(args) -> None:
    s = fvr.setup()
    got = rows()
    by = {r["search"]: r for r in got}
    out = ["# Which space fills the front (mnist-front)", "",
           f"Every search: `budgetnas search --budget mnist-front --space SPACE --objective front --max-epochs "
           f"{s['max_epochs']} --train-subset {s['train_subset']} --trials {s['trials']} --seed S --no-retrain`, "
           f"{s['hardware']}, one process per search ({s['threads']}). `wide`: `spaces/mnist_wide.toml`, the tpe "
           "searches of `benchmarks/front_vs_random/` (same setup). Hypervolume as there: accuracy points above "
           f"{100 * s['ref_accuracy']:.0f}% × log10 decades of params below {s['ref_params']:,}. Validation only; "
           "test plays no part. Command: `python benchmarks/front_fill.py run`, then `table`.", "",
           "| space | searches | hypervolume | completed | pruned | front points | training min | best ≤2k | "
           "best ≤5k | best ≤8k | best ≤15k |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for space in ("wide", *SPACES):
        line = fvr.method_row(space, got)
        if line:
            out.append(line)
    out += ["", "Paired by seed (same validation split, same fidelity):", ""]
    for a, b in (("front-log", "wide"), ("front-log", "front-linear"), ("front-linear", "wide"),
                 ("front-start", "front-log"), ("front-start", "wide"), ("front-full", "front-start")):
        diffs = [by[f"{a}-s{k}"]["hypervolume"] - by[f"{b}-s{k}"]["hypervolume"] for k in range(10)
                 if f"{a}-s{k}" in by and f"{b}-s{k}" in by]
        if diffs:
            out.append(f"- {a} − {b}: {fvr.mean_se(diffs)} hypervolume ({len(diffs)} pairs; {a} ahead in "
                       f"{sum(d > 0 for d in diffs)})")
    out += start_table()
    TABLE.write_text("\n".join(out) + "\n")
    print("\n".join(out))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES))
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--data-dir", default=None)
    r.set_defaults(func=cmd_run)
    t = sub.add_parser("table")
    t.set_defaults(func=cmd_table)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
