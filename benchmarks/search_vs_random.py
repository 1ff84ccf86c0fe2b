"""Does the default search beat random search at equal compute? (mnist-8k)

    python benchmarks/search_vs_random.py run [--seeds 0 1 2] [--methods tpe random]   # resumable
    python benchmarks/search_vs_random.py rescore [--k 3] [--methods tpe random]      # -> rescored.csv
    python benchmarks/search_vs_random.py prefix [--part 0/2]                         # -> prefix*.csv
    python benchmarks/search_vs_random.py table                                       # -> table.md

For each method (the default TPE search, Optuna's ``RandomSampler``) and search seed, one
``budgetnas search --budget mnist-8k --algorithm METHOD --seed SEED --no-retrain --trials N``: the
budget's fidelity and pruner, identical for both. Each search's pick (its best completed trial
on validation) is then trained once at full fidelity exactly as the ranking benchmark trains its
networks (``benchmarks/ranking.py``: the budget's epochs on all 55k training images of the
seed-0 split, seed 0), so every pick is scored on one validation split and comparable with the
benchmark's 28 networks. Test accuracy is recorded, never used to choose.

``prefix`` trains the picks the same searches would have made with fewer trials (their first 6, 8, 12
or 16), and those of their first 12 with ``search.rescore = 3``: what the later trials add, per CPU minute.

Results live in one folder (``--out``; default ``search_vs_random/``, the 2-core CPU's): CSVs, ``table.md``
and ``setup.json`` (N, the hardware); ``runs/`` holds the search folders. A search folder resumes where
it stopped; a pick already in ``picks.csv`` is not trained again.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

import ranking  # noqa: E402  (benchmarks/ranking.py, beside this script: its sample, claims and CSV appends)


def use_folder(folder: Path) -> None:
    """Point the benchmark at one results folder: its CSVs, ``table.md``, ``setup.json`` (the searches' trial
    count, the hardware and notes for the table) and ``runs/`` (the search folders, not committed)."""
    global OUT, RUNS, PICKS, TABLE, TRIALS, RESCORED, PREFIX, PREFIX_RESCORES, SETUP
    OUT = folder
    RUNS, PICKS, TABLE, TRIALS = OUT / "runs", OUT / "picks.csv", OUT / "table.md", OUT / "trials.csv"
    RESCORED, PREFIX, PREFIX_RESCORES = OUT / "rescored.csv", OUT / "prefix.csv", OUT / "prefix_rescores.csv"
    SETUP = OUT / "setup.json"


DEFAULT_OUT = HERE / "search_vs_random"  # the 2-core CPU results; --out names another folder (a GPU's, say)
use_folder(DEFAULT_OUT)


def setup() -> dict:
    """The folder's setup: ``trials`` every search runs, ``hardware`` and ``notes`` for the table."""
    return {"trials": 24, "hardware": "", "notes": "", **(json.loads(SETUP.read_text()) if SETUP.exists() else {})}


TRIAL_FIELDS = ["method", "search_seed", "trial", "status", "architecture", "params", "val_accuracy", "epochs",
                "wall_seconds", "key"]
PICK_FIELDS = ["method", "search_seed", "trial", "architecture", "params", "search_val_accuracy",
               "search_trials", "search_trained", "search_seconds", "final_val_accuracy", "test_accuracy",
               "retrain_seconds", "values"]


def search(method: str, seed: int, data_dir: str | None) -> Path:
    import budgetnas

    name = f"{method}-s{seed}"
    path = RUNS / name
    t0 = time.perf_counter()
    budgetnas.search(ranking.BUDGET, name=name, reports_dir=RUNS, seed=seed, algorithm=method, retrain=False,
                     trials=setup()["trials"], data_dir=data_dir, budgets_file=ROOT / "budgets.toml",
                     resume=(path / "run.json").exists(), progress=True)
    meta_file = path / "search_seconds.json"  # wall time over all (resumed) pieces of this search
    spent = json.loads(meta_file.read_text())["seconds"] if meta_file.exists() else 0.0
    meta_file.write_text(json.dumps({"seconds": spent + time.perf_counter() - t0, "trials": setup()["trials"]}))
    return path


def pick(path: Path):
    """The search's pick (its best completed trial, as its leaderboard ranks them) and all its trial records."""
    import budgetnas

    run = budgetnas.open_run(path)
    records = run.records()
    done = [r for r in run.leaderboard(top=len(records), front=False).rows if r.status == "complete"]
    return done[0], records


def _save_trials(method: str, seed: int, records) -> None:
    """Every trial of every search in one committed CSV (the run folders are not committed)."""
    with (OUT / ".trials.lock").open("w") as lock:  # one `run` per method may share the CSV
        fcntl.flock(lock, fcntl.LOCK_EX)
        _rewrite_trials(method, seed, records)


def _rewrite_trials(method: str, seed: int, records) -> None:
    rows = [r for r in ranking.read_csv(TRIALS) if not (r["method"] == method and r["search_seed"] == str(seed))]
    for r in records:
        rows.append({"method": method, "search_seed": seed, "trial": r.number, "status": r.status,
                     "architecture": r.architecture, "params": r.params or "",
                     "val_accuracy": "" if r.val_accuracy is None else f"{r.val_accuracy:.4f}",
                     "epochs": r.epochs, "wall_seconds": f"{r.wall_seconds:.0f}", "key": r.key})
    with TRIALS.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=TRIAL_FIELDS)
        w.writeheader()
        w.writerows(rows)


def run(methods: list[str], seeds: list[int], data_dir: str | None) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for seed in seeds:  # seed-major: a partial run still compares both methods
        for method in methods:
            if any(r["method"] == method and r["search_seed"] == str(seed) for r in ranking.read_csv(PICKS)):
                continue
            path = search(method, seed, data_dir)
            best, records = pick(path)
            _save_trials(method, seed, records)
            print(f"{time.strftime('%H:%M:%S')} {method} seed {seed}: pick trial {best.number} "
                  f"{best.architecture} val {best.val_accuracy:.4f}; full-fidelity retrain", flush=True)
            net = {"id": f"{method}-s{seed}", "architecture": best.architecture,
                   "values": json.dumps(best.values, sort_keys=True)}
            row = ranking.train_one(net, 0, data_dir, checkpoint=RUNS / f"{method}-s{seed}.resume")
            seconds = json.loads((path / "search_seconds.json").read_text())["seconds"]
            out = {"method": method, "search_seed": seed, "trial": best.number, "architecture": best.architecture,
                   "params": row["params"], "search_val_accuracy": f"{best.val_accuracy:.4f}",
                   "search_trials": len(records),
                   "search_trained": sum(r.status in ("complete", "pruned") for r in records),
                   "search_seconds": f"{seconds:.0f}", "final_val_accuracy": row["final_val_accuracy"],
                   "test_accuracy": row["test_accuracy"], "retrain_seconds": row["wall_seconds"],
                   "values": net["values"]}
            ranking.append_row(PICKS, PICK_FIELDS, out)  # one `run` per method may append at once
            print(f"{time.strftime('%H:%M:%S')} {method} seed {seed}: full val {row['final_val_accuracy']} "
                  f"test {row['test_accuracy']}", flush=True)


RESCORE_FIELDS = ["method", "search_seed", "k", "rescored", "old_pick", "new_pick", "architecture",
                  "rescore_seconds", "final_val_accuracy", "test_accuracy"]


def rescore(methods: list[str], seeds: list[int], k: int, data_dir: str | None) -> None:
    """Each finished search again, with ``search.rescore = k``: its k best trials trained on all 55k images
    (:meth:`budgetnas.Run.rescore`), the pick made among them; a changed pick is trained at full fidelity like
    every pick (an unchanged one keeps its row in ``picks.csv``). Rows: ``rescored.csv``."""
    import budgetnas

    picks = {(r["method"], r["search_seed"]): r for r in ranking.read_csv(PICKS)}
    for seed in seeds:
        for method in methods:
            done = {(r["method"], r["search_seed"]) for r in ranking.read_csv(RESCORED)}
            if (method, str(seed)) in done or (method, str(seed)) not in picks:
                continue
            run = budgetnas.open_run(RUNS / f"{method}-s{seed}")
            t0 = time.perf_counter()
            scores = run.rescore(k, data_dir=data_dir, on_rescored=lambda n, a, b: print(
                f"  {method}-s{seed} trial {n}: {a:.4f} -> {b:.4f}", flush=True))
            seconds = time.perf_counter() - t0
            by_number = {r.number: r for r in run.records()}
            best = by_number[min(scores, key=lambda n: (-scores[n], by_number[n].params))]  # as the run ranks them
            old = picks[(method, str(seed))]
            row = {"method": method, "search_seed": seed, "k": k, "rescored": json.dumps(dict(sorted(scores.items()))),
                   "old_pick": old["trial"], "new_pick": best.number, "architecture": best.architecture,
                   "rescore_seconds": f"{seconds:.0f}"}
            if str(best.number) == old["trial"]:
                row.update(final_val_accuracy=old["final_val_accuracy"], test_accuracy=old["test_accuracy"])
            else:
                net = {"id": f"{method}-s{seed}-rescored", "architecture": best.architecture,
                       "values": json.dumps(best.values, sort_keys=True)}
                full_row = ranking.train_one(net, 0, data_dir, checkpoint=RUNS / f"{method}-s{seed}-rescored.resume")
                row.update(final_val_accuracy=full_row["final_val_accuracy"], test_accuracy=full_row["test_accuracy"])
            ranking.append_row(RESCORED, RESCORE_FIELDS, row)
            print(f"{time.strftime('%H:%M:%S')} {method} seed {seed}: pick {old['trial']} -> {best.number}, "
                  f"full val {old['final_val_accuracy']} -> {row['final_val_accuracy']}", flush=True)


PREFIX_FIELDS = ["architecture", "final_val_accuracy", "test_accuracy", "retrain_seconds", "values"]
PREFIXES = (6, 8, 12, 16)  # trial counts below the budget's 24 (6 = TPE's random start-up, the same for both)


def best_completed(trials: list[dict], n: int, k: int) -> list[dict]:
    """The ``k`` best completed trials among the first ``n`` (validation accuracy, then fewer params, as a run's
    leaderboard orders them): an ``n``-trial search's pick (k = 1), or the candidates its ``search.rescore = k``
    trains again when it ends (:meth:`budgetnas.Run.rescore`)."""
    done = [r for r in trials if int(r["trial"]) < n and r["status"] == "complete"]
    return sorted(done, key=lambda r: (-float(r["val_accuracy"]), int(r["params"])))[:k]


def prefix_pick(trials: list[dict], n: int) -> dict | None:
    """The pick an ``n``-trial search would have made. A prefix of a finished search is that search exactly:
    trial t was proposed, trained and pruned on trials < t alone (one worker; successive halving decides at
    each rung from the trials before)."""
    top = best_completed(trials, n, 1)
    return top[0] if top else None


def searches() -> dict[tuple[str, str], list[dict]]:
    """(method, search seed) -> its trials.csv rows, for every finished search (a row of ``picks.csv``)."""
    trials = ranking.read_csv(TRIALS)
    return {(r["method"], r["search_seed"]): [t for t in trials if t["method"] == r["method"]
                                              and t["search_seed"] == r["search_seed"]]
            for r in sorted(ranking.read_csv(PICKS), key=lambda r: (r["method"], int(r["search_seed"])))}


def trial_minutes(trials: list[dict], n: int) -> float:
    """Minutes the first ``n`` trials of a search spent training."""
    return sum(float(t["wall_seconds"] or 0) for t in trials if int(t["trial"]) < n) / 60


def prefix_picks(counts: tuple[int, ...]) -> dict[tuple[str, str, int], tuple[dict, float]]:
    """(method, search seed, n) -> (the n-trial pick's trials.csv row, minutes its first n trials took),
    for every finished search and every n in ``counts``."""
    out = {}
    for key, mine in searches().items():
        for n in counts:
            chosen = prefix_pick(mine, n)
            if chosen is not None:
                out[(*key, n)] = (chosen, trial_minutes(mine, n))
    return out


def known_full_fidelity() -> dict[str, dict]:
    """Full-fidelity rows (seed 0, this protocol) by architecture: picks, re-scored picks, prefix picks and
    the ranking benchmark's networks."""
    known = {r["architecture"]: r for r in ranking.read_csv(ranking.RESULTS) if r["seed"] == "0"}
    for path in (PICKS, RESCORED, PREFIX):
        known.update({r["architecture"]: r for r in ranking.read_csv(path)})
    return known


PREFIX_RESCORE_FIELDS = ["method", "search_seed", "trial", "rescore", "rescore_seconds"]
RESCORED_PREFIXES = (12,)  # trial counts whose picks are also re-scored (12: mnist-8k's default)
RESCORE_K = 3


def rescores() -> dict[tuple[str, str], dict[int, float]]:
    """(method, search seed) -> {trial: val accuracy re-scored on all 55k images}, from ``rescored.csv`` and
    ``prefix_rescores.csv`` (both trained by :meth:`budgetnas.Run.rescore`: one seed per trial)."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    for r in ranking.read_csv(RESCORED):
        out.setdefault((r["method"], r["search_seed"]), {}).update(
            {int(t): v for t, v in json.loads(r["rescored"]).items()})
    for r in ranking.read_csv(PREFIX_RESCORES):
        out.setdefault((r["method"], r["search_seed"]), {})[int(r["trial"])] = float(r["rescore"])
    return out


def rescored_pick(trials: list[dict], n: int, k: int, scores: dict[int, float]) -> dict | None:
    """The pick of an ``n``-trial search with ``search.rescore = k``: the best re-scored candidate (then
    fewer params, as a run's leaderboard ranks them); None while a candidate's re-score is missing."""
    top = best_completed(trials, n, k)
    if not top or any(int(r["trial"]) not in scores for r in top):
        return None
    return min(top, key=lambda r: (-scores[int(r["trial"])], int(r["params"])))


def rescored_prefix_picks() -> dict[tuple[str, str, int], dict]:
    """(method, search seed, n) -> the re-scored n-trial pick's trials.csv row, where its re-scores exist."""
    scores = rescores()
    out = {}
    for key, mine in searches().items():
        for n in RESCORED_PREFIXES:
            chosen = rescored_pick(mine, n, RESCORE_K, scores.get(key, {}))
            if chosen is not None:
                out[(*key, n)] = chosen
    return out


def rescore_prefixes(part: tuple[int, int], data_dir: str | None) -> None:
    """Re-score (``search.rescore = 3``) the candidates of every ``RESCORED_PREFIXES`` prefix of the finished
    searches that no earlier row has re-scored (:meth:`budgetnas.Run.rescore`); a trial re-scored for the whole
    search is reused (same seed, same training). ``part`` as for :func:`prefix`."""
    import budgetnas

    scores = rescores()
    todo = sorted({(m, s, int(r["trial"])) for (m, s), mine in searches().items() for n in RESCORED_PREFIXES
                   for r in best_completed(mine, n, RESCORE_K) if int(r["trial"]) not in scores.get((m, s), {})},
                  key=lambda t: (t[0], int(t[1]), t[2]))
    k, every = part
    mine: dict[tuple[str, str], list[int]] = {}
    for method, seed, number in todo[k::every]:
        mine.setdefault((method, seed), []).append(number)
    for (method, seed), numbers in mine.items():
        clock = [time.perf_counter()]

        def saved(number: int, _search: float, acc: float, method=method, seed=seed) -> None:
            ranking.append_row(PREFIX_RESCORES, PREFIX_RESCORE_FIELDS,
                               {"method": method, "search_seed": seed, "trial": number, "rescore": f"{acc:.4f}",
                                "rescore_seconds": f"{time.perf_counter() - clock[0]:.0f}"})
            print(f"{time.strftime('%H:%M:%S')} {method}-s{seed} trial {number} re-scored: {acc:.4f}", flush=True)
            clock[0] = time.perf_counter()

        budgetnas.open_run(RUNS / f"{method}-s{seed}").rescore(trials=numbers, data_dir=data_dir, on_rescored=saved)


def prefix(part: tuple[int, int], data_dir: str | None) -> None:
    """Train, at full fidelity, every n-trial pick (n in ``PREFIXES``) of the finished searches that no
    earlier row has trained, and the re-scored picks of ``RESCORED_PREFIXES`` (re-scoring what is missing
    first); ``part`` (k, n): every n-th of them from the k-th, so processes can share."""
    import budgetnas

    rescore_prefixes(part, data_dir)
    todo: dict[str, tuple[str, str, int]] = {}
    for (method, seed, _), (chosen, _) in prefix_picks(PREFIXES).items():
        todo.setdefault(chosen["architecture"], (method, seed, int(chosen["trial"])))
    rescored = rescored_prefix_picks()
    if len(rescored) < len(searches()) * len(RESCORED_PREFIXES):  # parts share one list: wait for all re-scores
        print("re-scores still missing (another part is training them): run again when it ends", flush=True)
        rescored = {}
    for (method, seed, _), chosen in rescored.items():
        todo.setdefault(chosen["architecture"], (method, seed, int(chosen["trial"])))
    known = known_full_fidelity()
    k, every = part
    for arch, (method, seed, number) in [item for item in todo.items() if item[0] not in known][k::every]:
        net_id = f"{method}-s{seed}-t{number}"
        with (RUNS / f"{net_id}.lock").open("w") as lock:
            try:  # a process started later may list a network another one is still training
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            if arch in known_full_fidelity():  # trained meanwhile (e.g. a re-scored pick)
                continue
            rec = next(r for r in budgetnas.open_run(RUNS / f"{method}-s{seed}").records() if r.number == number)
            net = {"id": net_id, "architecture": arch, "values": json.dumps(rec.values, sort_keys=True)}
            print(f"{time.strftime('%H:%M:%S')} {method} seed {seed} trial {number}: {arch}", flush=True)
            row = ranking.train_one(net, 0, data_dir, checkpoint=RUNS / f"{net_id}.resume")
            ranking.append_row(PREFIX, PREFIX_FIELDS, {"architecture": arch, "values": net["values"],
                                                       "retrain_seconds": row["wall_seconds"],
                                                       **{f: row[f] for f in ("final_val_accuracy", "test_accuracy")}})
        print(f"{time.strftime('%H:%M:%S')}   full val {row['final_val_accuracy']} test {row['test_accuracy']}",
              flush=True)


def points(x: float) -> str:
    """A difference of accuracies in signed percentage points, with no "-0.00"."""
    return f"{round(100 * x, 2) + 0.0:+.2f}"


def cell(text: str) -> str:
    """Text for a Markdown table cell: an architecture's head separator must not end the cell."""
    return text.replace("|", "\\|")


def search_compute(method: str, seed: str) -> float:
    """Seconds spent training the search's trials (their own clocks: a resumed search counts every piece)."""
    return sum(float(r["wall_seconds"] or 0) for r in ranking.read_csv(TRIALS)
               if r["method"] == method and r["search_seed"] == seed)


def table() -> str:
    picks = ranking.read_csv(PICKS)
    for r in picks:
        r["search_seconds"] = search_compute(r["method"], r["search_seed"])
    truth = [r for r in ranking.read_csv(ranking.RESULTS) if r["seed"] == "0"]
    best_truth = max(truth, key=lambda r: float(r["final_val_accuracy"])) if truth else None
    truth_hours = sum(float(r["wall_seconds"]) for r in truth) / 3600
    conf = setup()
    lines = [f"# Search vs random search at equal compute (mnist-8k, {conf['hardware'].split(',')[0]})", "",
             "Each row: one `budgetnas search --budget mnist-8k --algorithm METHOD --seed SEED --no-retrain "
             f"--trials {conf['trials']}` (the budget's fidelity and pruner), then its pick trained once at full "
             "fidelity "
             "(15 epochs, 55k images, split and weight seed 0; validation = the 5,000-image split of the "
             "ranking benchmark). Validation chooses; test is reported only.", "",
             "| method | search seed | pick (trial) | params | val, search fidelity | val, full | test, full | "
             "trials (trained) | search: trial time |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in sorted(picks, key=lambda r: (r["method"] != "tpe", int(r["search_seed"]))):
        lines.append(f"| {r['method']} | {r['search_seed']} | `{cell(r['architecture'])}` ({r['trial']}) | "
                     f"{int(r['params']):,} | "
                     f"{100 * float(r['search_val_accuracy']):.2f}% | {100 * float(r['final_val_accuracy']):.2f}% | "
                     f"{100 * float(r['test_accuracy']):.2f}% | {r['search_trials']} ({r['search_trained']}) | "
                     f"{float(r['search_seconds']) / 60:.1f} min |")
    lines += ["", "| method | searches | mean val, full | mean test, full | mean search trial time |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for method in ("tpe", "random"):
        rows = [r for r in picks if r["method"] == method]
        if rows:
            def mean(k: str) -> float:
                return statistics.fmean(float(r[k]) for r in rows)
            lines.append(f"| {method} | {len(rows)} | {100 * mean('final_val_accuracy'):.2f}% | "
                         f"{100 * mean('test_accuracy'):.2f}% | {mean('search_seconds') / 60:.1f} min |")
    tpe, rnd = ([float(r["final_val_accuracy"]) for r in picks if r["method"] == m] for m in ("tpe", "random"))
    if len(tpe) > 1 and len(rnd) > 1:
        diff = statistics.fmean(tpe) - statistics.fmean(rnd)
        se = (statistics.variance(tpe) / len(tpe) + statistics.variance(rnd) / len(rnd)) ** 0.5
        lines += ["", f"Difference of the mean full-fidelity validation accuracies (tpe − random): "
                      f"{points(diff)} points, standard error {100 * se:.2f} points (from the spread of "
                      f"the picks){_paired(picks, 'final_val_accuracy')}; one pick's validation score alone "
                      f"carries ≈ 0.1 point of split noise and 0.07 of seed noise "
                      f"(`benchmarks/ranking/proxy_table.md`)."]
    if best_truth is not None:
        lines += ["", f"Ranking benchmark (`benchmarks/ranking/results.csv`, {len(truth)} networks trained at full "
                      f"fidelity, {truth_hours:.1f} CPU-process hours): best validation "
                      f"{100 * float(best_truth['final_val_accuracy']):.2f}% (network {best_truth['id']}, "
                      f"`{best_truth['architecture']}`)."]  # prose, not a table: no escaping
    lines += _rescored_lines()
    lines += _prefix_lines()
    lines += _rescored_prefix_lines()
    if conf["notes"]:
        lines += ["", conf["notes"]]
    folder = "" if OUT == DEFAULT_OUT else f" --out {OUT.relative_to(ROOT)}"
    lines += ["", f"Command: `python benchmarks/search_vs_random.py run{folder}` (then `rescore` and `prefix`), "
                  f"then `python benchmarks/search_vs_random.py table{folder}` ({conf['hardware']}).", ""]
    return "\n".join(lines)


def _rescored_lines() -> list[str]:
    rows = ranking.read_csv(RESCORED)
    if not rows:
        return []
    picks = {(r["method"], r["search_seed"]): r for r in ranking.read_csv(PICKS)}
    out = ["", "## The same searches with `search.rescore = 3`", "",
           "`python benchmarks/search_vs_random.py rescore`: each finished search's 3 best trials trained again on "
           "all 55k images for the search's 3 epochs, the pick made among them by that score; a changed pick "
           "is trained at full fidelity like every pick.", "",
           "| method | search seed | pick → re-scored pick | full-fidelity val, pick → re-scored pick | "
           "test (reported only) | re-scoring time |", "| --- | ---: | --- | --- | --- | ---: |"]
    for r in sorted(rows, key=lambda r: (r["method"], int(r["search_seed"]))):
        old = picks[(r["method"], r["search_seed"])]
        out.append(f"| {r['method']} | {r['search_seed']} | trial {r['old_pick']} → trial {r['new_pick']} | "
                   f"{100 * float(old['final_val_accuracy']):.2f}% → {100 * float(r['final_val_accuracy']):.2f}% | "
                   f"{100 * float(old['test_accuracy']):.2f}% → {100 * float(r['test_accuracy']):.2f}% | "
                   f"{float(r['rescore_seconds']) / 60:.1f} min |")
    diffs = [float(r["final_val_accuracy"]) - float(picks[(r["method"], r["search_seed"])]["final_val_accuracy"])
             for r in rows]
    out += ["", f"{len(rows)} searches re-scored; mean change of the pick's full-fidelity validation accuracy: "
                f"{points(statistics.fmean(diffs))} points."]
    means = {m: [float(r["final_val_accuracy"]) for r in rows if r["method"] == m] for m in ("tpe", "random")}
    if all(len(v) > 1 for v in means.values()):
        out += ["", "With re-scoring, mean full-fidelity validation accuracy of the picks: "
                    + ", ".join(f"{m} {100 * statistics.fmean(v):.2f}% ({len(v)} searches)" for m, v in means.items())
                    + f"{_paired(rows, 'final_val_accuracy')}."]
    return out


def _prefix_lines() -> list[str]:
    """What each search would have picked with fewer trials, and what that pick is worth at full fidelity."""
    picks, trials, known = ranking.read_csv(PICKS), ranking.read_csv(TRIALS), known_full_fidelity()
    n_all = max((int(r["search_trials"]) for r in picks), default=0)
    counts = (*(n for n in PREFIXES if n < n_all), n_all)
    chosen = {k: v for k, v in prefix_picks(counts).items() if v[0]["architecture"] in known}
    val = {k: float(known[r["architecture"]]["final_val_accuracy"]) for k, (r, _) in chosen.items()}
    minutes = {k: m for k, (_, m) in chosen.items()}
    # A trial count is shown only once every search's pick at it is trained (a subset would be a biased one).
    counts = tuple(n for n in counts if all((r["method"], r["search_seed"], n) in val for r in picks))
    if n_all not in counts or len(counts) < 2:
        return []
    row = {(t["method"], t["search_seed"], int(t["trial"])): (t["architecture"], t["status"], t["val_accuracy"])
           for t in trials}
    both = {r["search_seed"] for r in picks if r["method"] == "tpe"} & {r["search_seed"] for r in picks
                                                                       if r["method"] == "random"}
    start_same = bool(both) and all(row.get(("tpe", s, i)) == row.get(("random", s, i))
                                    for s in both for i in range(PREFIXES[0]))
    out = ["", "## The same searches stopped earlier", "",
           "A search's first n trials are exactly an n-trial search (one worker: each trial was proposed, trained "
           "and pruned from the trials before it), so each finished search also shows what 6, 8, 12 or 16 trials "
           "would have picked: the best completed trial among the first n. Those picks are trained at full "
           "fidelity like every pick (`python benchmarks/search_vs_random.py prefix`, `prefix.csv`; a network "
           "already trained in `picks.csv`, `rescored.csv` or the ranking benchmark is not trained again). "
           + (f"TPE's first {PREFIXES[0]} trials are its random start-up: in every search the same networks, "
              "statuses and scores as the random search of the same seed." if start_same else ""),
           "", "| trials | method | searches | mean val, full | change vs all trials (paired) | mean trial time |",
           "| ---: | --- | ---: | ---: | ---: | ---: |"]
    for n in counts:
        for method in ("tpe", "random"):
            seeds = [r["search_seed"] for r in picks if r["method"] == method
                     and (method, r["search_seed"], n) in val and (method, r["search_seed"], counts[-1]) in val]
            if not seeds:
                continue
            d = [val[(method, s, n)] - val[(method, s, counts[-1])] for s in seeds]
            se = f" ± {sem(d):.2f}" if len(d) > 1 else ""
            out.append(f"| {n} | {method} | {len(seeds)} | "
                       f"{100 * statistics.fmean(val[(method, s, n)] for s in seeds):.2f}% | "
                       f"{points(statistics.fmean(d))}{se} | "
                       f"{statistics.fmean(minutes[(method, s, n)] for s in seeds):.1f} min |")
    paired = []
    for n in counts:
        d = [val[("tpe", s, n)] - val[("random", s, n)] for (m, s, k) in val
             if m == "tpe" and k == n and ("random", s, n) in val]
        if len(d) > 1:
            paired.append(f"{n} trials {points(statistics.fmean(d))} ± {sem(d):.2f} ({len(d)} pairs)")
    if paired:
        out += ["", "tpe − random at the same trial count, paired by search seed: " + "; ".join(paired) + "."]
    return out


def _rescored_prefix_lines() -> list[str]:
    """The n-trial searches (n in ``RESCORED_PREFIXES``) with ``search.rescore = 3``, against the plain picks and
    against random search at about the same compute."""
    known, rescored = known_full_fidelity(), rescored_prefix_picks()
    n_all = max((int(r["search_trials"]) for r in ranking.read_csv(PICKS)), default=0)
    counts = (*RESCORED_PREFIXES, n_all)
    picked = prefix_picks(counts)
    plain = {k: known[r["architecture"]] for k, (r, _) in picked.items() if r["architecture"] in known}
    minutes = {k: m for k, (_, m) in picked.items()}
    seconds = [float(r["rescore_seconds"]) for r in ranking.read_csv(PREFIX_RESCORES)]
    if not seconds:
        return []
    each = statistics.median(seconds) / 60
    out = ["", f"## The {'- and '.join(map(str, RESCORED_PREFIXES))}-trial searches with `search.rescore = {RESCORE_K}`",
           "", f"The same prefixes, re-scored: the {RESCORE_K} best completed trials among the first n trained again "
           f"on all 55k images for 3 epochs (`budgetnas.Run.rescore`; a trial's re-scoring seed is fixed, so "
           f"one already re-scored for the whole search is reused), the pick made by that score and trained at full "
           f"fidelity (`python benchmarks/search_vs_random.py prefix`, `prefix_rescores.csv`). One re-scoring "
           f"training took {each:.1f} min (median of {len(seconds)}).", "",
           "| trials | method | searches | mean val, full: pick → re-scored pick | change (paired) | "
           "better / worse | trial time + re-scoring |", "| ---: | --- | ---: | --- | ---: | ---: | ---: |"]
    val = {}
    for n in RESCORED_PREFIXES:
        for method in ("tpe", "random"):
            keys = [k for k in rescored if k[0] == method and k[2] == n and k in plain
                    and rescored[k]["architecture"] in known]
            if not keys:
                continue
            before = [float(plain[k]["final_val_accuracy"]) for k in keys]
            after = [float(known[rescored[k]["architecture"]]["final_val_accuracy"]) for k in keys]
            val.update({k: a for k, a in zip(keys, after)})
            d = [a - b for a, b in zip(after, before)]
            out.append(f"| {n} | {method} | {len(keys)} | {100 * statistics.fmean(before):.2f}% → "
                       f"{100 * statistics.fmean(after):.2f}% | {points(statistics.fmean(d))}"
                       f"{f' ± {sem(d):.2f}' if len(d) > 1 else ''} | {sum(x > 0 for x in d)} / {sum(x < 0 for x in d)} | "
                       f"{statistics.fmean(minutes[k] for k in keys) + RESCORE_K * each:.1f} min |")
    lines = []
    for n in RESCORED_PREFIXES:
        d = [val[("tpe", s, n)] - val[("random", s, n)] for (m, s, k) in val if m == "tpe" and k == n
             and ("random", s, n) in val]
        if len(d) > 1:
            lines.append(f"tpe − random, both re-scored after {n} trials: {points(statistics.fmean(d))} ± {sem(d):.2f} "
                         f"({len(d)} pairs)")
        d = [val[("tpe", s, n)] - float(plain[("random", s, n_all)]["final_val_accuracy"]) for (m, s, k) in val
             if m == "tpe" and k == n and ("random", s, n_all) in plain]
        if len(d) > 1:
            lines.append(f"tpe re-scored after {n} trials − random after {n_all} (about the same minutes): "
                         f"{points(statistics.fmean(d))} ± {sem(d):.2f} ({len(d)} pairs)")
    if lines:
        out += ["", "Paired by search seed: " + "; ".join(lines) + "."]
    return out


def sem(d: list[float]) -> float:
    """Standard error of the mean of ``d``, in percentage points."""
    return 100 * statistics.stdev(d) / len(d) ** 0.5


def _paired(rows: list[dict], field: str) -> str:
    """tpe − random per search seed (both start from the same random trials), as text; empty without pairs."""
    by = {(r["method"], r["search_seed"]): float(r[field]) for r in rows}
    d = [by[("tpe", s)] - by[("random", s)] for (m, s) in by if m == "tpe" and ("random", s) in by]
    if len(d) < 2:
        return ""
    return (f"; paired by search seed ({len(d)} pairs): {points(statistics.fmean(d))} points, standard error "
            f"{sem(d):.2f}, tpe ahead in {sum(x > 0 for x in d)}, behind in "
            f"{sum(x < 0 for x in d)}")


def main(argv: list[str] | None = None) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    common.add_argument("--data-dir", default=None)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", parents=[common])
    r.add_argument("--methods", nargs="+", default=["tpe", "random"], choices=["tpe", "random"])
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--trials", type=int, default=None, help="trials per search, fixed when the folder is new")
    r.add_argument("--hardware", default=None, help="what runs it, for the table (a new folder only)")
    rs = sub.add_parser("rescore", parents=[common])
    rs.add_argument("--methods", nargs="+", default=["tpe", "random"], choices=["tpe", "random"])
    rs.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    rs.add_argument("--k", type=int, default=3)
    px = sub.add_parser("prefix", parents=[common], help="train the picks the searches would have made with fewer "
                                                         "trials")
    px.add_argument("--part", default="0/1", help="k/n: every n-th network from the k-th (n processes)")
    sub.add_parser("table", parents=[common])
    args = ap.parse_args(argv)
    use_folder(args.out.resolve())
    if args.cmd == "run":
        new = {k: v for k, v in (("trials", args.trials), ("hardware", args.hardware)) if v is not None}
        if SETUP.exists() and any(setup()[k] != v for k, v in new.items()):
            sys.exit(f"{SETUP}: this folder's searches run {setup()['trials']} trials on {setup()['hardware']!r}; "
                     "name another --out")
        if new and not SETUP.exists():
            OUT.mkdir(parents=True, exist_ok=True)
            SETUP.write_text(json.dumps({**setup(), **new}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        run(args.methods, args.seeds, args.data_dir)
    elif args.cmd == "rescore":
        rescore(args.methods, args.seeds, args.k, args.data_dir)
    elif args.cmd == "prefix":
        k, n = (int(v) for v in args.part.split("/"))
        prefix((k, n), args.data_dir)
    else:
        text = table()
        TABLE.write_text(text, encoding="utf-8")
        print(text)


if __name__ == "__main__":
    main()
