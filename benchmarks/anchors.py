"""Public hand-made tiny MNIST networks, re-run in budgetnas: what is the architecture, what the training,
what the selection?

    python benchmarks/anchors.py run &   # twice, side by side: each takes the next job nobody holds
    python benchmarks/anchors.py run &
    python benchmarks/anchors.py table              # -> benchmarks/anchors/table.md (from runs.csv)
    python benchmarks/anchors.py compare            # the committed front against them: table.md and the plot
                                                    #    reports/mnist-front/front_vs_anchors.png

Each anchor is a one-network space under ``spaces/anchors/`` (its file name ends in its Keras Total params)
and trains with ``budgetnas train`` twice, 3 seeds each, scored on the test set once, at the final epoch:

* ``front``: the small-end recipe, the ``mnist-front`` budget's (15 epochs, the front's own);
* ``published``: its source's recipe and epoch count as closely as Keras allows (``anchors/budgets.toml``
  says where it differs).

``compare`` asks of each anchor whether ``reports/mnist-front`` (its retrained finalists, 3 seeds each, the same
15 epochs and recipe as the ``front`` rows, kept where no other finalist beats them on params and validation mean)
holds a point with no more params and a test mean at least as high, and whether a point the search built (not a
start point) does: the test means only report, they choose nothing.

Runs live in ``anchors/runs/`` (not committed); a run stopped midway is continued (``--resume``) by the
next ``run``. A finished run appends one row per seed to ``anchors/runs.csv``. A ``run`` holds a job with
``runs/NAME.claim`` (its process id) while it trains it, so ``run`` processes side by side never share one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import jobs as jobs_mod  # beside this script: CSV rows and job claims

HERE = Path(__file__).resolve().parent / "anchors"
ROOT = HERE.parent.parent
CSV = HERE / "runs.csv"
FIELDS = ["anchor", "recipe", "budget", "params", "epochs", "seed", "val_accuracy", "test_accuracy",
          "train_seconds", "epoch_seconds", "hardware"]
HARDWARE = f"{os.cpu_count()}-core CPU"
SEEDS = 3
# anchor name -> (space file, published-recipe budget in anchors/budgets.toml, published result as its source says)
ANCHORS = {
    "golf": ("golf_820.toml", "anchor-golf", "98.00% (20 epochs, 1 run)"),
    "sep-697": ("sep_697.toml", "anchor-sep-697", "99.03% (best of ~700 runs, early stop on test)"),
    "sep-997": ("sep_997.toml", "anchor-sep-997", "98.76% (mean of 223 runs, early stop on test)"),
    "shared-1936": ("shared_2372.toml", "anchor-shared", "99.1% (75 epochs, epoch picked on test)"),
    "factorized-3197": ("factorized_3253.toml", "anchor-factorized", "99.09% (75 epochs, epoch picked on test)"),
    "plain-7918": ("plain_8132.toml", "anchor-plain", "99.50% (15 epochs, 1 run, test each epoch)"),
}
RECIPES = ("front", "published")
# rows kept from before mnist-front's recipe clipped its gradients (benchmarks/small_recipe/): shown, never run again
EARLIER = {"front-noclip": "the `mnist-front` recipe before it clipped gradients (golf diverged on seed 3: no row)"}


def jobs() -> list[tuple[str, str]]:
    """(anchor, recipe) in the order they run: cheap first, so a short sitting finishes whole anchors."""
    return [(a, r) for r in RECIPES for a in ANCHORS]


def job_name(anchor: str, recipe: str) -> str:
    return f"{Path(ANCHORS[anchor][0]).stem}-{recipe}"


def _rows() -> list[dict]:
    return jobs_mod.read_rows(CSV)


def run_one(anchor: str, recipe: str, runs: Path, data_dir: str | None) -> list[dict]:
    space_file, budget, _ = ANCHORS[anchor]
    name = job_name(anchor, recipe)
    folder = runs / name
    argv = [sys.executable, "-m", "budgetnas"]
    argv += ["--budgets", str(HERE / "budgets.toml")] if recipe == "published" else []
    argv += ["train", str(ROOT / "spaces" / "anchors" / space_file),
             "--budget", budget if recipe == "published" else "mnist-front",
             "--seeds", str(SEEDS), "--seed", "1", "--jobs", "1", "--name", name, "--reports-dir", str(runs)]
    if (folder / "run.json").exists():
        argv.append("--resume")
    env = {**os.environ, **({"BUDGETNAS_DATA_DIR": data_dir} if data_dir else {})}
    code = subprocess.call(argv, env=env, cwd=ROOT)
    if code != 0:
        raise SystemExit(f"{name}: budgetnas train exited {code}; `run` again continues it")
    [fin] = json.loads((folder / "finalists.json").read_text())["finalists"]
    return [{"anchor": anchor, "recipe": recipe, "budget": budget if recipe == "published" else "mnist-front",
             "params": fin["params"], "epochs": fin["epochs"], "seed": s["seed"],
             "val_accuracy": f"{100 * s['final_val_accuracy']:.2f}", "test_accuracy": f"{100 * s['test_accuracy']:.2f}",
             "train_seconds": f"{s['train_seconds']:.0f}",
             "epoch_seconds": f"{statistics.median(s['history']['epoch_seconds']):.1f}", "hardware": HARDWARE}
            for s in fin["seeds"]]


def _mean_std(values: list[float]) -> str:
    sd = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.2f}%{sd}"


def table() -> str:
    rows = _rows()
    lines = ["# Anchors: public hand-made tiny MNIST networks, re-run here", "",
             "`python benchmarks/anchors.py run` twice side by side, then `table`; "
             f"{HARDWARE}, one thread per training. Each network is a space under `spaces/anchors/` "
             "(`budgetnas train SPACE --budget B --seeds 3 --seed 1`). Validation: 5k images carved from the "
             "training set; test: scored once per seed at the final epoch (never used to choose anything).", "",
             "- **front**: the `mnist-front` budget's recipe (SGD-Nesterov one-cycle, peak 0.1, batch 128, label "
             "smoothing 0.05, ±8° rotation, gradients clipped at global norm 1), 15 epochs: the same training for "
             "every network, so rows compare "
             "architectures.",
             "- **published**: the source's own recipe and epochs as closely as Keras allows "
             "(`benchmarks/anchors/budgets.toml` says where it differs); against the published number it separates "
             "training from selection (the sources mostly report the best test epoch or the best of many runs).",
             *(f"- **{k}**: {v}." for k, v in EARLIER.items()), "",
             "| anchor | params (Keras) | published | recipe | epochs | val mean | test mean ± std | seeds | "
             "s/epoch |",
             "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for anchor, (_, _, published) in ANCHORS.items():
        for recipe in (*RECIPES, *EARLIER):
            got = [r for r in rows if r["anchor"] == anchor and r["recipe"] == recipe]
            if not got:
                continue
            vals = [float(r["val_accuracy"]) for r in got]
            tests = [float(r["test_accuracy"]) for r in got]
            secs = statistics.median(float(r["epoch_seconds"]) for r in got)
            lines.append(f"| {anchor} | {int(got[0]['params']):,} | {published} | {recipe} | {got[0]['epochs']} | "
                         f"{statistics.fmean(vals):.2f}% | {_mean_std(tests)} | {len(got)} | {secs:.1f} |")
    missing = [f"{a} ({r})" for r in RECIPES for a in ANCHORS
               if not any(x["anchor"] == a and x["recipe"] == r for x in rows)]
    if missing:
        lines += ["", "Not run yet (`run` trains them; each resumes where it stopped): " + ", ".join(missing) + "."]
    return "\n".join(lines) + "\n"


FRONT = ROOT / "reports" / "mnist-front"


def _anchor_means(recipe: str) -> dict[str, tuple[int, float, float]]:
    """anchor -> (params, validation mean, test mean) over its seeds with ``recipe``."""
    out = {}
    for anchor in ANCHORS:
        got = [r for r in _rows() if r["anchor"] == anchor and r["recipe"] == recipe]
        if got:
            out[anchor] = (int(got[0]["params"]), statistics.fmean(float(r["val_accuracy"]) for r in got),
                           statistics.fmean(float(r["test_accuracy"]) for r in got))
    return out


def front_points() -> list[tuple[int, float, str, str]]:
    """The committed front's retrained points: (params, 3-seed test mean %, label, start point name or "") of each
    finalist on the retrained front, i.e. not dominated by another finalist on (params, validation mean); the
    finalists were chosen on validation, and so is the front among them."""
    fins = json.loads((FRONT / "finalists.json").read_text())["finalists"]  # the committed folder has no run.json
    with open(FRONT / "trials.csv", newline="") as fh:
        start = {int(r["number"]): r.get("start") or "" for r in csv.DictReader(fh)}
    val = [statistics.fmean(s["final_val_accuracy"] for s in f["seeds"]) for f in fins]
    pts = [(f["params"], v) for f, v in zip(fins, val)]
    on = [i for i, (p, v) in enumerate(pts)
          if not any(q <= p and w >= v and (q, w) != (p, v) for q, w in pts)]  # no other one as good in both
    return sorted((fins[i]["params"], 100 * statistics.fmean(s["test_accuracy"] for s in fins[i]["seeds"]),
                   fins[i]["label"], start.get(fins[i]["trial"], "")) for i in on)


def compare() -> str:
    """Does the committed front dominate every anchor (front recipe, same epochs)? Also draws the plot."""
    points = front_points()
    lines = ["", "## Against the committed front (`reports/mnist-front/`)", "",
             "`python benchmarks/anchors.py compare`: for each anchor (the `front` rows: the front's recipe and "
             "epochs; `front-noclip` where no `front` row exists), the best point of the committed front by test "
             "mean among those with no more params, and the best such point the search built (not one of the "
             "space's start points). The front is the retrained finalists not dominated on (params, validation "
             "mean); test means only report here.",
             "",
             "| anchor | params | test mean | front point (params) | its test mean | dominated | best searched point "
             "(params) | its test mean | dominated by it |",
             "| --- | ---: | ---: | --- | ---: | --- | --- | ---: | --- |"]
    means = {**_anchor_means("front-noclip"), **_anchor_means("front")}  # an earlier row only where no later one

    def cells(pts: list, test: float) -> str:
        best = max(pts, key=lambda p: p[1], default=None)
        if best is None:
            return "— | — | no"
        name = best[2] + (f", start point `{best[3]}`" if best[3] else "")
        return f"{name} ({best[0]:,}) | {best[1]:.2f}% | {'yes' if round(best[1], 2) >= round(test, 2) else 'no'}"  # runs.csv holds 2 decimals

    for anchor, (params, _, test) in sorted(means.items(), key=lambda kv: kv[1][0]):
        fit = [p for p in points if p[0] <= params]
        lines.append(f"| {anchor} | {params:,} | {test:.2f}% | {cells(fit, test)} | "
                     f"{cells([p for p in fit if not p[3]], test)} |")
    _plot(points)
    return "\n".join(lines) + "\n"


def _plot(points: list[tuple[int, float, str, str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.step([p[0] for p in points], [p[1] for p in points], "o-", where="post", color="tab:green",
            label="budgetnas front after retraining (on validation; 3-seed test mean)")
    recipes = (("front", "*", "tab:red"), ("front-noclip", "*", "tab:orange"), ("published", "x", "tab:purple"))
    for recipe, marker, colour in recipes:
        got = _anchor_means(recipe)
        if not got:
            continue
        ax.scatter([v[0] for v in got.values()], [v[2] for v in got.values()], marker=marker, s=90, color=colour,
                   label=f"anchors re-run here, {recipe} recipe (test mean)", zorder=3)
        if recipe != "published":
            for name, (params, _, test) in got.items():
                ax.annotate(name, (params, test), textcoords="offset points", xytext=(5, -11), fontsize=8)
    ax.set_xscale("log")
    low = 96.5  # the interesting part; the cheaper, weaker front points are named below the chart
    off = [f"{p[0]:,} params {p[1]:.1f}%" for p in points if p[1] < low]
    ax.set(xlabel="Keras total params (log)" + (f"   (below the chart: {', '.join(off)})" if off else ""),
           ylabel="test accuracy (%)", title="MNIST accuracy–size front and the public tiny networks, 2-core CPU")
    ax.set_ylim(low, 99.7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(FRONT / "front_vs_anchors.png", dpi=110)


def _rows_or_none(anchor: str, recipe: str, runs: Path, data_dir: str | None) -> list[dict]:
    """The job's rows; none for a failed job (e.g. a diverged seed), which leaves the others to run."""
    try:
        return run_one(anchor, recipe, runs, data_dir)
    except SystemExit as exc:
        print(exc, flush=True)
        return []


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train every (anchor, recipe) not yet in runs.csv")
    r.add_argument("--only", nargs="*", help="anchor names to run (default: all)")
    r.add_argument("--recipes", nargs="*", choices=RECIPES, default=list(RECIPES), help="recipes to run")
    r.add_argument("--runs", default=str(HERE / "runs"), help="folder for the run folders")
    r.add_argument("--data-dir", default=None)
    sub.add_parser("table", help="write anchors/table.md")
    sub.add_parser("compare", help="table.md with the committed front against the anchors, and its plot")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        runs = Path(args.runs)
        runs.mkdir(parents=True, exist_ok=True)
        for anchor, recipe in jobs():
            if (args.only and anchor not in args.only) or recipe not in args.recipes:
                continue
            got = jobs_mod.run_once(runs, CSV, FIELDS, job_name(anchor, recipe),
                                    lambda: _rows_or_none(anchor, recipe, runs, args.data_dir),
                                    done=lambda rows: any(r["anchor"] == anchor and r["recipe"] == recipe for r in rows))
            if got:
                print(f"{anchor} {recipe}: test {[g['test_accuracy'] for g in got]}", flush=True)
    else:
        text = table() + (compare() if args.cmd == "compare" else "")
        (HERE / "table.md").write_text(text, encoding="utf-8")
        print(text)


if __name__ == "__main__":
    main()
