"""The accuracy–size front: dominance, non-dominated sorting, the rung rule of a front search, hypervolume.

Pure numerics on (accuracy, cost) pairs: accuracy is maximised, cost (total params or MACs) minimised.
A point *dominates* another when it is at least as accurate and at most as costly, and strictly better in
one of the two. The front of a set is its non-dominated points.

Optuna samples multi-objective studies but cannot prune them (``trial.report`` raises in a
multi-objective study), so a front search prunes with :func:`promote`: at a rung, a candidate goes on
when it sits in the best ``1/reduction`` of the candidates that reached the rung, ordered by
non-dominated sorting (the successive-halving idea of MO-ASHA, Schmucker et al. 2021). Ties at the
boundary go on, and while fewer than ``reduction`` others have reached the rung nobody is stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

COSTS = ("params", "macs")  # the second objective of a front search


@dataclass(frozen=True)
class Point:
    accuracy: float
    cost: float


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as accurate and at most as costly as ``b``, and strictly better in one."""
    return a.accuracy >= b.accuracy and a.cost <= b.cost and (a.accuracy > b.accuracy or a.cost < b.cost)


def fronts(points: Sequence[Point]) -> list[int]:
    """Non-dominated sorting: the front index of every point (0: not dominated by any point, 1: only by
    points of front 0, ...). Two equal points share a front."""
    rank = [-1] * len(points)
    left = set(range(len(points)))
    level = 0
    while left:
        layer = {i for i in left if not any(dominates(points[j], points[i]) for j in left if j != i)}
        for i in layer:
            rank[i] = level
        left -= layer
        level += 1
    return rank


def pareto(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points, by cost (then accuracy, best first)."""
    rank = fronts(points)
    keep = [i for i, r in enumerate(rank) if r == 0]
    return sorted(keep, key=lambda i: (points[i].cost, -points[i].accuracy))


def promote(own: Point, others: Iterable[Point], reduction: int) -> bool:
    """Whether a candidate at a rung goes on: among itself and the ``others`` that reached the rung,
    sorted by front, it is within the first ``ceil(n / reduction)`` (a tie with the last of them goes on).
    With fewer than ``reduction`` others there is no company to be judged against: it goes on."""
    others = list(others)
    if len(others) < reduction:
        return True
    pts = [own, *others]
    rank = fronts(pts)
    keep = math.ceil(len(pts) / reduction)
    boundary = sorted(rank)[keep - 1]
    return rank[0] <= boundary


def hypervolume(points: Iterable[Point], ref: Point, log_cost: bool = True) -> float:
    """The area dominated by ``points`` and bounded by ``ref`` (accuracy below it, cost above it count
    nothing). With ``log_cost`` the cost axis is log10 (a front spanning 1k to 15k params weighs each
    doubling alike). Accuracy in the units given (fractions: an area in fraction × decades)."""
    def x(c: float) -> float:
        return math.log10(c) if log_cost else c

    pts = [p for p in points if p.accuracy > ref.accuracy and p.cost < ref.cost]
    if not pts:
        return 0.0
    front = [pts[i] for i in pareto(pts)]  # by cost ascending, so accuracy ascends along it
    area = 0.0
    for i, p in enumerate(front):
        right = x(front[i + 1].cost) if i + 1 < len(front) else x(ref.cost)
        area += (right - x(p.cost)) * (p.accuracy - ref.accuracy)
    return area


def spread(points: Sequence[Point], k: int) -> list[int]:
    """``k`` indices of the front of ``points`` spread along it: the front's points nearest to ``k`` costs
    evenly spaced in log10 between its cheapest and its costliest point (each point at most once)."""
    front = pareto(points)
    if k >= len(front):
        return front
    if k == 1:
        return [max(front, key=lambda i: points[i].accuracy)]
    lo, hi = math.log10(points[front[0]].cost), math.log10(points[front[-1]].cost)
    chosen: list[int] = []
    for j in range(k):
        target = lo + (hi - lo) * j / (k - 1)
        free = [i for i in front if i not in chosen]
        chosen.append(min(free, key=lambda i: abs(math.log10(points[i].cost) - target)))
    return sorted(chosen, key=lambda i: points[i].cost)


def cost_of(rec, cost: str = "params") -> float | None:
    """A trial record's cost: its total params or its MACs."""
    return rec.params if cost == "params" else rec.macs


def front_records(records, cost: str = "params") -> list:
    """The completed trials on the front of validation accuracy against ``cost``, cheapest first."""
    done = [r for r in records if r.status == "complete" and r.val_accuracy is not None and cost_of(r, cost)]
    pts = [Point(r.val_accuracy, cost_of(r, cost)) for r in done]
    return [done[i] for i in pareto(pts)]


def best_under(records, limits: dict[str, int]) -> dict[str, object]:
    """For each named limit (a budget's max params), the completed trial with the best validation accuracy
    within it (fewer params on a tie); a limit no trial fits is left out."""
    done = [r for r in records if r.status == "complete" and r.val_accuracy is not None and r.params]
    out = {}
    for name, limit in limits.items():
        fit = [r for r in done if r.params <= limit]
        if fit:
            out[name] = max(fit, key=lambda r: (r.val_accuracy, -r.params))
    return out
