"""The run report: ``report.md``, a self-contained ``report.html`` (plots embedded), ``trials.csv``.

``render_markdown`` and ``trials_csv`` are pure; :func:`write_report` saves the files and figures.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from pathlib import Path
from typing import Any

from budgetnas import files, gate
from budgetnas.budget import Budget
from budgetnas.finalists import Finalist, Unfinished, target_verdict, unfinished as unfinished_seeds, winner
from budgetnas.report.layers import fmt_pair, layer_markdown
from budgetnas.run.folder import RunMeta, TrialRecord, ranked
from budgetnas.space import Space

FIGURES = {
    "curves.png": "Learning curves of the finalists",
    "accuracy_vs_params.png": "Validation accuracy against parameter count (all trials)",
    "best_so_far.png": "Best validation accuracy over search time",
    "confusion.png": "Confusion matrix of the winner (test set, chosen seed)",
}


NOTATION = (
    "One token per block: `C` conv, `S` separable, `D` depthwise (`Dx2`: depth multiplier 2), `P` pointwise "
    "1×1, then the channel count; suffixes `k5` kernel 5 (3 if absent), `s2` stride 2, `d2` dilation 2, `p` "
    "same padding (valid if absent), `b` BatchNorm after the activation, `B` BatchNorm before it, `~0.1` "
    "dropout rate. `M` / `A`: 2×2 max / average pool (`M3`: 3×3). After `|`, the head: `gap-conv` (global "
    "average pool + 1×1 conv), `gap-separable`, `gap-dense`, `shrink-conv` (a conv over the whole remaining "
    "map), `flatten-dense-64`; `+bn` adds BatchNorm. `(S64pB S64pB)+`: a residual block, whose output is "
    "added to its input (through a 1×1 projection of the same layer kind when width or stride changes).")


def front_markdown(records: list[TrialRecord], max_params: int, cost: str, limits: dict[str, int]) -> list[str]:
    """The front section of a front search's report: its points, cheapest first, and the best trial under
    each named budget that fits (both at the search's fidelity, on validation)."""
    from budgetnas.front import best_under, front_records
    from budgetnas.report.leaderboard import pct

    out = ["## Front", "", f"Completed trials not beaten by one at most as costly ({cost}) and more accurate, at the "
           "search's fidelity (validation accuracy).", "",
           "| trial | params | % budget | MACs | val acc | fits | architecture |",
           "| ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in front_records(records, cost):
        fits = ", ".join(n for n, m in limits.items() if (r.params or 0) <= m)
        out.append(f"| {_trial(r)} | {r.params:,} | {100 * (r.params or 0) / max_params:.1f} | "
                   f"{(r.macs or 0) / 1e6:.2f}M | {pct(r.val_accuracy)} | {fits} | `{_cell(r.architecture)}` |")
    best = best_under(records, limits)
    if best:
        out += ["", "Best trial under each named budget (validation, search fidelity):", ""]
        out += [f"- `{n}` (≤ {limits[n]:,}): trial {r.number}, {r.params:,} params, {pct(r.val_accuracy)}"
                for n, r in best.items()]
    return out + [""]


def _trial(r: TrialRecord) -> str:
    """A trial's number, with the start point it trained (``0 (golf_820)``) if it was one."""
    return f"{r.number} ({r.start})" if r.start else str(r.number)


def retrained_front_markdown(finalists: list[Finalist], records: list[TrialRecord]) -> list[str]:
    """The finalists of a front retrain as a front again, at full fidelity: each one's final validation mean
    (what chooses) and test mean, and whether another finalist dominates it on (params, validation mean): then
    it is off the retrained front. Empty with fewer than two finalists scored on validation."""
    from budgetnas.front import Point, pareto
    from budgetnas.report.leaderboard import pct

    scored = sorted((f for f in finalists if f.val_mean is not None and f.seeds), key=lambda f: (f.params, f.label))
    if len(scored) < 2:
        return []
    on = set(pareto([Point(f.val_mean, f.params) for f in scored]))
    start = {r.number: r.start for r in records if r.start}
    out = ["## Front after retraining", "",
           "The finalists at full fidelity, cheapest first: validation mean at the final epoch (it chooses) and test "
           "mean (it reports). A finalist is on the retrained front unless another has no more params and a validation "
           "mean at least as high, and is better in one of the two.", "",
           "| finalist | start point | params | val mean | test mean ± std | on the front |",
           "| --- | --- | ---: | ---: | ---: | --- |"]
    for i, f in enumerate(scored):
        out.append(f"| {f.label} | {start.get(f.trial, '')} | {f.params:,} | {pct(f.val_mean)} | {f.spread} | "
                   f"{'yes' if i in on else 'no'} |")
    return out + [""]


def render_markdown(meta: RunMeta | None, budget: Budget, space: Space, records: list[TrialRecord],
                    finalists: list[Finalist], protocol: dict[str, Any], figures: list[str],
                    unfinished: list[Unfinished] = (), limits: dict[str, int] | None = None) -> str:
    from budgetnas.report.leaderboard import pct, score_text, summary_line

    out = [f"# budgetnas report — {meta.name if meta else protocol.get('name', '')}", ""]
    rules = [f"dataset `{budget.dataset}`", f"≤ {budget.max_params:,} {budget.count} params",
             f"{budget.epochs} epochs"]
    if budget.forbidden_layers:
        rules.append("forbidden layers: " + ", ".join(budget.forbidden_layers))
    if budget.require_batchnorm:
        rules.append("BatchNorm required")
    if budget.require_dropout:
        rules.append("dropout required")
    if budget.min_final_rf:
        rules.append(f"final receptive field ≥ {budget.min_final_rf}")
    if budget.max_macs:
        rules.append(f"≤ {budget.max_macs:,} MACs")
    out += [f"## Budget `{budget.name}`", "", budget.description, "", "Rules: " + "; ".join(rules) + ".", ""]
    if budget.target is not None:
        out.append(f"Target: test accuracy ≥ {pct(budget.target)}. Baseline: {budget.baseline_note or '—'}.")
        out.append("")
    seed = protocol.get("seed", meta.seed if meta else None)
    out += ["## Protocol", "",
            f"- Space: `{Path(protocol.get('space', space.path)).name}`; seed {seed}.",
            f"- Selection: validation split of {protocol.get('validation', budget.validation)} images carved "
            "(stratified, seeded) from the training set; the search ranks candidates by validation accuracy only."]
    if finalists:
        out += [f"- Scoring: each finalist retrains on the remaining {protocol.get('train_images')} training images "
                f"for {protocol.get('epochs')} epochs with seeds {protocol.get('seeds')}; the test set "
                f"({protocol.get('test_images')} images) is evaluated once per seed, after the final epoch.",
                "- Winner: the searched finalist with the best mean final *validation* accuracy over its seeds; "
                "exported weights: its seed with the best final validation accuracy (neither is chosen on test).",
                ""]
        if protocol.get("final_fit") == "all":
            out.insert(-1, "- Final fit: the winner's seeds then train again on all training images (train + "
                           "validation) for the same epochs; that fit is what the test scores and the export holds "
                           "(its first seed: no validation images are left to choose by).")
    else:
        out += ["- Scoring: no finalist retrained yet (`budgetnas retrain RUN`); the test set is untouched.", ""]
    if meta is not None:
        out += ["## Search", "", f"- {summary_line(records)}.",
                f"- Up to {meta.max_epochs} epochs per candidate on "
                f"{meta.train_subset or 'all'} training images; training time of all trials, summed "
                f"(several workers overlap it): {sum(r.wall_seconds for r in records) / 60:.1f} min.", ""]
        if meta.objective == "front":
            out += front_markdown(records, budget.max_params, meta.cost, limits or {})
        out += ["| # | trial | params | % budget | MACs | val acc | epochs | status | architecture |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        for i, r in enumerate(ranked(records)[:10], 1):
            out.append(f"| {i} | {r.number} | {r.params:,} | {100 * (r.params or 0) / budget.max_params:.1f} | "
                       f"{(r.macs or 0) / 1e6:.2f}M | {score_text(r)} | {r.epochs} | {r.status} | "
                       f"`{_cell(r.architecture)}` |")
        out.append("")
    if finalists:
        out += ["## Finalists (test accuracy at the final epoch)", "",
                "| finalist | params | MACs | val acc (search) | val mean, final epoch (chooses) | test mean ± std "
                "| test min | seeds | train time |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for f in finalists:
            out.append(f"| {f.label} | {f.params:,} | {f.macs / 1e6:.2f}M | {pct(f.val_accuracy_search)} | "
                       f"{pct(f.val_mean)} | "
                       f"{f.spread} | {pct(f.minimum)} | {len(f.seeds)} | "
                       f"{f.train_seconds / 60:.1f} min |")
        out.append("")
        if meta is not None and meta.objective == "front":
            out += retrained_front_markdown(finalists, records)
        w = winner(finalists)
        if budget.target is not None and w is not None and protocol.get("test_images"):
            out += [f"**{target_verdict(w, budget.target, protocol['test_images'])}**", ""]
        for f in finalists:
            verdict = gate.judge(budget, space, f.values)
            recipe = ", ".join(f"{k} {v}" for k, v in f.recipe.items())
            out += [f"### {f.label}", "", f"Architecture: `{f.architecture}`", "",
                    f"Training: {f.epochs} epochs; {recipe}.", "",
                    *[line for note in f.training_notes() for line in (note, "")],
                    "Per seed, final validation / test accuracy: "
                    + ", ".join(f"seed {s.seed}: {pct(s.final_val_accuracy)} / {pct(s.test_accuracy)}"
                                for s in f.seeds), "",
                    "Values: `" + json.dumps(f.values) + "`", ""]
            if verdict.table is not None:
                out += [layer_markdown(verdict.table), ""]
    if unfinished:
        out += ["## Retraining not finished yet", "",
                "Seeds stopped (or still running) at their last epoch checkpoint: no test accuracy yet. "
                + (f"`budgetnas retrain {meta.name} --resume` continues them." if meta else
                   f"`budgetnas train SPACE --name {protocol.get('name')} --resume` continues them."), "",
                "| finalist | seed | epochs done | last val acc | best val acc | train time |",
                "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for u in unfinished:
            last = u.val_accuracy[-1] if u.val_accuracy else None
            best = max(u.val_accuracy) if u.val_accuracy else None
            out.append(f"| {u.name} | {u.seed} | {u.epochs_done} / {u.epochs} | {pct(last)} | {pct(best)} | "
                       f"{u.train_seconds / 60:.1f} min |")
        out.append("")
    for name in figures:
        out += [f"![{FIGURES[name]}]({name})", ""]
    out += ["## Architecture notation", "", NOTATION, ""]
    return "\n".join(out)


def markdown_to_html(md: str, folder: Path, title: str) -> str:
    """The report as one self-contained HTML page: Python-Markdown renders it, images are inlined."""
    import markdown

    def inline(m: re.Match) -> str:
        data = base64.b64encode((folder / m.group(2)).read_bytes()).decode()
        return f"![{m.group(1)}](data:image/png;base64,{data})"

    md = re.sub(r"^!\[([^\]]*)\]\(([^)]+\.png)\)$", inline, md, flags=re.M)
    # GitHub needs a pipe escaped even inside a code span in a table; Python-Markdown does not (it keeps code
    # spans whole) and would show the backslash: unescape inside code spans
    md = re.sub(r"`[^`\n]*`", lambda m: m.group(0).replace("\\|", "|"), md)
    body = markdown.markdown(md, extensions=["tables"], output_format="html")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
             "th{background:#f3f3f3}img{max-width:100%}code{background:#f6f6f6}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>")


def _cell(text: str) -> str:
    """Text for a markdown table cell: a literal pipe must be escaped."""
    return text.replace("|", "\\|")


def trials_csv(records: list[TrialRecord]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["number", "status", "params", "trainable_params", "macs", "final_rf", "val_accuracy", "epochs",
                "steps", "wall_seconds", "architecture", "reason", "repairs", "values", "curve", "rescore", "start"])
    for r in records:
        w.writerow([r.number, r.status, r.params, r.trainable_params, r.macs,
                    fmt_pair(r.final_rf) if r.final_rf else "", r.val_accuracy, r.epochs, r.steps,
                    round(r.wall_seconds, 2), r.architecture, r.reason, "; ".join(r.repairs),
                    json.dumps(r.values), json.dumps(r.curve), "" if r.rescore is None else r.rescore, r.start])
    return buf.getvalue()


def write_report(folder: Path, meta: RunMeta | None, budget: Budget, space: Space, records: list[TrialRecord],
                 finalists: list[Finalist], protocol: dict[str, Any], limits: dict[str, int] | None = None,
                 baselines: list[tuple[str, int, float]] = ()) -> list[Path]:
    """Write every report file into ``folder``; returns their paths. A front search's report draws ``limits``
    (named budgets: name → max params) and ``baselines`` (label, params, accuracy) on its log-x plot."""
    import matplotlib.pyplot as plt

    from budgetnas.report import figures as figs

    made: list[tuple[str, Any]] = []
    if finalists:
        made.append(("curves.png", figs.learning_curves(finalists)))
    if records:
        front = meta is not None and meta.objective == "front"
        made.append(("accuracy_vs_params.png", figs.accuracy_vs_params(
            records, budget.max_params, limits if front else None, baselines if front else (), log_x=front)))
        made.append(("best_so_far.png", figs.best_so_far(records)))
    w = winner(finalists)
    if w is not None:
        made.append(("confusion.png", figs.confusion(w.chosen_seed().confusion, f"{w.label} — test set")))
    paths = []
    for name, fig in made:
        with files.replacing(folder / name) as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        paths.append(folder / name)
    md = render_markdown(meta, budget, space, records, finalists, protocol, [n for n, _ in made],
                         unfinished_seeds(folder / "finalists"), limits)
    files.write_text(folder / "report.md", md)
    title = f"budgetnas — {meta.name if meta else budget.name}"
    files.write_text(folder / "report.html", markdown_to_html(md, folder, title))
    files.write_text(folder / "trials.csv", trials_csv(records))
    return paths + [folder / "report.md", folder / "report.html", folder / "trials.csv"]
