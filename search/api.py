"""budgetnas as a library: any Keras model's per-layer table and its budget verdict, in a notebook or a script.

    import budgetnas

    budgetnas.layer_table(model)                    # output size, params, MACs, kernel/stride/dilation, jump, RF
    verdict = budgetnas.check(model, budget="mnist-15k")
    verdict.ok, verdict.violations                  # every broken rule, as the search's gate words it

Both objects display themselves: an HTML table in Jupyter, a rich table in a terminal (``rich.print``),
plain text with ``print``. Parameters are counted as Keras counts them (``model.count_params()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from budgetnas.budget import Budget, Candidate, get_budget
from budgetnas.data import Arrays
from budgetnas.errors import TrialFailed  # noqa: F401  (public: train_candidate raises it when the loss diverges)
from budgetnas.gate import Verdict  # noqa: F401  (public: what check and judge return)
from budgetnas.receptive import LayerTable, table_from_model
from budgetnas.space import Space

if TYPE_CHECKING:
    from collections.abc import Iterable
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


def layer_table(model: keras.Model | str | Path) -> LayerTable:
    """The per-layer table of a built Keras model, or of a saved one (a ``.keras`` file): output size, params,
    MACs, RF, jump, start.

    Raises:
        budgetnas.errors.UnsupportedLayerError: a layer whose geometry the table cannot reason about.
        budgetnas.errors.ConfigError: a file that does not exist or does not load as a Keras model.

    Example:
        >>> budgetnas.layer_table(model).final_rf
        (22.0, 22.0)
    """
    return table_from_model(_load_model(Path(model)) if isinstance(model, (str, Path)) else model)


def _load_model(path: Path) -> keras.Model:
    from budgetnas.compat import quiet_tensorflow
    from budgetnas.errors import ConfigError

    if not path.is_file():
        raise ConfigError(f"{path}: no such model file")
    quiet_tensorflow()
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many kinds for a bad file
        raise ConfigError(f"{path}: cannot load as a Keras model ({type(exc).__name__}: {exc})".splitlines()[0]) \
            from None


def list_spaces(folder: str | Path | None = None) -> dict[str, Space]:
    """The space files of ``folder`` and its subfolders (default: the shipped spaces), by the name that loads each:
    a shipped space by its path in ``spaces/`` without ``.toml`` (``mnist_tiny``, ``anchors/golf_820``), another
    by its file path.

    Example:
        >>> sorted(budgetnas.list_spaces())[:2]
        ['anchors/factorized_3253', 'anchors/golf_820']
    """
    from budgetnas.space import shipped

    root = Path(folder) if folder else shipped("spaces")
    found = sorted(root.glob("*.toml")) + sorted(root.glob("*/*.toml"))
    return {(str(f) if folder else f.relative_to(root).with_suffix("").as_posix()): load_space(f) for f in found}


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


def describe(space: str | Path | Space, *, budget: str | Budget | None = None, values: dict | None = None,
             sample: int = 1, seed: int = 0, repair: bool = True, budgets_file: str | Path | None = None
             ) -> list[tuple[dict, LayerTable | None, Verdict | None]]:
    """What ``budgetnas describe`` shows, as data: for ``values`` (else the fixed space's one network, else ``sample``
    networks drawn with ``seed``) the values (repaired into the budget when ``repair``), the per-layer table (None
    when the plan already fails) and, with a ``budget``, the gate's verdict on the built model. A budget's recipe
    choices take their first option: they build nothing.

    Example:
        >>> [(v, t.total_params, verdict.ok) for v, t, verdict in budgetnas.describe("mnist_tiny", budget="mnist-8k")]
    """
    import random

    sp = space if isinstance(space, Space) else load_space(space)
    b = budget if budget is None or isinstance(budget, Budget) else load_budget(budget, budgets_file=budgets_file)
    if values is not None:
        candidates = [dict(values)]
    elif not sp.params:
        candidates = [{}]
    else:
        rng = random.Random(seed)
        candidates = [sp.sample(rng) for _ in range(sample)]
    out = []
    for v in candidates:
        if b is None:
            out.append((v, layer_table(build_model(v, space=sp)), None))
            continue
        verdict = judge({**{p.name: p.domain.options[0] for p in b.params()}, **v}, budget=b, space=sp,
                        repair=repair, build=True)
        out.append((dict(verdict.values), verdict.table, verdict))
    return out


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
    from budgetnas.run.folder import load_data_splits

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
