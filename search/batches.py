"""NumPy batches for Keras' backends other than TensorFlow (JAX on a GPU machine without TensorFlow).

:func:`budgetnas.data.pipeline` hands these out on any backend but TensorFlow; the augmentations
mirror the Keras preprocessing layers of its ``tf.data`` path (see :class:`ArrayBatches`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np

from budgetnas.augment import JITTER, TURN, jitter, mix
from budgetnas.errors import DataError

if TYPE_CHECKING:  # data.py imports this module (lazily); no import back at run time
    from budgetnas.data import Arrays, Mixup

KINDS = ("shift", "rotate", "shift-rotate", "crop-flip", "crop-flip-cutout", "crop-flip-rotate-jitter")  # what augment_batch draws


class ArrayBatches(keras.utils.PyDataset):
    """The batches of :func:`budgetnas.data.pipeline`'s ``tf.data`` path, in NumPy, for any Keras backend.

    Epoch ``e`` is shuffled by ``numpy.random.default_rng([seed, e])`` and its batch ``i`` augmented by
    ``default_rng([seed, e, i])``, so a seeded run repeats exactly (a resumed run counts epochs from
    its restart, like the ``tf.data`` path). Augmentation matches the Keras layers of the ``tf.data`` path
    in kind and range: "shift" moves by up to ±2 px (zero fill, bilinear), "rotate" turns by up to ±8°,
    "shift-rotate" does both, "crop-flip" crops a 4-px reflect-padded image at a random whole-pixel
    offset and flips half the images left-right, "crop-flip-cutout" then erases one square of half the
    image's side per image (:func:`cutout`), "crop-flip-rotate-jitter" turns by up to ±15° (reflected at the
    border) and jitters colour (:func:`budgetnas.augment.jitter`). ``mixup`` mixes each batch after that
    (:func:`budgetnas.augment.mix`, its cap read from the trainer's :class:`budgetnas.data.Mixup`).
    """

    def __init__(self, arrays: Arrays, classes: int, batch_size: int, *, training: bool,
                 augment: str = "none", seed: int = 0, mixup: Mixup | None = None):
        super().__init__()
        if augment != "none" and augment not in KINDS:
            raise DataError(f"unknown augmentation {augment!r}: use one of none, {', '.join(KINDS)}")
        self.arrays, self.classes, self.batch_size = arrays, classes, batch_size
        self.training, self.augment, self.seed, self.mixup = training, augment if training else "none", seed, mixup
        self.epoch = -1
        self.order = np.arange(len(arrays))
        self.on_epoch_begin()

    def __len__(self) -> int:
        return -(-len(self.arrays) // self.batch_size)

    def on_epoch_begin(self) -> None:
        self.epoch += 1
        if self.training:
            self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.arrays))

    def __getitem__(self, i: int):
        idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        x = self.arrays.x[idx].astype(np.float32)
        if self.augment != "none":
            rng = np.random.default_rng([self.seed, self.epoch, i])
            x = augment_batch(x, self.augment, rng)
        y = np.eye(self.classes, dtype=np.float32)[self.arrays.y[idx]]
        if self.mixup is not None:
            rng = np.random.default_rng([self.seed, self.epoch, i, 1])
            x, y = mix(x, y, rng.uniform(0.0, 1.0, len(x)) * self.mixup.cap, rng.permutation(len(x)))
            x, y = x.astype(np.float32), y.astype(np.float32)
        return x, y


def augment_batch(x: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One augmentation draw per image of an N×H×W×C float batch (see :class:`ArrayBatches`)."""
    n, h, w, _ = x.shape
    if kind in ("crop-flip", "crop-flip-cutout"):
        out = crop(np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect"), rng.integers(0, 9, (n, 2)), h, w)
        flip = rng.random(n) < 0.5
        out[flip] = out[flip, :, ::-1]
        if kind == "crop-flip-cutout":
            out = cutout(out, rng.integers(0, (h, w), (n, 2)), h // 2)
        return out
    if kind == "crop-flip-rotate-jitter":
        out = augment_batch(x, "crop-flip", rng)
        out = affine(out, np.deg2rad(rng.uniform(-TURN, TURN, n)), np.zeros((n, 2)), fill="reflect")
        b, c, s = JITTER
        draw = rng.uniform(-1.0, 1.0, (3, n))
        return jitter(out, b * draw[0], 1.0 + c * draw[1], 1.0 + s * draw[2]).astype(x.dtype)
    shift = rng.uniform(-2.0, 2.0, (n, 2)) if kind != "rotate" else np.zeros((n, 2))  # as RandomTranslation(2 / size)
    angle = rng.uniform(-8.0, 8.0, n) if kind != "shift" else np.zeros(n)  # as RandomRotation(8 / 360)
    return affine(x, np.deg2rad(angle), shift)


def cutout(x: np.ndarray, centres: np.ndarray, size: int) -> np.ndarray:
    """Each image with the ``size``×``size`` square centred at ``centres[k]`` (clipped at the border)
    set to the batch's mean colour, as :func:`budgetnas.data.cutout` does."""
    _, h, w, _ = x.shape
    top, left = centres[:, 0] - size // 2, centres[:, 1] - size // 2
    rows = np.arange(h)[None, :, None] - top[:, None, None]
    cols = np.arange(w)[None, None, :] - left[:, None, None]
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    return np.where(inside[..., None], x.mean(axis=(0, 1, 2), keepdims=True), x).astype(x.dtype)


def crop(padded: np.ndarray, corners: np.ndarray, h: int, w: int) -> np.ndarray:
    """``padded[k, r:r + h, c:c + w]`` for each image k and its corner (r, c), in one gather."""
    rows = corners[:, 0, None] + np.arange(h)
    cols = corners[:, 1, None] + np.arange(w)
    return padded[np.arange(len(padded))[:, None, None], rows[:, :, None], cols[:, None, :]]


def affine(x: np.ndarray, angle: np.ndarray, shift: np.ndarray, fill: str = "zero") -> np.ndarray:
    """Rotate each image by ``angle[k]`` radians (counter-clockwise as displayed, about its centre),
    then move it by ``shift[k] = (down, right)`` pixels; bilinear sampling, zeros outside (``fill="reflect"``:
    the image mirrored about its border, ``d c b a | a b c d | d c b a``, as Keras' ``fill_mode="reflect"``)."""
    n, h, w, _ = x.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    r, c = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    # Inverse map: the output pixel (r, c) reads the input at the rotated-back, shifted-back spot.
    dy = r[None] - cy - shift[:, 0, None, None]
    dx = c[None] - cx - shift[:, 1, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    src_r = cy + cos * dy + sin * dx
    src_c = cx - sin * dy + cos * dx
    r0, c0 = np.floor(src_r).astype(np.int64), np.floor(src_c).astype(np.int64)
    fr, fc = (src_r - r0)[..., None], (src_c - c0)[..., None]
    k = np.arange(n)[:, None, None]

    def at(rr, cc):
        if fill == "reflect":
            return x[k, _mirror(rr, h), _mirror(cc, w)]
        inside = ((rr >= 0) & (rr < h) & (cc >= 0) & (cc < w))[..., None]
        return np.where(inside, x[k, np.clip(rr, 0, h - 1), np.clip(cc, 0, w - 1)], 0.0)

    out = (at(r0, c0) * (1 - fr) * (1 - fc) + at(r0, c0 + 1) * (1 - fr) * fc
           + at(r0 + 1, c0) * fr * (1 - fc) + at(r0 + 1, c0 + 1) * fr * fc)
    return out.astype(x.dtype)


def _mirror(i: np.ndarray, size: int) -> np.ndarray:
    """Indices folded back into 0..size-1 by mirroring about the border (-1 → 0, size → size - 1)."""
    period = 2 * size
    i = np.mod(i, period)
    return np.where(i < size, i, period - 1 - i)
