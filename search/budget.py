"""Named budgets (``budgets.toml``): the rules a network must meet and how it is trained.

Each top-level table is one budget. ``[NAME.train]`` is the training recipe (any field may be a
list of choices, which the search then tunes as ``train.<field>``); ``[NAME.search]`` sets the
search defaults. Read with ``tomllib`` into frozen dataclasses; unknown keys are errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from budgetnas import files
from budgetnas.data import AUGMENTATIONS
from budgetnas.drivers.base import OBJECTIVES
from budgetnas.errors import ConfigError
from budgetnas.front import COSTS
from budgetnas.space import Domain, Param, _domain, read_toml, shipped

LAYER_KINDS = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Dense")
OPTIMIZERS = ("adam", "adamw", "sgd", "nadam")
SCHEDULES = ("constant", "onecycle", "cosine", "step", "inverse_time", "staircase")
DISTILL_TARGETS = ("batch", "clean")


@dataclass(frozen=True)
class Recipe:
    """How a network is trained. Fields hold a value or a :class:`Domain` of choices."""

    optimizer: Any = "adam"
    lr: Any = 0.001
    schedule: Any = "constant"
    decay: Any = 0.0  # k in lr / (1 + k * epoch) for the inverse_time schedule
    batch_size: Any = 128
    label_smoothing: Any = 0.0
    weight_decay: Any = 0.0
    momentum: Any = 0.9
    augment: Any = "none"
    ema: Any = 0.0  # momentum of an exponential moving average of the weights (0: off); it scores and ships,
    #                 with batch-norm statistics measured for it (trainer.recalibrate_batch_norm)
    decay_every: Any = 0  # the staircase schedule: lr × decay every this many epochs (PyTorch's StepLR)
    clipnorm: Any = 0.0  # clip the gradients' global norm to this (0: off): keeps nets without BatchNorm stable
    teacher: Any = ""  # distillation (budgetnas.distill): a fixed space the network learns from ("": off)
    distill_alpha: Any = 0.5  # weight of the teacher's soft loss; 1 - alpha weighs the labels' loss
    distill_temperature: Any = 4.0  # softens both networks' predictions in the soft loss
    distill_targets: Any = "batch"  # the teacher predicts each augmented batch, or "clean": once, un-augmented
    teacher_epochs: Any = 15  # how long the teacher trains (once per split; cached)
    mixup: Any = 0.0  # the largest mixing weight: images mix with others of their batch, λ ~ U(0, min(mixup, epoch /
    #                   epochs)) per image (budgetnas.data.Mixup); 0: off

    def params(self) -> tuple[Param, ...]:
        return tuple(Param(f"{RECIPE_PREFIX}{f.name}", getattr(self, f.name)) for f in fields(self)
                     if isinstance(getattr(self, f.name), Domain))

    def resolve(self, values: Mapping[str, Any]) -> "Recipe":
        """A recipe with every choice replaced by its value from ``values``."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = values[f"{RECIPE_PREFIX}{f.name}"] if isinstance(v, Domain) else v
        return Recipe(**out)


RECIPE_PREFIX = "train."  # a sampled recipe choice is named train.<field>


@dataclass(frozen=True)
class Candidate:
    """One point a search samples, its two halves kept apart: ``network`` (the space's values, what is built) and
    ``recipe`` (the ``train.*`` choices of the budget's recipe, how it is trained)."""

    network: dict[str, Any]
    recipe: dict[str, Any]

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> "Candidate":
        return cls({k: v for k, v in values.items() if not k.startswith(RECIPE_PREFIX)},
                   {k: v for k, v in values.items() if k.startswith(RECIPE_PREFIX)})


@dataclass(frozen=True)
class SearchDefaults:
    trials: int = 30
    timeout: float = 0.0  # minutes; 0 = no limit
    epochs: int = 3  # the most epochs one candidate trains during the search
    min_epochs: int = 1  # the first rung of the successive-halving pruner
    train_subset: int = 0  # 0 = whole training split; else a stratified subset (low-fidelity proxy)
    finalists: int = 3
    seeds: int = 3
    repair: bool = True
    rescore: int = 0  # the best completed trials trained again on all training images before finalists are chosen
    objective: str = "accuracy"  # "front": search the accuracy–size front (budgetnas.front)
    cost: str = "params"  # a front's second objective: "params" or "macs"
    final_fit: str = "train"  # "all": the winner's seeds train again on train + validation, and that fit is scored
    retrain_start: bool = False  # the space's start points are retrained beside the finalists, judged on validation


@dataclass(frozen=True)
class Budget:
    name: str
    file: str
    description: str
    dataset: str
    space: str  # path, resolved against the budgets file's folder
    max_params: int
    count: str  # "total" or "trainable"
    epochs: int
    validation: int
    allowed_layers: tuple[str, ...]
    forbidden_layers: tuple[str, ...]
    require_batchnorm: bool
    require_dropout: bool
    max_macs: int | None
    min_final_rf: int | None
    target: float | None
    baseline_space: str | None
    baseline_accuracy: float | None
    baseline_note: str
    train: Recipe
    baseline_train: Recipe | None
    search: SearchDefaults

    def params(self) -> tuple[Param, ...]:
        return self.train.params()


_TOP = {
    "description": str, "dataset": str, "space": str, "max_params": int, "count": str, "epochs": int,
    "validation": int, "allowed_layers": list, "forbidden_layers": list, "require_batchnorm": bool,
    "require_dropout": bool, "max_macs": int, "min_final_rf": int, "target": float,
    "baseline_space": str, "baseline_accuracy": float, "baseline_note": str, "train": dict,
    "baseline_train": dict, "search": dict,
}
_REQUIRED = ("dataset", "space", "max_params", "epochs")
_RECIPE_TYPES = {"optimizer": (str, OPTIMIZERS), "lr": (float, None), "schedule": (str, SCHEDULES),
                 "decay": (float, None), "batch_size": (int, None), "label_smoothing": (float, None),
                 "weight_decay": (float, None), "momentum": (float, None), "augment": (str, AUGMENTATIONS),
                 "ema": (float, None), "decay_every": (int, None), "clipnorm": (float, None),
                 "teacher": (str, None), "distill_alpha": (float, None), "distill_temperature": (float, None),
                 "distill_targets": (str, DISTILL_TARGETS), "teacher_epochs": (int, None), "mixup": (float, None)}


def _typed(path: str, where: str, value: Any, typ: type) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (typ is int and isinstance(value, bool)) or not isinstance(value, typ):
        raise ConfigError(f"{path}: {where} = {value!r} must be {typ.__name__}")
    return value


def _recipe(path: str, where: str, raw: Mapping[str, Any]) -> Recipe:
    out = {}
    for key, value in raw.items():
        if key not in _RECIPE_TYPES:
            raise ConfigError(f"{path}: {where}.{key}: unknown key (known: {', '.join(_RECIPE_TYPES)})")
        typ, allowed = _RECIPE_TYPES[key]
        out[key] = _domain(path, f"{where}.{key}", value, typ, allowed)
    ema = out.get("ema", 0.0)
    if any(not 0.0 <= v < 1.0 for v in (ema.options if isinstance(ema, Domain) else (ema,))):
        raise ConfigError(f"{path}: {where}.ema = {ema!r} must be in [0, 1) (0: no weight averaging)")
    schedules = out.get("schedule", "constant")
    if "staircase" in (schedules.options if isinstance(schedules, Domain) else (schedules,)):
        every, decay = out.get("decay_every", 0), out.get("decay", 0.0)
        if isinstance(every, Domain) or isinstance(decay, Domain) or every < 1 or not 0.0 < decay < 1.0:
            raise ConfigError(f"{path}: {where}.schedule = \"staircase\" needs decay_every ≥ 1 (epochs) and "
                              f"0 < decay < 1 (the factor), one value each")
    clip = out.get("clipnorm", 0.0)
    if any(v < 0 for v in (clip.options if isinstance(clip, Domain) else (clip,))):
        raise ConfigError(f"{path}: {where}.clipnorm = {clip!r} must be ≥ 0 (0: no clipping)")
    for key, ok, rule in (("distill_alpha", lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
                          ("distill_temperature", lambda v: v > 0, "> 0"), ("teacher_epochs", lambda v: v >= 1, "≥ 1"),
                          ("mixup", lambda v: 0.0 <= v <= 0.5, "in [0, 0.5] (0: off)")):
        value = out.get(key, getattr(Recipe, key))
        if any(not ok(v) for v in (value.options if isinstance(value, Domain) else (value,))):
            raise ConfigError(f"{path}: {where}.{key} = {value!r} must be {rule}")
    if isinstance(out.get("teacher", ""), Domain):
        raise ConfigError(f"{path}: {where}.teacher: one teacher per recipe, not a list of choices")
    mixup, targets = out.get("mixup", 0.0), out.get("distill_targets", "batch")
    if out.get("teacher") and any(m > 0 for m in (mixup.options if isinstance(mixup, Domain) else (mixup,))) and \
            "clean" in (targets.options if isinstance(targets, Domain) else (targets,)):
        raise ConfigError(f"{path}: {where}.mixup: mixes one-hot labels, not a teacher's clean targets "
                          "(use distill_targets = \"batch\")")
    return Recipe(**out)


def parse_budget(name: str, table: Mapping[str, Any], path: str, root: Path) -> Budget:
    where = name
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {where} must be a table")
    for key in table:
        if key not in _TOP:
            raise ConfigError(f"{path}: {where}.{key}: unknown key (known: {', '.join(_TOP)})")
    for key in _REQUIRED:
        if key not in table:
            raise ConfigError(f"{path}: {where}.{key}: required key is missing")
    t = {k: _typed(path, f"{where}.{k}", v, _TOP[k]) for k, v in table.items()}
    if t["max_params"] < 1:
        raise ConfigError(f"{path}: {where}.max_params = {t['max_params']}, must be ≥ 1")
    if t["epochs"] < 1:
        raise ConfigError(f"{path}: {where}.epochs = {t['epochs']}, must be ≥ 1")
    count = t.get("count", "total")
    if count not in ("total", "trainable"):
        raise ConfigError(f"{path}: {where}.count = {count!r} must be 'total' or 'trainable'")
    for key in ("allowed_layers", "forbidden_layers"):
        for i, kind in enumerate(t.get(key, [])):
            if kind not in LAYER_KINDS:
                raise ConfigError(f"{path}: {where}.{key}[{i}] = {kind!r} must be one of {', '.join(LAYER_KINDS)}")
    recipe = _recipe(path, f"{where}.train", t.get("train", {}))
    if recipe.teacher.endswith(".toml") and not Path(recipe.teacher).is_absolute():  # a file beside the budgets
        recipe = replace(recipe, teacher=str(root / recipe.teacher))
    baseline_recipe = _recipe(path, f"{where}.baseline_train", t["baseline_train"]) if "baseline_train" in t else None
    if baseline_recipe is not None and baseline_recipe.params():
        raise ConfigError(f"{path}: {where}.baseline_train: a baseline recipe cannot have choices")
    search_raw = t.get("search", {})
    known = {f.name: f.type for f in fields(SearchDefaults)}
    sd = {}
    for key, value in search_raw.items():
        if key not in known:
            raise ConfigError(f"{path}: {where}.search.{key}: unknown key (known: {', '.join(known)})")
        typ = {"int": int, "float": float, "bool": bool, "str": str}[known[key]]
        sd[key] = _typed(path, f"{where}.search.{key}", value, typ)
    for key, allowed in (("objective", OBJECTIVES), ("cost", COSTS),
                         ("final_fit", ("train", "all"))):
        if sd.get(key, allowed[0]) not in allowed:
            raise ConfigError(f"{path}: {where}.search.{key} = {sd[key]!r} must be one of {', '.join(allowed)}")
    sd.setdefault("epochs", min(SearchDefaults.epochs, t["epochs"]))
    search = SearchDefaults(**sd)
    if search.epochs > t["epochs"]:
        raise ConfigError(f"{path}: {where}.search.epochs = {search.epochs} exceeds {where}.epochs = {t['epochs']}")
    validation = t.get("validation", 5000)

    def rel(p: str | None) -> str | None:
        return None if p is None else str(root / p) if not Path(p).is_absolute() else p

    return Budget(
        name=name, file=path, description=t.get("description", ""), dataset=t["dataset"],
        space=rel(t["space"]), max_params=t["max_params"], count=count, epochs=t["epochs"],
        validation=validation, allowed_layers=tuple(t.get("allowed_layers", ())),
        forbidden_layers=tuple(t.get("forbidden_layers", ())),
        require_batchnorm=t.get("require_batchnorm", False), require_dropout=t.get("require_dropout", False),
        max_macs=t.get("max_macs"), min_final_rf=t.get("min_final_rf"), target=t.get("target"),
        baseline_space=rel(t.get("baseline_space")), baseline_accuracy=t.get("baseline_accuracy"),
        baseline_note=t.get("baseline_note", ""), train=recipe, baseline_train=baseline_recipe, search=search,
    )


def default_budgets_file() -> Path:
    """``./budgets.toml`` if present, else the one shipped with the package (``--budgets FILE`` overrides both)."""
    here = Path("budgets.toml")
    if here.is_file():
        return here
    return shipped("budgets.toml")


def load_budgets(path: str | Path | None = None) -> dict[str, Budget]:
    p = Path(path) if path is not None else default_budgets_file()
    data = read_toml(p, "budgets")
    return {name: parse_budget(name, table, str(p), p.resolve().parent) for name, table in data.items()}


def get_budget(name: str, path: str | Path | None = None) -> Budget:
    budgets = load_budgets(path)
    if name not in budgets:
        raise ConfigError(
            f"{path or default_budgets_file()}: no budget named {name!r} (known: {', '.join(budgets)})"
        )
    return budgets[name]


# ---------------------------------------------------------------- a run's own copy of its budget
FROZEN = "budget.json"


def frozen_json(budget: Budget) -> str:
    """``budget`` as a run keeps it (``budget.json``; later commands read that copy).

    The copy is the budget's table as written in its file, with the space paths made absolute, so
    editing or deleting the budget in ``budgets.toml`` afterwards changes nothing about this run.
    """
    table = dict(read_toml(Path(budget.file), "budgets")[budget.name])
    for key, value in (("space", budget.space), ("baseline_space", budget.baseline_space)):
        if value is not None:
            table[key] = str(Path(value).resolve())
    return json.dumps({"name": budget.name, "source": str(Path(budget.file).resolve()), "table": table}, indent=1)


def frozen_text(folder: Path) -> str:
    return (folder / FROZEN).read_text(encoding="utf-8")


def load_frozen(folder: Path) -> Budget:
    """The budget a run froze with :func:`freeze`."""
    f = folder / FROZEN
    try:
        data = files.read_json(f, "the run's frozen budget")
    except FileNotFoundError:
        raise ConfigError(f"{f}: the run's frozen budget is missing") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("table"), dict):
        raise ConfigError(f"{f}: not a frozen budget (needs \"name\" and a \"table\"); the file is cut or was "
                          "edited by hand")
    return parse_budget(data["name"], data["table"], str(f), folder)
