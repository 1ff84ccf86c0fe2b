"""Distillation: a network learns from a larger teacher's soft predictions as well as from the labels.

A recipe with ``teacher = SPACE`` (a fixed space: a file, or a shipped name such as ``teachers/mnist_100k``)
trains that teacher once, on the run's training images only, with the same recipe (distillation aside) for
``teacher_epochs``; the trained teacher is cached by content (:func:`teacher_key`: the teacher's space, its
recipe and epochs, the training images and labels, the seed) under ``$BUDGETNAS_CACHE`` (default
``~/.cache/budgetnas``), so every candidate and finalist of a run, and later runs on the same split, reuse it.
The budget limits the network that ships; the teacher is a training aid, and what it cost is reported.

The loss (Hinton et al. 2015) is ``(1 - alpha) · CE(labels, student) + alpha · T² · KL(teacher_T ‖ student_T)``,
where ``_T`` is the softmax of log-probabilities divided by the temperature ``T``. The teacher's targets come
from each augmented batch (``distill_targets = "batch"``: one teacher forward pass per step) or are computed
once on the un-augmented training images (``"clean"``: free per step, but they describe the image before its
augmentation).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from budgetnas import files
from budgetnas.budget import Recipe
from budgetnas.data import Arrays

CACHE_ENV = "BUDGETNAS_CACHE"
TEACHER_SEED = 0  # the teacher's weights seed: one teacher per split, whichever student seed asks for it


@dataclass(frozen=True)
class Teacher:
    """A trained teacher and what it cost: params, validation accuracy (the run's validation split) and
    training seconds (when it was trained, not when it was read from the cache)."""

    model: object
    name: str
    params: int
    val_accuracy: float | None
    seconds: float
    key: str
    cached: bool

    def describe(self) -> dict:
        return {"teacher": self.name, "params": self.params, "val_accuracy": self.val_accuracy,
                "minutes": round(self.seconds / 60, 2), "cached": self.cached, "key": self.key}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "budgetnas")


FIELDS = ("teacher", "distill_alpha", "distill_temperature", "distill_targets", "teacher_epochs")


def teacher_recipe(recipe: Recipe) -> Recipe:
    """The recipe the teacher trains with: the student's, without distillation."""
    return dataclasses.replace(recipe, **{f: getattr(Recipe, f) for f in FIELDS})


def teacher_key(space_text: str, recipe: Recipe, epochs: int, images: Arrays, seed: int) -> str:
    """Content hash of everything that decides the trained teacher. The recipe counts by the fields that differ
    from their defaults, so a recipe word added later keeps the teachers cached before it."""
    changed = {k: v for k, v in dataclasses.asdict(recipe).items() if v != getattr(Recipe, k)}
    h = hashlib.sha256()
    h.update(json.dumps({"space": space_text, "recipe": changed, "epochs": epochs, "seed": seed},
                        sort_keys=True).encode())
    h.update(np.ascontiguousarray(images.x).tobytes())
    h.update(np.ascontiguousarray(images.y).tobytes())
    return h.hexdigest()[:20]


@contextlib.contextmanager
def cache_slot(key: str):
    """The cache folder of teacher ``key``, held by this process: a second process asking for the same
    teacher waits here until the first has trained and stored it, then reads it."""
    folder = cache_dir() / "teachers" / key
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield folder


def load(folder: Path, key: str) -> Teacher | None:
    """The teacher cached in ``folder``, or None when nothing is stored there yet."""
    import keras

    meta_file, model_file = folder / "teacher.json", folder / "teacher.keras"
    if not (meta_file.exists() and model_file.exists()):
        return None
    meta = files.read_json(meta_file, "a cached teacher")
    model = keras.models.load_model(model_file, compile=False)
    return Teacher(model, meta["teacher"], meta["params"], meta["val_accuracy"], meta["seconds"], key, True)


def store(folder: Path, teacher: Teacher, meta: dict) -> None:
    with files.replacing(folder / "teacher.keras") as tmp:
        teacher.model.save(tmp)
    files.write_text(folder / "teacher.json", json.dumps(
        {"teacher": teacher.name, "params": teacher.params, "val_accuracy": teacher.val_accuracy,
         "seconds": teacher.seconds, **meta}, indent=1))


def soft_targets(teacher: Teacher, images: Arrays, classes: int) -> np.ndarray:
    """The teacher's log-probabilities on the un-augmented ``images`` (``distill_targets = "clean"``)."""
    from budgetnas.data import pipeline

    probs = teacher.model.predict(pipeline(images, classes, 1000, training=False), verbose=0)
    return np.log(np.clip(probs, 1e-7, 1.0)).astype(np.float32)


def distiller(student, teacher: Teacher, alpha: float, temperature: float, classes: int):
    """A Keras model that trains ``student`` (its weights, shared) with the distillation loss.

    Its labels are the one-hot labels, or one-hot labels followed by the teacher's log-probabilities
    (``classes`` more columns: the clean targets). Validation batches carry labels only and score the plain
    loss. Metrics see the labels alone.
    """
    import keras
    from keras import ops

    class Distiller(keras.Model):
        def __init__(self):
            super().__init__()
            self.student, self.teacher = student, teacher.model
            self.teacher.trainable = False

        def call(self, x, training=False):
            return self.student(x, training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            hard = y[:, :classes]
            loss = super().compute_loss(x, hard, y_pred, sample_weight, training)
            if not training:
                return loss
            if y.shape[-1] == 2 * classes:
                t_logp = y[:, classes:]
            else:
                t_logp = ops.log(ops.clip(self.teacher(x, training=False), 1e-7, 1.0))
            s_logp = ops.log(ops.clip(y_pred, 1e-7, 1.0))
            p_t = ops.softmax(t_logp / temperature, axis=-1)
            kl = ops.sum(p_t * (ops.log_softmax(t_logp / temperature, axis=-1)
                                - ops.log_softmax(s_logp / temperature, axis=-1)), axis=-1)
            return (1.0 - alpha) * loss + alpha * temperature ** 2 * ops.mean(kl)

        def compute_metrics(self, x, y, y_pred, sample_weight=None):
            return super().compute_metrics(x, y[:, :classes], y_pred, sample_weight)

    d = Distiller()
    d(np.zeros((1, *student.inputs[0].shape[1:]), dtype="float32"))  # built: an epoch checkpoint can restore it
    return d
