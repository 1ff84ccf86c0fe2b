"""A run folder and what it holds: where a search's results live and how they read back.

A run is ``reports/<RUN>/`` with ``run.json`` (what was searched and how), its frozen budget (``budget.json``), the
text of its space (``space.toml``) and, by default, the Optuna study in ``study.db`` (SQLite). Each trial keeps its
record in Optuna user attributes, so any process can read the leaderboard from storage while a search is running
elsewhere. :func:`lay_out` is the one place a folder is laid out; :func:`open_folder` reads one back.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from budgetnas import data as data_mod
from budgetnas import files
from budgetnas.budget import Budget
from budgetnas.errors import ConfigError, DataError, RunError
from budgetnas.space import Space, load_space

META = "run.json"


@dataclass
class RunMeta:
    """Everything needed to rebuild a run's candidates and data without the search machinery."""

    name: str
    budget: str
    budgets_file: str
    space: str
    dataset: str
    data_dir: str | None
    seed: int
    trials: int
    timeout: float
    max_epochs: int
    train_subset: int
    storage: str
    study: str
    driver: str = "optuna"  # "optuna", "keras-tuner", or "train" for a fixed network
    algorithm: str = "tpe"  # tpe (optuna); hyperband, bayesian or random (keras-tuner)
    objective: str = "accuracy"  # or "front": accuracy against ``cost`` (budgetnas.front)
    cost: str = "params"  # a front's second objective: "params" or "macs"
    min_epochs: int | None = None  # the first pruning rung (None: the budget's); ≥ max_epochs: no pruning
    created: float = field(default_factory=time.time)
    versions: dict[str, str] = field(default_factory=dict)  # the libraries the run started with (library_versions)
    start: list[str] = field(default_factory=list)  # the space's start points enqueued as its first trials

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@dataclass
class TrialRecord:
    """One trial as the leaderboard and reports see it, whatever driver produced it."""

    number: int
    status: str
    values: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    trainable_params: int | None = None
    macs: int | None = None
    final_rf: list[float] | None = None
    architecture: str = ""
    val_accuracy: float | None = None
    curve: list[float] = field(default_factory=list)  # validation accuracy per epoch
    epochs: int = 0
    steps: int = 0  # optimizer steps actually taken (0 for a rejected candidate)
    wall_seconds: float = 0.0
    reason: str = ""
    repairs: list[str] = field(default_factory=list)
    worker: str = ""  # host:pid of the process that ran it
    retry_of: int | None = None  # the trial whose dead worker this one replaces
    key: str = ""  # the built network + recipe (see drivers.common.network_key): equal keys, one network
    rescore: float | None = None  # val accuracy when trained again on all training images (see budgetnas.run.rescore)
    start: str = ""  # the space's start point ([[start]] name) this trial trained, if it was one

    @property
    def score(self) -> float | None:
        """What the search ranks by: the re-scored validation accuracy if there is one, else the trial's own."""
        return self.rescore if self.rescore is not None else self.val_accuracy

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RESCORES = "rescores"  # study user attribute: {trial number: val accuracy after training on all images}


LIBRARIES = ("budgetnas", "tensorflow", "tensorflow-cpu", "keras", "optuna", "keras-tuner", "numpy", "jax")


def library_versions() -> dict[str, str]:
    """Python's and each installed library's version, as the installer recorded it (nothing is imported)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_budget(path: Path, meta: RunMeta):
    """The budget a run was started with: its frozen copy (runs made before copies existed read
    the budgets file they name, else the default one)."""
    from budgetnas.budget import FROZEN, get_budget, load_frozen

    if (path / FROZEN).is_file():
        return load_frozen(path)
    return get_budget(meta.budget, meta.budgets_file if Path(meta.budgets_file).is_file() else None)


def run_dir(run: str, reports_dir: str | Path = "reports") -> Path:
    """A run name (under ``reports_dir``) or a path to a run directory."""
    p = Path(run)
    if (p / META).is_file():
        return p
    return Path(reports_dir) / run


def load_meta(path: Path) -> RunMeta:
    f = path / META
    try:
        data = files.read_json(f, "the run's metadata")
    except FileNotFoundError:
        raise RunError(f"{f}: no such run (start one with `budgetnas search`)") from None
    try:
        meta = RunMeta(**data)
        meta.storage = _located(path, meta.storage)
        return meta
    except TypeError as exc:
        raise RunError(f"{f}: unexpected run metadata ({exc})") from None


def lay_out(path: Path, meta: RunMeta, *, space: str, budget: str) -> None:
    """Lay out a run folder, the one place this is done: the text of the space it searches (``space.toml``), its
    frozen budget (``budget.json``, :func:`budgetnas.budget.frozen_json`) and ``run.json``. Retrain, report,
    export and workers read these copies, never the files they came from."""
    from budgetnas.budget import FROZEN

    path.mkdir(parents=True, exist_ok=True)
    files.write_text(path / "space.toml", space)
    files.write_text(path / FROZEN, budget)
    save_meta(path, meta)


def save_meta(path: Path, meta: RunMeta) -> None:
    """Write ``run.json``; the folder's own SQLite study is named relative to the folder (``sqlite:///study.db``),
    so a run folder moved or copied to another machine opens there (:func:`load_meta`)."""
    own = meta.storage == default_storage(path)
    files.write_text(path / META, replace(meta, storage=f"sqlite:///{_OWN_DB}" if own else meta.storage).to_json())


_OWN_DB = "study.db"


def default_storage(path: Path) -> str:
    return f"sqlite:///{path.resolve() / _OWN_DB}"


def _located(path: Path, storage: str) -> str:
    """A run's storage URL as this folder reaches it: a relative SQLite file is the run folder's own; an absolute
    one that no longer exists while the folder holds a study of the same name (a run saved before storage
    paths were relative, then moved) is that one."""
    if not storage.startswith("sqlite:///"):
        return storage
    file = Path(storage[len("sqlite:///"):])
    if not file.is_absolute():
        return f"sqlite:///{path.resolve() / file}"
    if not file.exists() and (path / file.name).is_file():
        return f"sqlite:///{path.resolve() / file.name}"
    return storage


def records_from_study(study) -> list[TrialRecord]:
    """Trial records from an Optuna study (any storage), in trial order."""
    import optuna

    out = []
    rescores = study.user_attrs.get(RESCORES, {})
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        status = attrs.get("status")
        if status is None or t.state == optuna.trial.TrialState.RUNNING:
            status = {"RUNNING": "running", "COMPLETE": "complete", "PRUNED": "pruned",
                      "FAIL": "failed", "WAITING": "running"}[t.state.name]
        rec = TrialRecord(
            number=t.number, status=status, values=attrs.get("values", dict(t.params)),
            params=attrs.get("params"), trainable_params=attrs.get("trainable_params"),
            macs=attrs.get("macs"), final_rf=attrs.get("final_rf"), architecture=attrs.get("architecture", ""),
            val_accuracy=attrs.get("val_accuracy"), curve=list(attrs.get("curve", [])),
            epochs=attrs.get("epochs", 0), steps=attrs.get("steps", 0),
            wall_seconds=attrs.get("wall_seconds", 0.0), reason=attrs.get("reason", ""),
            repairs=list(attrs.get("repairs", [])), worker=attrs.get("worker", ""),
            retry_of=attrs.get("retry_of"), key=attrs.get("key", ""), rescore=rescores.get(str(t.number)),
            start=attrs.get("start", ""),
        )
        if status == "failed" and "status" not in attrs:
            rec.reason = "its process ended while training (no result recorded)"
        if rec.status == "running" and t.intermediate_values:
            rec.curve = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
            rec.epochs = len(rec.curve)
            rec.val_accuracy = rec.curve[-1]
        out.append(rec)
    return out


def load_records(path: Path, storage: str | None = None) -> tuple[RunMeta, list[TrialRecord]]:
    """Read a run's metadata and every trial record from its storage."""
    import optuna

    meta = load_meta(path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from budgetnas.storage import open_storage

    try:
        study = optuna.load_study(study_name=meta.study, storage=open_storage(storage or meta.storage))
    except KeyError:
        raise RunError(f"{path}: study {meta.study!r} not found in {storage or meta.storage}") from None
    return meta, records_from_study(study)


def ranked(records: list[TrialRecord]) -> list[TrialRecord]:
    """Trials with a validation score: completed ones first, re-scored ones first among them (finalists are
    chosen among the trials trained again at the higher fidelity), then best score, then fewer params."""
    scored = [r for r in records if r.val_accuracy is not None and r.status in ("complete", "pruned", "running")]
    return sorted(scored, key=lambda r: (r.status != "complete", r.rescore is None, -(r.score or 0.0),
                                         r.params or 0))


def load_data_splits(budget: Budget, space: Space, data_dir: str | None, seed: int):
    """The dataset, and the seeded stratified (train, validation) split of its training set."""
    ds = data_mod.load(budget.dataset, data_dir)
    if ds.shape != tuple(space.input_shape):
        raise DataError(f"{ds.source}: images are {ds.shape} but {space.path} expects input.shape "
                        f"{list(space.input_shape)}")
    if ds.classes > space.classes:
        raise DataError(f"{ds.source}: {ds.classes} classes but {space.path} has input.classes = {space.classes}")
    train, val = data_mod.split(ds.train, budget.validation, seed)
    return ds, train, val


def fitting_budgets(meta: RunMeta, budget: Budget) -> dict[str, int]:
    """The named budgets of the run's budgets file on its dataset whose limit is within the run's: name → max
    params (a front search reports its best network under each)."""
    from budgetnas.budget import load_budgets

    source = meta.budgets_file if Path(meta.budgets_file).is_file() else None
    try:
        named = load_budgets(source)
    except ConfigError:
        named = {}
    out = {n: b.max_params for n, b in named.items() if b.dataset == budget.dataset and b.count == budget.count
           and b.max_params <= budget.max_params and b.search.objective != "front"}
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def open_folder(path: Path) -> tuple[RunMeta, Budget, Space, list]:
    """A run's metadata, budget, searched space and trial records (none for a `train` run)."""
    meta = load_meta(path)
    budget = run_budget(path, meta)
    space = load_space(path / "space.toml")
    records = load_records(path)[1] if meta.driver != "train" else []
    return meta, budget, space, records
