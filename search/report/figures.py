"""Matplotlib figures for reports (pure: each returns a Figure; the caller saves it)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from budgetnas.finalists import Finalist  # noqa: E402
from budgetnas.runs import TrialRecord  # noqa: E402


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
            ax_loss.plot(ep, h["loss"], color=c, lw=1, ls="--", alpha=0.7)
            ax_acc.plot(ep, h["accuracy"], color=c, lw=1, ls="--", alpha=0.7)
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


def pareto(records: list[TrialRecord]) -> list[TrialRecord]:
    """Completed trials not beaten by one with fewer (or equal) params and higher accuracy."""
    done = sorted((r for r in records if r.status == "complete" and r.val_accuracy is not None),
                  key=lambda r: (r.params or 0, -(r.val_accuracy or 0)))
    front, best = [], -1.0
    for r in done:
        if (r.val_accuracy or 0) > best:
            front.append(r)
            best = r.val_accuracy or 0
    return front


def accuracy_vs_params(records: list[TrialRecord], max_params: int) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"complete": ("o", "tab:blue"), "pruned": ("x", "tab:orange"), "running": ("s", "tab:gray")}
    for status, (marker, color) in styles.items():
        pts = [(r.params, r.val_accuracy) for r in records if r.status == status and r.val_accuracy is not None]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, color=color, label=status, alpha=0.8)
    front = pareto(records)
    if front:
        ax.step([r.params for r in front], [r.val_accuracy for r in front], where="post", color="tab:green",
                label="Pareto front")
    ax.axvline(max_params, color="tab:red", ls="--", label=f"budget {max_params:,}")
    ax.set(xlabel="parameters", ylabel="validation accuracy (search fidelity)",
           title="validation accuracy vs parameter count")
    scored = [r.val_accuracy for r in records if r.val_accuracy is not None]
    if scored:
        ax.set_ylim(max(0.0, sorted(scored)[len(scored) // 4] - 0.02), min(1.0, max(scored) + 0.005))
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
