"""budgetnas as a library: any Keras model's per-layer table and its budget verdict, in a notebook or a script.

    import budgetnas

    budgetnas.layer_table(model)                    # output size, params, MACs, kernel/stride/dilation, jump, RF
    verdict = budgetnas.check(model, budget="mnist-15k")
    verdict.ok, verdict.violations                  # every broken rule, as the search's gate words it

Both objects display themselves: an HTML table in Jupyter, a rich table in a terminal (``rich.print``),
plain text with ``print``. Parameters are counted as Keras counts them (``model.count_params()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from budgetnas.budget import Budget, Candidate, get_budget
from budgetnas.data import Arrays
from budgetnas.errors import TrialFailed  # noqa: F401  (public: train_candidate raises it when the loss diverges)
from budgetnas.gate import Verdict  # noqa: F401  (public: what check and judge return)
from budgetnas.receptive import LayerTable, table_from_model
from budgetnas.space import Space

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    import keras



def load_budget(name: str, *, budgets_file: str | Path | None = None) -> Budget:
    """A named budget from ``budgets_file`` (default: ``./budgets.toml``, else the shipped one).

    Example:
        >>> budgetnas.load_budget("mnist-15k").max_params
        15000
    """
    return get_budget(name, budgets_file)


def load_budgets(budgets_file: str | Path | None = None) -> dict[str, Budget]:
    """Every named budget of ``budgets_file`` (default: ``./budgets.toml``, else the shipped one), by name.

    Example:
        >>> sorted(budgetnas.load_budgets())[:2]
        ['cifar10-sep-100k', 'mnist-15k']
    """
    from budgetnas.budget import load_budgets as read

    return read(budgets_file)


def layer_table(model) -> LayerTable:
    """The per-layer table of a built Keras model (output size, params, MACs, RF, jump, start).

    Raises:
        budgetnas.errors.UnsupportedLayerError: a layer whose geometry the table cannot reason about.

    Example:
        >>> budgetnas.layer_table(model).final_rf
        (22.0, 22.0)
    """
    return table_from_model(model)


def check(model, *, budget: str | Budget, budgets_file: str | Path | None = None) -> Verdict:
    """Judge a built Keras model against a budget: its parameter count and every layer rule.

    The same rules the search's gate applies to its candidates (forbidden and allowed layer kinds,
    BatchNorm and dropout, MACs, final receptive field, the parameter limit as the budget counts it).

    Example:
        >>> v = budgetnas.check(model, budget="mnist-15k")
        >>> v.ok, v.counted_params
        (True, 13794)
    """
    from budgetnas import gate

    b = budget if isinstance(budget, Budget) else load_budget(budget, budgets_file=budgets_file)
    return gate.of_table(b, table_from_model(model))


def load_space(path: str | Path) -> Space:
    """A search space from its TOML file, validated; a bare name (``"mnist_tiny"``) is a shipped space.

    Raises:
        budgetnas.errors.ConfigError: one line naming the file and the field that is wrong.

    Example:
        >>> budgetnas.load_space("spaces/mnist_wide.toml").params[0].name
        'blocks[0].channels'
    """
    from budgetnas.space import load_space as read

    return read(path)


def judge(values: dict | None = None, *, budget: str | Budget, space: str | Path | Space | None = None,
          repair: bool = False, build: bool = False, budgets_file: str | Path | None = None) -> Verdict:
    """The gate's verdict on one point of a space, before anything is built or trained: every broken rule, the
    params and MACs as Keras will count them, the architecture and its per-layer ``table``. ``values``: the
    space's parameters (``{}`` for a fixed space; ``space.sample(rng)`` draws some); ``space`` defaults to the
    budget's. ``repair``: first move an over-budget point into the budget as a search does (``verdict.values``
    and ``verdict.repairs`` say what changed). ``build``: judge the built Keras model instead of the plan (the
    same counts; it also catches a combination Keras refuses to build).

    Example:
        >>> v = budgetnas.judge({}, budget="mnist-15k", space="spaces/seed_mnist_13794.toml")
        >>> v.ok, v.total_params, v.architecture
    """
    from budgetnas import gate

    b, sp = _budget_and_space(budget, space, budgets_file)
    return gate.admit(b, sp, dict(values or {}), allow_repair=repair, build=build)[0]


def build_model(values: dict | None = None, *, space: str | Path | Space, seed: int | None = None) -> keras.Model:
    """The Keras model ``values`` pick in ``space`` (its ``train.*`` choices aside), untrained; ``seed`` fixes the
    initial weights. Nothing is judged: :func:`judge` or :func:`check` says whether it fits a budget.

    Example:
        >>> model = budgetnas.build_model({}, space="spaces/seed_mnist_13794.toml", seed=0)
        >>> model.count_params()
        13794
    """
    from budgetnas import build

    sp = space if isinstance(space, Space) else load_space(space)
    return build.build_model(sp, Candidate.of(values or {}).network, seed=seed)


def fuse_batch_norm(model: keras.Model | keras.layers.Layer) -> int:
    """Train the ``BatchNormalization`` layers of ``model`` (a model or one such layer) through TensorFlow's fused
    kernel, as budgetnas's trainer does: the same arithmetic, about 3x faster for those layers on a CPU, for a
    model trained with a plain ``model.fit``. Returns how many layers it changed (0 on other backends).

    Example:
        >>> budgetnas.fuse_batch_norm(model)
        4
    """
    from budgetnas.fused_bn import fuse, fuse_batch_norm as fuse_model

    return fuse_model(model) if hasattr(model, "layers") else int(fuse(model))


def input_pipeline(images: Arrays, *, classes: int, batch_size: int, training: bool, augment: str = "none",
                   seed: int = 0) -> Iterable[tuple[Any, Any]]:
    """The batches budgetnas trains and scores on: (float32 0-255 images, one-hot labels), shuffled and augmented
    (``augment``: none, shift, rotate, shift-rotate, crop-flip, crop-flip-cutout) when ``training``. ``images``:
    a split of :func:`load_splits`. A ``tf.data.Dataset`` on TensorFlow.

    Example:
        >>> x, y = next(iter(budgetnas.input_pipeline(splits.train, classes=10, batch_size=64, training=True,
        ...                                          augment="shift-rotate")))
    """
    from budgetnas.data import pipeline

    return pipeline(images, classes, batch_size, training=training, augment=augment, seed=seed)


# ------------------------------------------------------------------ searches and runs
@dataclass(frozen=True)
class Board:
    """A run's leaderboard (best first) or its front (cheapest first), as text, a rich table or HTML."""

    records: tuple = field(repr=False)
    max_params: int
    title: str
    front: bool = False
    cost: str = "params"
    top: int = 10
    limits: dict | None = field(default=None, repr=False)
    run: str = ""
    budget: str = ""

    @classmethod
    def of(cls, meta, budget: Budget, records, *, top: int = 10, front: bool | None = None) -> "Board":
        """The board of a run (its ``RunMeta``, frozen budget and records): the leaderboard, or (``front``; the
        default for a front search) the front, drawn against the search's cost (params for any other search),
        each point with the named budgets it fits."""
        from budgetnas.session import fitting_budgets

        front = meta.objective == "front" if front is None else front
        cost = meta.cost if meta.objective == "front" else "params"
        return cls(tuple(records), budget.max_params, f"{'Front' if front else 'Leaderboard'} — {meta.name}", front,
                   cost, top, fitting_budgets(meta, budget) if front else None, meta.name, meta.budget)

    def as_dict(self) -> dict:
        """Every trial with its rank (best first); a front board holds only the front's trials, cheapest first."""
        from budgetnas.report.leaderboard import counts
        from budgetnas.runs import ranked

        rank = {r.number: i for i, r in enumerate(ranked(list(self.records)), 1)}
        shown = self.rows if self.front else list(self.records)
        return {"run": self.run, "budget": self.budget, "counts": counts(list(self.records)), "front": self.front,
                "trials": [{**r.as_dict(), "rank": rank.get(r.number)} for r in shown]}

    @property
    def rows(self) -> list:
        """The trial records shown, in order."""
        from budgetnas.front import front_records
        from budgetnas.runs import ranked

        return front_records(list(self.records), self.cost) if self.front else ranked(list(self.records))[:self.top]

    def __rich__(self):
        from budgetnas.report.leaderboard import front_table, leaderboard

        if self.front:
            return front_table(list(self.records), self.max_params, self.cost, self.title, self.limits)
        return leaderboard(list(self.records), self.max_params, self.top, self.title)

    def __str__(self) -> str:
        import io

        from rich.console import Console

        buf = io.StringIO()
        Console(file=buf, width=160, color_system=None).print(self)
        return buf.getvalue()

    def _repr_html_(self) -> str:
        import html

        from budgetnas.report.leaderboard import pct

        head = ["trial", "params", "MACs", "val acc", "epochs", "status", "architecture"]
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                r.number, f"{r.params:,}" if r.params else "—", f"{r.macs / 1e6:.2f}M" if r.macs else "—",
                pct(r.score), r.epochs, r.status, r.architecture)) + "</tr>" for r in self.rows)
        return (f"<p><b>{html.escape(self.title)}</b></p><table><thead><tr>"
                + "".join(f"<th>{h}</th>" for h in head) + f"</tr></thead><tbody>{body}</tbody></table>")


class Run:
    """A run folder (``reports/<name>/``): its trials, leaderboard or front, finalists, report and export.

    Example:
        >>> run = budgetnas.open_run("mnist-15k-20261204-101500")
        >>> run.leaderboard(top=3)
    """

    def __init__(self, path: str | Path, *, storage: str | None = None):
        from budgetnas.runs import load_meta

        self.path = Path(path)
        self.meta = load_meta(self.path)  # a missing or damaged run is one RunError line here
        self.storage = storage  # read the trials from this storage URL rather than the run's own

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, budget={self.meta.budget!r}, objective={self.meta.objective!r})"

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def budget(self) -> Budget:
        """The budget the run froze when it started."""
        from budgetnas.runs import run_budget

        return run_budget(self.path, self.meta)

    def records(self) -> list:
        """Every trial record, in trial order (read from the run's storage: a search may still be running)."""
        from budgetnas.runs import load_records

        return load_records(self.path, self.storage)[1]

    def leaderboard(self, *, top: int = 10, front: bool | None = None) -> Board:
        """The best trials by validation score, or (``front``; the default for a front search) the front."""
        return Board.of(self.meta, self.budget, self.records(), top=top, front=front)

    def hypervolume(self, *, ref_accuracy: float, ref_cost: float, log_cost: bool = True) -> float:
        """How much its front of validation accuracy against cost (the run's: params or MACs) dominates: the
        area above ``ref_accuracy`` and below ``ref_cost``, cost on a log10 axis unless ``log_cost`` is False
        (accuracy as a fraction: the area is in fraction × decades). A larger area: a better front.

        Example:
            >>> run.hypervolume(ref_accuracy=0.90, ref_cost=15_000)
            0.0599
        """
        from budgetnas import front

        pts = [front.Point(r.val_accuracy, front.cost_of(r, self.meta.cost))
               for r in front.front_records(self.records(), self.meta.cost)]
        return front.hypervolume(pts, front.Point(ref_accuracy, ref_cost), log_cost)

    def retrain(self, *, top: int | None = None, seeds: int | None = None, epochs: int | None = None,
                front: int | None = None, resume: bool = False, jobs: int | None = None,
                data_dir: str | None = None, on_seed: Callable | None = None,
                on_epoch: Callable | None = None) -> list:
        """Retrain the best ``top`` trials (or, with ``front``, points of the front: see ``budgetnas retrain
        --front``) with ``seeds`` seeds for ``epochs`` epochs; test scored once per seed. Returns the finalists
        and writes the report. ``on_seed(label, seed, test accuracy)`` after each seed, ``on_epoch(label, seed,
        epoch, logs)`` after each epoch."""
        from budgetnas.retrain import retrain_run

        if front is None and self.meta.objective == "front" and top is None:
            front = 0
        return retrain_run(self.path, top=top, seeds=seeds, epochs=epochs, data_dir=data_dir, on_seed=on_seed,
                           on_epoch=on_epoch, resume=resume, jobs=jobs, front=front)

    def branch(self, name: str, changes: list[str]) -> "Run":
        """A new run folder ``name`` beside this one: the same study, space and split, its recipe changed by
        ``FIELD=VALUE`` strings (``["ema=0.999"]``); :meth:`retrain` it to compare on validation."""
        from budgetnas.retrain import branch

        return Run(branch(self.path, name, changes))

    def finalists(self) -> list:
        """The retrained finalists (empty before :meth:`retrain`)."""
        from budgetnas import finalists as fin_mod

        return fin_mod.load(self.path)[1] if (self.path / fin_mod.FILE).exists() else []

    def rescore(self, top: int | None = None, *, trials: list[int] | None = None, data_dir: str | None = None,
                on_rescored: Callable[[int, float, float], None] | None = None) -> dict[int, float]:
        """Train trials again on all training images for the search's epochs, each with its own fixed seed, and
        keep the new validation score in the run: the leaderboard and :meth:`retrain` then rank re-scored trials
        first, by it (what a budget's ``search.rescore = K`` does when its search ends). ``top``: the K best
        completed trials by their search score; ``trials``: these trial numbers. A trial re-scored before is not
        trained again. ``on_rescored(number, search score, new score)`` after each training.
        Returns {trial number: re-scored validation accuracy} for the trials asked.

        Raises:
            budgetnas.errors.RunError: a trial that does not exist or was never trained.

        Example:
            >>> run.rescore(top=3)
            {11: 0.9902, 13: 0.9898, 4: 0.9904}
        """
        from budgetnas.errors import ConfigError, RunError
        from budgetnas.runs import RESCORES
        from budgetnas.session import best_completed, context, open_study, rescore_trials

        if (top is None) == (trials is None):
            raise ConfigError("rescore: give top=K or trials=[numbers], one of them")
        if self.meta.driver == "train":
            raise RunError(f"{self.path}: a `budgetnas train` run has no searched trials to re-score")
        budget = self.budget
        ctx = context(self.meta, budget, load_space(self.path / "space.toml"), data_dir)
        # as a worker: the study's trials stay as they are (a resume would fail the running ones)
        study, _ = open_study(self.path, self.meta, budget, create=False, worker=True)
        numbers = best_completed(study, top) if trials is None else list(trials)
        rescore_trials(ctx, study, numbers, on_rescored)
        done = study.user_attrs.get(RESCORES, {})
        return {n: done[str(n)] for n in numbers}

    def report(self) -> list[Path]:
        """(Re)write ``report.md``, ``report.html``, the plots and ``trials.csv``; returns their paths."""
        from budgetnas.session import write_run_report

        return write_run_report(self.path)

    def export(self, *, trial: int | None = None, formats: list[str] | None = None, out: str | Path | None = None,
               data_dir: str | None = None) -> Path:
        """Export a finalist (default: the winner on validation) as ``.keras``, SavedModel, TFLite float32 and
        int8 with its model card, each format checked on the test set; returns the folder."""
        from budgetnas.export import export_run

        return export_run(self.path, trial, formats, Path(out) if out else None, data_dir)[2]


def open_run(name: str | Path, *, reports_dir: str | Path = "reports", storage: str | None = None) -> Run:
    """An existing run, by name (under ``reports_dir``) or by its folder; ``storage``: read its trials from this
    storage URL instead of the one the run recorded.

    Raises:
        budgetnas.errors.RunError: no such run, or its ``run.json`` is damaged.
    """
    from budgetnas.runs import run_dir

    return Run(run_dir(str(name), reports_dir), storage=storage)


def search(budget: str = "mnist-15k", *, retrain: bool = True, progress: bool = False, **options) -> Run:
    """Run a budgeted search (what ``budgetnas search`` runs), then retrain its finalists unless ``retrain`` is
    False; returns the :class:`Run`. ``options`` are ``budgetnas search``'s options, by the same names
    (:class:`budgetnas.session.SearchOptions` declares them once for both): ``space``, ``trials``, ``name``,
    ``seed``, ``objective``, ``cost``, ``max_epochs``, ``min_epochs``, ``train_subset``, ``timeout``, ``driver``,
    ``algorithm``, ``storage``, ``reports_dir``, ``data_dir``, ``budgets_file``, ``resume``, ``start``
    (``start=False``: ``--no-start``). ``progress`` prints one line per epoch and per trial.

    Raises:
        budgetnas.errors.ConfigError: an option that does not exist, or a value the budget or driver refuses.
        KeyboardInterrupt: stopped (:class:`budgetnas.pipeline.Stopped`: what is kept, the command that continues);
            finished trials and seeds are saved and ``search(..., name=NAME, resume=True)`` continues.

    Example:
        >>> run = budgetnas.search("mnist-8k", trials=12, name="nb-8k")
        >>> run.leaderboard(top=5)
    """
    from budgetnas.pipeline import Progress, drive
    from budgetnas.session import begin, options as search_options, prepare

    opts = search_options(budget, **options)
    path, meta, b, sp = prepare(opts)
    s = begin(path, meta, b, sp, create=not opts.resume, data_dir=opts.data_dir)
    drive(s, Progress() if progress else None, retrain=retrain, data_dir=opts.data_dir, resume=opts.resume)
    return Run(path)


@dataclass(frozen=True)
class Splits:
    """A budget's dataset as every budgetnas run splits it: ``train`` (what the optimizer sees), ``val`` (the
    seeded, stratified split carved from the training set that selects) and ``test`` (only reported).

    Each is a :class:`budgetnas.data.Arrays` (``x``: uint8 N×H×W×C, ``y``: labels; ``.subset(n, seed)``: a seeded
    stratified subset). ``Splits(train, None, None)`` trains without validation or test (a timing, say).
    """

    train: Arrays
    val: Arrays | None
    test: Arrays | None
    source: str = ""


def load_splits(budget: str | Budget, *, seed: int = 0, space: str | Path | Space | None = None,
                data_dir: str | None = None, budgets_file: str | Path | None = None) -> Splits:
    """The budget's dataset split as a run with ``seed`` splits it (``budget.validation`` images for validation).

    Example:
        >>> splits = budgetnas.load_splits("mnist-15k", seed=0, data_dir="../shared/datasets")
        >>> len(splits.train), len(splits.val), len(splits.test)
        (55000, 5000, 10000)
    """
    from budgetnas.session import load_data_splits

    b, sp = _budget_and_space(budget, space, budgets_file)
    ds, train, val = load_data_splits(b, sp, data_dir, seed)
    return Splits(train, val, ds.test, ds.source)


@dataclass
class Trained:
    """One candidate trained by :func:`train_candidate`: the model, its gate counts and its scores."""

    model: object
    architecture: str
    params: int
    macs: int
    within_budget: bool
    epochs: int
    train_images: int
    val_accuracy: float | None  # after the last epoch: what selects
    test_accuracy: float | None  # scored once, after the last epoch; never for selection
    seconds: float
    history: object  # budgetnas.trainer.History: per-epoch curves


def train_candidate(values: dict | None = None, *, budget: str | Budget, space: str | Path | Space | None = None,
                    epochs: int | None = None, seed: int = 0, recipe: dict | None = None,
                    train_subset: int | None = None, splits: Splits | None = None, split_seed: int = 0,
                    data_dir: str | None = None, budgets_file: str | Path | None = None, test: bool = True,
                    checkpoint_dir: str | Path | None = None, on_epoch=None) -> Trained:
    """Train one network of a space under a budget's recipe, as finalists are trained: the values a trial
    sampled (``{}`` for a fixed space), the budget's full epochs on its whole training split unless
    ``epochs`` / ``train_subset`` say less, ``recipe`` changes to the budget's recipe (``{"lr": 0.1}``).

    ``splits`` reuses data loaded once (:func:`load_splits`); else the dataset is split with ``split_seed``.
    ``checkpoint_dir``: checkpoint each epoch there and continue from it when called again. ``on_epoch``:
    called with (epoch, logs) after each epoch. ``within_budget`` is the gate's verdict (the network is
    trained either way, so a hand-made baseline can be measured beside the budget it breaks).

    Raises:
        TrialFailed: the loss became NaN or infinite (the network diverged under this recipe).

    Example:
        >>> t = budgetnas.train_candidate({}, budget="mnist-15k", space="spaces/seed_mnist_13794.toml", epochs=1)
        >>> t.params, t.val_accuracy
    """
    import dataclasses

    from budgetnas import data as data_mod
    from budgetnas import gate
    from budgetnas.budget import _RECIPE_TYPES, _recipe
    from budgetnas.errors import ConfigError
    from budgetnas.trainer import evaluate, fit_candidate

    recipe = dict(recipe or {})
    unknown = sorted(set(recipe) - set(_RECIPE_TYPES))
    if unknown:
        raise ConfigError(f"recipe: no field {', '.join(unknown)} (fields: {', '.join(sorted(_RECIPE_TYPES))})")
    checked = _recipe("recipe", "recipe", recipe)  # types and allowed values, as a budget's [train] table
    if checked.params():
        raise ConfigError("recipe: one value per field, not a list of choices")
    b, sp = _budget_and_space(budget, space, budgets_file)
    values = dict(values or {})
    verdict = gate.judge(b, sp, values)  # also names every space parameter ``values`` lacks
    splits = splits or load_splits(b, seed=split_seed, space=sp, data_dir=data_dir)
    train = splits.train if train_subset is None else data_mod.subset(splits.train, train_subset, split_seed)
    rec = dataclasses.replace(b.train.resolve(values), **{k: getattr(checked, k) for k in recipe})
    epochs = epochs or b.epochs
    model, history, seconds = fit_candidate(sp, values, rec, train, splits.val, epochs, seed=seed,
                                            on_epoch=on_epoch,
                                            checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None)
    test_acc = evaluate(model, splits.test, sp.classes)[0] if test and splits.test is not None else None
    return Trained(model, verdict.architecture, verdict.total_params, verdict.macs, verdict.ok, epochs, len(train),
                   history.val_accuracy[-1] if history.val_accuracy else None, test_acc, seconds, history)


def _budget_and_space(budget: str | Budget, space, budgets_file):
    from budgetnas.space import load_space

    b = budget if isinstance(budget, Budget) else get_budget(budget, budgets_file)
    if isinstance(space, Space):
        return b, space
    return b, load_space(space or b.space)
