"""Matplotlib figures for reports (pure: each returns a Figure; the caller saves it)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from budgetnas.finalists import Finalist  # noqa: E402
from budgetnas.run.folder import TrialRecord  # noqa: E402


def learning_curves(finalists: list[Finalist]) -> Figure:
    """Train/validation loss and accuracy per epoch for every finalist (all seeds, thin lines)."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, f in enumerate(finalists):
        c = colors[i % len(colors)]
        for j, s in enumerate(f.seeds):
            h = s.history
            ep = range(1, len(h["loss"]) + 1)
            label = f.label if j == 0 else None
            train_label = None if h.get("val_loss") else label  # a final fit on all images has no validation
            ax_loss.plot(ep, h["loss"], color=c, lw=1, ls="--", alpha=0.7, label=train_label)
            ax_acc.plot(ep, h["accuracy"], color=c, lw=1, ls="--", alpha=0.7, label=train_label)
            if h.get("val_loss"):
                ax_loss.plot(ep, h["val_loss"], color=c, lw=1.5, label=label)
                ax_acc.plot(ep, h["val_accuracy"], color=c, lw=1.5, label=label)
    ax_loss.set(title="loss (dashed: train, solid: validation)", xlabel="epoch", ylabel="loss")
    ax_acc.set(title="accuracy (dashed: train, solid: validation)", xlabel="epoch", ylabel="accuracy")
    accs = [a for f in finalists for s in f.seeds for a in s.history.get("val_accuracy", [])]
    if accs:
        ax_acc.set_ylim(max(0.0, sorted(accs)[len(accs) // 4] - 0.02), 1.0)
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    return fig


def accuracy_vs_params(records: list[TrialRecord], max_params: int, limits: dict[str, int] | None = None,
                       baselines: list[tuple[str, int, float]] = (), log_x: bool = False) -> Figure:
    """Every trial's validation accuracy against its params, the front (:func:`budgetnas.front.front_records`),
    a line at the budget, or at each of ``limits`` (name → max params), and ``baselines`` (label, params,
    accuracy) as stars; ``log_x`` for a front that spans decades."""
    from budgetnas.front import front_records

    fig, ax = plt.subplots(figsize=(7.5 if limits else 7, 4.5))
    styles = {"complete": ("o", "tab:blue"), "pruned": ("x", "tab:orange"), "running": ("s", "tab:gray")}
    for status, (marker, color) in styles.items():
        pts = [(r.params, r.val_accuracy) for r in records if r.status == status and r.val_accuracy is not None]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, color=color, label=status, alpha=0.8)
    front = front_records(records)
    if front:
        ax.step([r.params for r in front], [r.val_accuracy for r in front], where="post", color="tab:green",
                label="Pareto front")
    lines = limits or {f"budget {max_params:,}": max_params}
    for i, (name, limit) in enumerate(sorted(lines.items(), key=lambda kv: kv[1])):
        ax.axvline(limit, color="tab:red", ls=("--", ":", "-.")[i % 3], lw=1, label=f"{name} ≤ {limit:,}")
    for label, params, acc in baselines:
        ax.scatter([params], [acc], marker="*", s=140, color="black", zorder=5, label=label)
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel="parameters" + (" (log scale)" if log_x else ""), ylabel="validation accuracy (search fidelity)",
           title="validation accuracy vs parameter count")
    scored = [r.val_accuracy for r in records if r.val_accuracy is not None] + [b[2] for b in baselines]
    if scored:
        low = sorted(scored)[len(scored) // 4]  # the weakest quarter of a fixed-budget search is noise to skip,
        if front:                                # but every point of a front is an answer: all of it shows
            low = min([low] + [r.val_accuracy for r in front])
        ax.set_ylim(max(0.0, low - 0.02), min(1.0, max(scored) + 0.005))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def best_so_far(records: list[TrialRecord]) -> Figure:
    """Best completed validation accuracy against cumulative search time."""
    fig, ax = plt.subplots(figsize=(7, 4))
    t, best, xs, ys = 0.0, None, [], []
    for r in sorted(records, key=lambda r: r.number):
        t += r.wall_seconds
        if r.status == "complete" and r.val_accuracy is not None and (best is None or r.val_accuracy > best):
            best = r.val_accuracy
        if best is not None:
            xs.append(t / 60)
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post")
    ax.set(xlabel="search time (minutes, trials back to back)", ylabel="best validation accuracy",
           title="search progress")
    fig.tight_layout()
    return fig


def confusion(matrix: list[list[int]], title: str) -> Figure:
    import numpy as np

    m = np.array(matrix)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(np.log1p(m), cmap="Blues")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if i == j else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title, xticks=range(m.shape[1]), yticks=range(m.shape[0]))
    fig.tight_layout()
    return fig
