"""Datasets: find and read the arrays, carve the validation split, feed the training loop.

Lookup for a built-in name (``mnist``, ``cifar10``, ``fashion_mnist``): ``<data_dir>/<name>.npz``
where data_dir is ``--data-dir`` or ``$BUDGETNAS_DATA_DIR``, then ``keras.datasets`` (which
downloads). Any other name is a path to an ``.npz`` with ``x_train, y_train, x_test, y_test``.
The test split is only handed out by :func:`load` for final scoring; the search sees
``train``/``val`` from :func:`split` only.

Batches come from ``tf.data`` on the TensorFlow backend (what CI and the CPU numbers use) and from
:class:`budgetnas.batches.ArrayBatches`, plain NumPy, on Keras' other backends (e.g. JAX on a GPU machine
without TensorFlow).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from budgetnas.augment import JITTER, TURN, jitter, mix
from budgetnas.errors import DataError

BUILTIN = ("mnist", "cifar10", "fashion_mnist")
AUGMENTATIONS = ("none", "shift", "rotate", "shift-rotate", "crop-flip", "crop-flip-cutout", "crop-flip-rotate-jitter")
ENV_VAR = "BUDGETNAS_DATA_DIR"


@dataclass(frozen=True)
class Arrays:
    """Images as uint8 N×H×W×C and integer labels."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def join(self, other: "Arrays") -> "Arrays":
        """These images followed by ``other``'s (a final fit trains on train + validation)."""
        return Arrays(np.concatenate([self.x, other.x]), np.concatenate([self.y, other.y]))

    def split(self, size: int, seed: int) -> tuple["Arrays", "Arrays"]:
        """(the rest, ``size`` images): a seeded stratified split (:func:`split`), as validation is carved."""
        return split(self, size, seed)

    def subset(self, size: int, seed: int = 0) -> "Arrays":
        """A seeded stratified subset of ``size`` images (:func:`subset`); all of them when ``size >= len``."""
        return subset(self, size, seed)


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str  # the file or loader the arrays came from
    train: Arrays
    test: Arrays

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    @property
    def classes(self) -> int:
        return int(max(self.train.y.max(), self.test.y.max())) + 1


def _as_nhwc(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.dtype != np.uint8:
        raise DataError(f"{where}: images must be uint8 N×H×W or N×H×W×C, got {x.dtype} {x.shape}")
    return x


def _from_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)}")
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as .npz: {exc}") from None
    return _dataset(path.stem, str(path), arrays)


def _dataset(name: str, source: str, a: dict[str, np.ndarray]) -> Dataset:
    train = Arrays(_as_nhwc(a["x_train"], f"{source}: x_train"), a["y_train"].reshape(-1).astype(np.int64))
    test = Arrays(_as_nhwc(a["x_test"], f"{source}: x_test"), a["y_test"].reshape(-1).astype(np.int64))
    if len(train.x) != len(train.y) or len(test.x) != len(test.y):
        raise DataError(f"{source}: images and labels differ in length")
    return Dataset(name, source, train, test)


def load(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load a built-in dataset by name or any ``.npz`` by path (see the module docstring)."""
    if name not in BUILTIN:
        path = Path(name)
        if path.suffix == ".npz" or path.exists():
            if not path.is_file():
                raise DataError(f"{path}: no such dataset file")
            return _from_npz(path)
        raise DataError(f"unknown dataset {name!r}: use one of {', '.join(BUILTIN)} or a path to an .npz file")
    looked = []
    for d in (data_dir, os.environ.get(ENV_VAR)):
        if d:
            candidate = Path(d) / f"{name}.npz"
            looked.append(str(candidate))
            if candidate.is_file():
                return _from_npz(candidate)
    try:
        import keras

        (xt, yt), (xs, ys) = getattr(keras.datasets, name).load_data()
    except Exception as exc:  # keras raises many kinds of errors when offline
        where = ", ".join(looked) if looked else f"no data directory given (--data-dir or ${ENV_VAR})"
        raise DataError(
            f"dataset {name!r} not found (looked in: {where}) and keras.datasets could not download it "
            f"({type(exc).__name__}); put {name}.npz in a directory and pass --data-dir DIR or set ${ENV_VAR}"
        ) from None
    return _dataset(name, f"keras.datasets.{name}", {"x_train": xt, "y_train": yt, "x_test": xs, "y_test": ys})


def split(train: Arrays, val_size: int, seed: int) -> tuple[Arrays, Arrays]:
    """A fixed, seeded, stratified (train, validation) split carved from the training set."""
    if not 0 < val_size < len(train):
        raise DataError(f"validation size {val_size} must be between 1 and {len(train) - 1}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(train.y, return_counts=True)
    # Largest-remainder allocation keeps class proportions and hits val_size exactly.
    exact = counts * val_size / len(train)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take))[: val_size - take.sum()]:
        take[i] += 1
    val_idx = []
    for c, k in zip(classes, take):
        idx = np.flatnonzero(train.y == c)
        val_idx.append(rng.choice(idx, size=k, replace=False))
    val_mask = np.zeros(len(train), dtype=bool)
    val_mask[np.concatenate(val_idx)] = True
    return Arrays(train.x[~val_mask], train.y[~val_mask]), Arrays(train.x[val_mask], train.y[val_mask])


def subset(arrays: Arrays, size: int, seed: int) -> Arrays:
    """A seeded stratified subset (the low-fidelity proxy); ``size >= len`` returns everything."""
    if size <= 0 or size >= len(arrays):
        return arrays
    rest, picked = split(arrays, size, seed)
    return picked


def _augmenter(kind: str, shape: tuple[int, int, int], seed: int):
    """A batch-level Keras augmentation stack (vectorised: one op per batch, cheap on CPU)."""
    import keras

    if kind == "none":
        return None
    h = shape[0]
    if kind in ("shift", "rotate", "shift-rotate"):
        ops = []
        if kind != "rotate":  # up to ±2 pixels
            ops.append(keras.layers.RandomTranslation(2 / h, 2 / h, fill_mode="constant", seed=seed))
        if kind != "shift":  # up to ±8 degrees
            ops.append(keras.layers.RandomRotation(8 / 360, fill_mode="constant", seed=seed + 1))
    else:  # crop-flip: pad-4-and-crop equivalent, horizontal flip; then a cutout square, or turns and colour
        ops = [keras.layers.RandomTranslation(4 / h, 4 / h, fill_mode="reflect", seed=seed),
               keras.layers.RandomFlip("horizontal", seed=seed + 1)]
        if kind == "crop-flip-cutout":
            ops.append(cutout(cutout_size(h), seed=seed + 2))
        if kind == "crop-flip-rotate-jitter":  # as github xvel/cifar10-tiniest (its hue shift and sharpness left out)
            ops += [keras.layers.RandomRotation(TURN / 360, fill_mode="reflect", seed=seed + 2),
                    _jitter_class()(seed=seed + 3)]
    return keras.Sequential(ops)


@functools.cache
def _jitter_class():
    import keras
    from keras import ops

    class ColourJitter(keras.layers.Layer):
        """:func:`budgetnas.augment.jitter` with factors drawn per image: brightness ± JITTER[0], contrast
        1 ± JITTER[1], saturation 1 ± JITTER[2], each uniform."""

        def __init__(self, seed: int | None = None, **kwargs):
            super().__init__(**kwargs)
            self.generator = keras.random.SeedGenerator(seed)

        def call(self, x):
            n = ops.shape(x)[0]
            b, c, s = JITTER
            draw = keras.random.uniform((3, n), -1.0, 1.0, seed=self.generator)
            return jitter(x, b * draw[0], 1.0 + c * draw[1], 1.0 + s * draw[2], ops=ops)

    return ColourJitter


class Mixup:
    """Mixup (Zhang et al., 2018) as github xvel/cifar10-tiniest ramps it: each training image is mixed with another
    image of its batch, ``x = (1 − λ)·x + λ·x'`` and its one-hot label likewise, ``λ ~ U(0, cap)`` drawn per image;
    ``cap = min(peak, epoch / epochs)`` grows as training goes on (epochs counted from 0). The trainer calls
    :meth:`at_epoch` as each epoch begins (a resumed run too, with its true epoch)."""

    def __init__(self, peak: float, epochs: int):
        self.peak, self.epochs = float(peak), max(1, int(epochs))
        self.cap, self._variable = 0.0, None

    def at_epoch(self, epoch: int) -> None:
        self.cap = min(self.peak, epoch / self.epochs)
        if self._variable is not None:
            self._variable.assign(self.cap)

    def variable(self):
        """The cap as a TensorFlow variable, read by the ``tf.data`` path each batch."""
        if self._variable is None:
            import tensorflow as tf

            self._variable = tf.Variable(self.cap, trainable=False, dtype=tf.float32)
        return self._variable


def cutout_size(height: int) -> int:
    """Side of the cutout square: half the image (16 px on CIFAR-10, as DeVries & Taylor 2017)."""
    return height // 2


def cutout(size: int, seed: int | None = None):
    """A Keras layer that erases one ``size``×``size`` square per image (see ``_cutout_class``)."""
    return _cutout_class()(size, seed=seed)


@functools.cache
def _cutout_class():
    import keras
    from keras import ops

    class Cutout(keras.layers.Layer):
        """Erase one ``size``×``size`` square per image, centred anywhere in it (clipped at the border),
        to the batch's mean colour: about 0 once the model standardises its input."""

        def __init__(self, size: int, seed: int | None = None, **kwargs):
            super().__init__(**kwargs)
            self.size, self.generator = size, keras.random.SeedGenerator(seed)

        def call(self, x):
            n, h, w = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
            centre = keras.random.randint((n, 2), 0, 2**30, seed=self.generator)
            top = centre[:, 0] % h - self.size // 2
            left = centre[:, 1] % w - self.size // 2
            rows = ops.arange(h)[None, :, None] - top[:, None, None]
            cols = ops.arange(w)[None, None, :] - left[:, None, None]
            inside = (rows >= 0) & (rows < self.size) & (cols >= 0) & (cols < self.size)
            fill = ops.mean(x, axis=(0, 1, 2), keepdims=True)
            return ops.where(inside[..., None], fill, x)

    return Cutout  # defined on first use: importing this module does not import Keras


def pipeline(arrays: Arrays, classes: int, batch_size: int, *, training: bool, augment: str = "none",
             seed: int = 0, soft: np.ndarray | None = None, mixup: Mixup | None = None):
    """Batches of (float32 0..255 images, one-hot labels): shuffled and augmented when ``training``.

    Pixels stay raw: every model starts with a Rescaling layer that standardises them.
    A ``tf.data`` pipeline on the TensorFlow backend, a :class:`budgetnas.batches.ArrayBatches` on the others.
    ``soft``: one row per image (a teacher's log-probabilities, :mod:`budgetnas.distill`) appended to its
    one-hot label, so that it follows the image through the shuffle (TensorFlow backend). ``mixup``: mix each
    training batch after augmenting it (:class:`Mixup`).
    """
    import keras

    if augment not in AUGMENTATIONS:
        raise DataError(f"unknown augmentation {augment!r}: use one of {', '.join(AUGMENTATIONS)}")
    if keras.backend.backend() != "tensorflow":
        if soft is not None:
            raise DataError("distill_targets = \"clean\" needs the TensorFlow backend; use \"batch\"")
        from budgetnas.batches import ArrayBatches

        return ArrayBatches(arrays, classes, batch_size, training=training, augment=augment, seed=seed,
                            mixup=mixup if training else None)
    import tensorflow as tf

    labels = arrays.y if soft is None else (arrays.y, soft)
    ds = tf.data.Dataset.from_tensor_slices((arrays.x, labels))
    if training:
        ds = ds.shuffle(len(arrays), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    aug = _augmenter(augment, tuple(arrays.x.shape[1:]), seed) if training else None
    if mixup is not None and training:
        if soft is not None:
            raise DataError("mixup mixes one-hot labels: it does not combine with distill_targets = \"clean\"")
        cap, draws = mixup.variable(), keras.random.SeedGenerator(seed + 7)

    def prepare(x, y):
        x = tf.cast(x, tf.float32)
        if aug is not None:
            x = aug(x, training=True)
        if soft is not None:
            return x, tf.concat([tf.one_hot(y[0], classes), y[1]], axis=-1)
        y = tf.one_hot(y, classes)
        if mixup is not None and training:
            n = tf.shape(x)[0]
            lam = keras.random.uniform((n,), 0.0, 1.0, seed=draws) * cap
            partner = tf.argsort(keras.random.uniform((n,), seed=draws))
            x, y = mix(x, y, lam, partner, ops=keras.ops)
        return x, y

    # Augmentation draws from a stateful seed generator: calling it in order (one batch at a time)
    # keeps a seeded run repeatable; prefetch still overlaps it with the training step.
    parallel = None if aug is not None or (mixup is not None and training) else tf.data.AUTOTUNE
    return ds.map(prepare, num_parallel_calls=parallel).prefetch(tf.data.AUTOTUNE)
