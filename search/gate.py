"""The budget gate: every driver calls :func:`admit` before a candidate is trained (its three jobs, :func:`repair`,
:func:`judge` and :func:`judge_built`, are callable alone).

It resolves the chosen values, repairs over-budget candidates by shrinking channel widths
(cheap, on the pure-Python plan), then builds the Keras model and judges *that* model: the
parameter count is exactly what Keras reports. The verdict lists every reason a candidate
breaks the budget; a rejected candidate never reaches training.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from budgetnas.budget import Budget, Candidate
from budgetnas.build import build_model, plan
from budgetnas.errors import OverBudgetError
from budgetnas.receptive import LayerTable, table_from_model, table_from_plan
from budgetnas.report.layers import fmt_pair
from budgetnas.space import Space

_MAX_REPAIR_STEPS = 200
_UNBUILT = 10**15  # the "params" of a candidate whose plan stops (a collapsed map, a shared block's width)


@dataclass(frozen=True)
class Verdict:
    """A network judged against a budget: a candidate of a space (:func:`judge`, :func:`admit`) or a Keras model
    built by hand (``budgetnas.check``). ``ok`` when ``violations`` is empty.

    ``values`` are the values actually built (after repair; empty for a model built by hand); ``repairs`` says
    what changed; ``counted_params`` is what the budget limits (Keras "Total params", or trainable ones).
    """

    ok: bool
    violations: tuple[str, ...]
    values: Mapping[str, Any]
    repairs: tuple[str, ...] = ()
    total_params: int = 0
    trainable_params: int = 0
    macs: int = 0
    final_rf: tuple[float, float] = (0.0, 0.0)
    architecture: str = ""
    table: LayerTable | None = field(default=None, repr=False, compare=False)
    budget: str = ""
    counted_params: int = 0
    max_params: int = 0

    def summary(self) -> str:
        """One line each: the network and its counts, what repair changed, the verdict with every broken rule."""
        head = f"{self.architecture}: total params" if self.architecture else "Total params"
        lines = [f"{head} {self.total_params:,} (trainable {self.trainable_params:,}), "
                 f"MACs {self.macs:,}, RF before the head {fmt_pair(self.final_rf)}"]
        if self.repairs:
            lines.append("repaired: " + ", ".join(self.repairs))
        name = f" {self.budget}" if self.budget else ""
        if self.ok:
            lines.append(f"within budget{name}" + (f" ({self.counted_params:,} of {self.max_params:,} params)"
                                                   if self.max_params else ""))
        else:
            lines.append(f"breaks budget{name}: " + "; ".join(self.violations))
        return "\n".join(lines)

    def __str__(self) -> str:
        """The per-layer table as Markdown (when there is one), then :meth:`summary`: for a log or a file."""
        from budgetnas.report.layers import layer_markdown

        return (layer_markdown(self.table) + "\n\n" if self.table else "") + self.summary()

    def _repr_html_(self) -> str:
        """In Jupyter: the per-layer table (when the plan has one), then :meth:`summary`."""
        import html

        colour = "green" if self.ok else "#b00"
        lines = "<br>".join(html.escape(line) for line in self.summary().splitlines())
        return (self.table._repr_html_() if self.table else "") + f"<p style='color:{colour}'>{lines}</p>"

    def __rich__(self):
        from rich.console import Group

        return Group(*([self.table] if self.table else []), self.summary())

    def as_dict(self) -> dict[str, Any]:
        return {
            "within_budget": self.ok, "violations": list(self.violations), "values": dict(self.values),
            "repairs": list(self.repairs), "total_params": self.total_params,
            "trainable_params": self.trainable_params, "macs": self.macs,
            "final_rf": list(self.final_rf), "architecture": self.architecture,
        }


def counted(budget: Budget, table: LayerTable) -> int:
    """The parameter count the budget limits (Keras Total params, or trainable only)."""
    return table.trainable_params if budget.count == "trainable" else table.total_params


def violations(budget: Budget, table: LayerTable, problems: tuple[str, ...] = ()) -> list[str]:
    """Every way ``table`` breaks ``budget`` (an empty list means it fits)."""
    out = list(problems)
    n = counted(budget, table)
    if n > budget.max_params:
        out.append(f"params: {n:,} {budget.count} params > limit {budget.max_params:,}")
    kinds = table.kinds()
    for kind in budget.forbidden_layers:
        if kind in kinds:
            names = [r.name for r in table.rows if r.kind == kind]
            out.append(f"layers: {kind} is forbidden ({', '.join(names)})")
    if budget.allowed_layers:
        for kind in sorted(kinds & {"Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Dense"}):
            if kind not in budget.allowed_layers:
                out.append(f"layers: {kind} is not among the allowed {', '.join(budget.allowed_layers)}")
    if budget.require_batchnorm and "BatchNormalization" not in kinds:
        out.append("batchnorm: the budget requires BatchNormalization and the model has none")
    if budget.require_dropout and not any(r.kind == "Dropout" for r in table.rows):
        out.append("dropout: the budget requires Dropout and the model has none")
    if table.min_spatial < 1:
        out.append(f"spatial: a feature map shrinks below 1x1 ({table.min_spatial})")
    if budget.max_macs is not None and table.macs > budget.max_macs:
        out.append(f"macs: {table.macs:,} MACs > limit {budget.max_macs:,}")
    if budget.min_final_rf is not None and min(table.final_rf) < budget.min_final_rf:
        out.append(f"rf: final receptive field {fmt_pair(table.final_rf)} < required {budget.min_final_rf}")
    return out


def _plan_check(budget: Budget, space: Space, values: Mapping[str, Any]) -> tuple[list[str], int, int]:
    """Violations, counted params and MACs from the pure-Python plan (no Keras)."""
    p = plan(space.resolve(values))
    if p.problems:  # no count: ranked behind any network that builds, so repair prefers a move that fixes it
        return list(p.problems), _UNBUILT, 0
    table = table_from_plan(p)
    return violations(budget, table), counted(budget, table), table.macs


def repair(budget: Budget, space: Space, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Move an over-budget candidate into the budget with as few changes as possible.

    First shrink channel widths (widest first, one option at a time), keeping the sampled
    structure. If that is not enough (or the problem is not size, e.g. a too-small receptive
    field), take the single change of any parameter that most reduces (violations, params), and
    repeat. All on the pure-Python plan. Returns the new values and one line per changed
    parameter, e.g. ``blocks[1].channels 32→24``.
    """
    current = dict(values)
    widths = [p for p in space.params if p.name.endswith(".channels")]

    def score(v: Mapping[str, Any]) -> tuple[int, int]:
        found, n, _ = _plan_check(budget, space, v)
        return len(found), n

    # Once shrinking for size, a step that leaves tied widths unequal (a shared block's input and output) does not
    # end it: the next step shrinks the other one.
    shrinking = False
    for _ in range(_MAX_REPAIR_STEPS):
        found, count, _ = _plan_check(budget, space, current)
        if not found:
            break
        shrinkable = [p for p in widths if current[p.name] > min(p.domain.options)]
        if shrinkable and (any(v.startswith(("params:", "macs:")) for v in found)
                           or (shrinking and count == _UNBUILT)):
            widest = max(shrinkable, key=lambda p: current[p.name])
            current[widest.name] = max(o for o in widest.domain.options if o < current[widest.name])
            shrinking = True
            continue
        shrinking = False
        here = score(current)
        moves = [({**current, p.name: o}) for p in space.params for o in p.domain.options if o != current[p.name]]
        best = min(moves, key=score, default=None)
        if best is None or score(best) >= here:
            break
        current = best
    if not _plan_check(budget, space, current)[0]:
        current = _give_back(budget, space, values, current)
    changes = [f"{k} {values[k]}→{current[k]}" for k in values if current[k] != values[k]]
    return current, changes


def _give_back(budget: Budget, space: Space, sampled: Mapping[str, Any], fitted: dict[str, Any]) -> dict[str, Any]:
    """Undo what the shrinking took but did not need.

    One option at a time, round-robin over the changed parameters, move each back towards its
    sampled value while the candidate still has no violation. Shrinking widest-first before a costly
    non-width choice (e.g. a shrink head) changes the head too, and then the widths it took first
    are free again.
    """
    current = dict(fitted)
    moved = True
    while moved:
        moved = False
        for p in space.params:
            now, want, opts = current[p.name], sampled[p.name], list(p.domain.options)
            if now == want or now not in opts or want not in opts:
                continue
            i, j = opts.index(now), opts.index(want)
            step = opts[i + (1 if j > i else -1)] if p.domain.is_range else want
            trial = {**current, p.name: step}
            if not _plan_check(budget, space, trial)[0]:
                current, moved = trial, True
    return current


def _split(space: Space, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The space's values in canonical spelling (inactive parameters at their first option: one network, one
    spelling) and the recipe's ``train.*`` values."""
    c = Candidate.of(values)
    return space.canonical(c.network), c.recipe


def _verdict(budget: Budget, arch, values: dict[str, Any], repairs: tuple[str, ...], table: LayerTable) -> Verdict:
    return of_table(budget, table, values=values, repairs=repairs, architecture=arch.describe())


def of_table(budget: Budget, table: LayerTable, *, values: Mapping[str, Any] | None = None,
             repairs: tuple[str, ...] = (), architecture: str = "") -> Verdict:
    """The verdict on a network whose per-layer ``table`` is known (planned, or read from a built model)."""
    found = violations(budget, table)
    return Verdict(ok=not found, violations=tuple(found), values=dict(values or {}), repairs=repairs,
                   total_params=table.total_params, trainable_params=table.trainable_params, macs=table.macs,
                   final_rf=table.final_rf, architecture=architecture, table=table, budget=budget.name,
                   counted_params=counted(budget, table), max_params=budget.max_params)


def judge(budget: Budget, space: Space, values: Mapping[str, Any], repairs: tuple[str, ...] = ()) -> Verdict:
    """A candidate as it stands (no repair, nothing built): every rule it breaks, its counts and its per-layer
    table, from the pure-Python plan (which counts what Keras counts: ``tests/test_receptive.py``)."""
    space_values, extra = _split(space, values)
    arch = space.resolve(space_values)
    p = plan(arch)
    if p.problems:
        return Verdict(False, p.problems, {**space_values, **extra}, repairs, architecture=arch.describe(),
                       budget=budget.name, max_params=budget.max_params)
    return _verdict(budget, arch, {**space_values, **extra}, repairs, table_from_plan(p))


def judge_built(budget: Budget, space: Space, model, verdict: Verdict) -> Verdict:
    """``verdict`` (of :func:`judge`) again on the built ``model``'s own table: the exact count Keras reports."""
    arch = space.resolve(_split(space, verdict.values)[0])
    return _verdict(budget, arch, dict(verdict.values), verdict.repairs, table_from_model(model))


def admit(budget: Budget, space: Space, values: Mapping[str, Any], *, allow_repair: bool = True,
          build: bool = True, seed: int | None = None):
    """Repair (if allowed), judge and build one candidate: :func:`repair`, :func:`judge`,
    :func:`budgetnas.build.build_model` and :func:`judge_built` in turn. Returns ``(verdict, keras_model_or_None)``.

    With ``build=True`` the verdict comes from the built Keras model (the exact count); the model
    is returned only when the candidate is within budget; ``seed`` fixes its initial weights.
    """
    space_values, extra = _split(space, values)
    repairs: tuple[str, ...] = ()
    if allow_repair:
        space_values, changes = repair(budget, space, space_values)
        repairs = tuple(changes)
    verdict = judge(budget, space, {**space_values, **extra}, repairs)
    if not build or verdict.table is None:
        return verdict, None
    try:
        model = build_model(space, _split(space, verdict.values)[0], seed=seed)
    except ValueError as exc:  # Keras refuses some combinations (e.g. stride with dilation)
        return replace(verdict, ok=False, violations=(f"build: {exc}",), table=None), None
    verdict = judge_built(budget, space, model, verdict)
    return verdict, (model if verdict.ok else None)


def smallest(budget: Budget, space: Space) -> tuple[dict[str, Any], int]:
    """The smallest network the space holds (by counted params), found by coordinate descent."""
    values = {p.name: p.domain.options[0] for p in space.params}
    for p in space.params:
        if p.domain.is_range or all(isinstance(o, (int, float)) for o in p.domain.options):
            values[p.name] = min(p.domain.options)

    def size(v: Mapping[str, Any]) -> float:
        arch = space.resolve(v)
        pl = plan(arch)
        if pl.problems:
            return float("inf")
        return pl.trainable_params if budget.count == "trainable" else pl.total_params

    best = size(values)
    for _ in range(2):
        improved = False
        for p in space.params:
            for option in p.domain.options:
                trial = {**values, p.name: option}
                n = size(trial)
                if n < best:
                    best, values, improved = n, trial, True
        if not improved:
            break
    return values, int(best) if best != float("inf") else -1


def check_space_fits(budget: Budget, space: Space) -> None:
    """Refuse a search before it starts when even the smallest network breaks the budget."""
    values, n = smallest(budget, space)
    if n < 0:
        raise OverBudgetError(f"space {space.path}: no network in it is valid (every feature map collapses)")
    if n > budget.max_params:
        raise OverBudgetError(
            f"budget {budget.name!r} ({budget.max_params:,} {budget.count} params): the smallest network in "
            f"space {space.path} already has {n:,} params")
    if not space.params:
        verdict = judge(budget, space, values)
        if not verdict.ok:
            raise OverBudgetError(
                f"budget {budget.name!r}: space {space.path} describes one network and it breaks the budget: "
                + "; ".join(verdict.violations))
