"""The one trainer used by the search, retraining and baseline runs.

It compiles a model with a :class:`~budgetnas.budget.Recipe`, fits it on :func:`budgetnas.data.pipeline`
batches and returns the per-epoch curves. A non-finite loss ends training with :class:`TrialFailed`.
Callers observe each epoch through ``on_epoch`` (the drivers use it to report to a pruner).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
from keras import ops

from budgetnas import compat, distill, files
from budgetnas.budget import Candidate, Recipe
from budgetnas.data import Arrays, Mixup, pipeline
from budgetnas.errors import RunError, TrialFailed
from budgetnas.fused_bn import batch_norms, fuse_batch_norm


@dataclass
class History:
    """Per-epoch curves; ``val_accuracy[i]`` is the validation accuracy after epoch ``i + 1``."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    steps: int = 0  # optimizer steps actually taken
    resumed_at: int = 0  # epochs restored from a checkpoint (0: trained from scratch in one go)
    teacher: dict | None = None  # distilled: the teacher and what it cost (budgetnas.distill.Teacher.describe)

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds",
                                              "steps", "resumed_at", "teacher")}


def lr_schedule(recipe: Recipe, steps_per_epoch: int, epochs: int):
    """The learning rate as a Keras schedule over optimizer steps."""
    total = max(1, steps_per_epoch * epochs)
    lr = recipe.lr
    if recipe.schedule == "constant":
        return lr
    if recipe.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total, alpha=0.0)
    if recipe.schedule == "step":  # ×0.1 at 50% and 75% of training
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            [int(total * 0.5), int(total * 0.75)], [lr, lr * 0.1, lr * 0.01])
    if recipe.schedule == "staircase":  # lr × decay every decay_every epochs
        return keras.optimizers.schedules.ExponentialDecay(lr, decay_steps=steps_per_epoch * recipe.decay_every,
                                                           decay_rate=recipe.decay, staircase=True)
    if recipe.schedule == "inverse_time":  # lr / (1 + decay * epoch), the classic Keras 2 'decay'
        return keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=steps_per_epoch,
                                                           decay_rate=recipe.decay)
    return OneCycle(lr, total)


@keras.saving.register_keras_serializable(package="budgetnas")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from lr/25 to lr over the first 25% of steps, then cosine down to lr/2500."""

    def __init__(self, peak: float, total_steps: int, warmup: float = 0.25):
        self.peak, self.total_steps, self.warmup = float(peak), int(total_steps), float(warmup)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        up = max(1.0, self.total_steps * self.warmup)
        start, end = self.peak / 25.0, self.peak / 2500.0
        rising = start + (self.peak - start) * step / up
        frac = ops.clip((step - up) / max(1.0, self.total_steps - up), 0.0, 1.0)
        falling = end + (self.peak - end) * 0.5 * (1.0 + ops.cos(math.pi * frac))
        return ops.where(step < up, rising, falling)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup": self.warmup}


def make_optimizer(recipe: Recipe, steps_per_epoch: int, epochs: int):
    lr = lr_schedule(recipe, steps_per_epoch, epochs)
    wd = recipe.weight_decay or None
    # Keras keeps the weight average in the optimizer; fit() swaps it in after the last epoch.
    extra = {"use_ema": True, "ema_momentum": recipe.ema} if recipe.ema else {}
    if recipe.clipnorm:
        extra["global_clipnorm"] = recipe.clipnorm
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=recipe.momentum, nesterov=True, weight_decay=wd, **extra)
    if recipe.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=recipe.weight_decay, **extra)
    if recipe.optimizer == "nadam":
        return keras.optimizers.Nadam(lr, weight_decay=wd, **extra)
    return keras.optimizers.Adam(lr, weight_decay=wd, **extra)


def seed_everything(seed: int) -> None:
    keras.utils.set_random_seed(seed)


def train(model, train_data: Arrays, val_data: Arrays | None, recipe: Recipe, epochs: int, *, seed: int,
          classes: int, on_epoch: Callable[[int, dict[str, float]], None] | None = None,
          on_batch: Callable[[int, dict[str, float]], None] | None = None,
          checkpoint_dir: Path | None = None, fused_bn: bool = True, teacher_images: Arrays | None = None,
          history: History | None = None) -> History:
    """Compile and fit ``model``; returns its per-epoch history.

    Args:
        train_data: the images the optimizer sees (never the test set during a search).
        val_data: the split that scores each epoch (validation during search, test at retrain).
        on_epoch: called after each epoch with (epoch starting at 1, logs); may raise to stop
            (e.g. ``optuna.TrialPruned``), which propagates to the caller.
        on_batch: called after each training batch (progress display).
        checkpoint_dir: save weights, optimizer state and curves here after every epoch; a run
            stopped midway (killed, out of time) continues from its last finished epoch when called
            again with the same folder. Removed once training ends. The resumed run goes on with the
            same schedule and optimizer state, but its data order differs from an unbroken run.
        fused_bn: on TensorFlow, train the batch norms through the fused kernel (``fused_bn.py``: the
            same arithmetic, about 3x faster for those layers on a CPU); False keeps Keras' own ops.
        teacher_images: with a ``recipe.teacher``, the images its teacher trains on (default
            ``train_data``): a search trial on a subset passes the run's whole training split, so that
            every candidate learns from the same teacher.
        history: fill this :class:`History` (a caller reads it also when ``on_epoch`` stopped training by
            raising: the steps a pruned trial took).

    Raises:
        TrialFailed: the loss became NaN or infinite.
    """
    seed_everything(seed)
    if fused_bn:
        fuse_batch_norm(model)
    student, soft = model, None
    history = history if history is not None else History()
    if recipe.teacher:
        teacher = teacher_for(recipe, teacher_images if teacher_images is not None else train_data, val_data,
                              classes)
        history.teacher = teacher.describe()
        if recipe.distill_targets == "clean":
            soft = distill.soft_targets(teacher, train_data, classes)
        model = distill.distiller(student, teacher, recipe.distill_alpha, recipe.distill_temperature, classes)
        seed_everything(seed)  # the student's data order does not depend on whether its teacher was cached
    steps = math.ceil(len(train_data) / recipe.batch_size)
    model.compile(
        optimizer=make_optimizer(recipe, steps, epochs),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
        # TensorFlow: XLA measured slower here (2 epochs of 20k MNIST on CPU: 89 s with, 66 s without).
        # JAX runs eagerly without jit, so it always compiles there.
        jit_compile=keras.backend.backend() == "jax",
    )
    mixup = Mixup(recipe.mixup, epochs) if recipe.mixup else None
    train_ds = pipeline(train_data, classes, recipe.batch_size, training=True, augment=recipe.augment, seed=seed,
                        soft=soft, mixup=mixup)
    val_ds = pipeline(val_data, classes, 500, training=False) if val_data is not None else None
    recorder = _Recorder(history, on_epoch, on_batch)
    callbacks: list = [recorder]
    if mixup is not None:  # its cap follows the epoch (a resumed run's too: Keras counts from the restored one)
        callbacks.insert(0, keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: mixup.at_epoch(epoch)))
    if recipe.ema:  # every validation scores the averaged weights, the ones training ends with
        calibration = _calibration_images(train_data, recipe.batch_size, seed)
        callbacks[:0] = [keras.callbacks.SwapEMAWeights(), _AveragedBatchNorm(student, calibration, recipe.batch_size)]
    if checkpoint_dir is not None:
        callbacks.append(_Checkpoint(Path(checkpoint_dir), history, epochs))
    # A tf.data pipeline shuffles itself; fit's default shuffle=True only warns about it (in every seed process).
    # The NumPy batches of the other backends keep Keras' default, which they were measured with.
    shuffle = {"shuffle": False} if keras.backend.backend() == "tensorflow" else {}
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=0, callbacks=callbacks, **shuffle)
    if recorder.bad_loss is not None:
        raise TrialFailed(f"loss became {recorder.bad_loss} in epoch {history.epochs + 1}")
    if recipe.ema:  # fit() has put the averaged weights in: measure their batch-norm statistics
        recalibrate_batch_norm(student, calibration, recipe.batch_size)
    return history


CALIBRATION_BATCHES = 32  # training batches that measure the batch-norm statistics of averaged weights


def recalibrate_batch_norm(model, images: np.ndarray, batch_size: int) -> None:
    """Set every batch norm's moving statistics of ``model`` to the mean of its batch statistics over
    ``images`` (whole batches of ``batch_size``, in training mode), as ``torch.optim.swa_utils.update_bn``
    does for averaged weights. No weight but those statistics changes."""
    layers = batch_norms(model)
    momentum = [layer.momentum for layer in layers]
    try:
        for k, start in enumerate(range(0, len(images) - batch_size + 1, batch_size)):
            for layer in layers:  # statistic_k = statistic_{k-1} * k / (k + 1) + batch_k / (k + 1): a running mean
                layer.momentum = k / (k + 1)
            model(images[start:start + batch_size], training=True)
    finally:
        for layer, m in zip(layers, momentum):
            layer.momentum = m


def _calibration_images(data: Arrays, batch_size: int, seed: int) -> np.ndarray:
    n = min(len(data), CALIBRATION_BATCHES * batch_size)
    return data.x[np.random.default_rng(seed).choice(len(data), n, replace=False)].astype("float32")


class _AveragedBatchNorm(keras.callbacks.Callback):
    """Batch-norm statistics that belong to the averaged weights (``recipe.ema``) when they are scored.

    Keras' optimizer averages the trainable weights only: the batch norms' moving statistics stay those of
    the live weights, which the average does not match (a CIFAR-10 screen scored 80.74% with the live
    statistics, ``benchmarks/cifar_recipe/table.md``). Before each validation, after
    :class:`keras.callbacks.SwapEMAWeights` has swapped the average in, the statistics are measured afresh
    (:func:`recalibrate_batch_norm`). Training itself normalises with each batch's own statistics, so the
    moving ones it would have kept are not needed again.
    """

    def __init__(self, network, images: np.ndarray, batch_size: int):
        super().__init__()
        self.network, self.images, self.batch_size = network, images, batch_size

    def on_test_begin(self, logs=None):
        recalibrate_batch_norm(self.network, self.images, self.batch_size)


def teacher_for(recipe: Recipe, images: Arrays, val: Arrays | None, classes: int) -> distill.Teacher:
    """The teacher ``recipe`` names, trained with :func:`train` on ``images`` the first time it is asked for
    and read from the cache (:mod:`budgetnas.distill`) after that."""
    from budgetnas.build import build_model
    from budgetnas.errors import ConfigError
    from budgetnas.space import load_space

    space = load_space(recipe.teacher)
    if space.params:
        raise ConfigError(f"{space.path}: a teacher must be a fixed space ({len(space.params)} free choices)")
    if space.classes != classes:
        raise ConfigError(f"{space.path}: the teacher has {space.classes} classes, the data {classes}")
    trecipe = distill.teacher_recipe(recipe)
    key = distill.teacher_key(Path(space.path).read_text(encoding="utf-8"), trecipe, recipe.teacher_epochs, images,
                              distill.TEACHER_SEED)
    with distill.cache_slot(key) as folder:
        cached = distill.load(folder, key)
        if cached is not None:
            return cached
        model = build_model(space, {}, seed=distill.TEACHER_SEED)
        t0 = time.perf_counter()
        train(model, images, None, trecipe, recipe.teacher_epochs, seed=distill.TEACHER_SEED, classes=classes)
        seconds = time.perf_counter() - t0
        teacher = distill.Teacher(model, recipe.teacher, int(model.count_params()),
                                  evaluate(model, val, classes)[0] if val is not None else None, seconds, key, False)
        distill.store(folder, teacher, {"space": str(space.path), "epochs": recipe.teacher_epochs,
                                        "train_images": len(images)})
        return teacher


def fit_candidate(space, values, recipe: Recipe, train_data: Arrays, val_data: Arrays | None, epochs: int, *,
                  seed: int, on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                  checkpoint_dir: Path | None = None, teacher_images: Arrays | None = None
                  ) -> tuple[Any, History, float]:
    """The network ``values`` picks in ``space`` (its ``train.*`` choices aside), built with ``seed`` and
    trained with :func:`train`: the one place a candidate is trained outside a search trial (finalists,
    re-scoring, :func:`budgetnas.train_candidate`). Returns the model, its history and its training seconds,
    counting the epochs a resumed ``checkpoint_dir`` had finished before.
    """
    from budgetnas.build import build_model

    model = build_model(space, Candidate.of(values).network, seed=seed)
    t0 = time.perf_counter()
    history = train(model, train_data, val_data, recipe, epochs, seed=seed, classes=space.classes,
                    on_epoch=on_epoch, checkpoint_dir=checkpoint_dir, teacher_images=teacher_images)
    return model, history, time.perf_counter() - t0 + sum(history.epoch_seconds[:history.resumed_at])


class _Recorder(keras.callbacks.Callback):
    """Records curves and step counts, stops on a non-finite loss, forwards epochs to the caller."""

    def __init__(self, history: History, on_epoch, on_batch):
        super().__init__()
        self.h, self.on_epoch, self.on_batch = history, on_epoch, on_batch
        self.bad_loss: float | None = None
        self.t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.h.steps += 1
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            self.bad_loss = loss
            self.model.stop_training = True
        elif self.on_batch is not None:
            self.on_batch(batch, dict(logs or {}))

    def on_epoch_end(self, epoch, logs=None):
        if self.bad_loss is not None:
            return
        logs = dict(logs or {})
        self.h.epoch_seconds.append(time.perf_counter() - self.t0)
        logs["seconds"] = self.h.epoch_seconds[-1]
        self.h.loss.append(float(logs.get("loss", math.nan)))
        self.h.accuracy.append(float(logs.get("accuracy", math.nan)))
        if "val_accuracy" in logs:
            self.h.val_loss.append(float(logs["val_loss"]))
            self.h.val_accuracy.append(float(logs["val_accuracy"]))
        if self.on_epoch is not None:
            self.on_epoch(epoch + 1, logs)


class _Checkpoint(compat.EpochBackup):
    """Keras' epoch-level backup (weights + optimizer state + epoch), plus our curves so far.

    Each of the three files is written whole or not at all (:mod:`budgetnas.files`): curves, then
    weights, then the epoch number. After a kill between two of them the curves or the weights are one
    epoch ahead at most; loading cuts the curves back to the epoch the metadata names. A checkpoint that
    cannot be read anyway (cut by hand or by a full disk) is one :class:`RunError` line naming its folder.

    The Keras internals it rests on are named in :mod:`budgetnas.compat` (:class:`~budgetnas.compat.EpochBackup`).
    """

    def __init__(self, folder: Path, history: History, epochs: int):
        super().__init__(str(folder), save_freq="epoch")
        self.file, self.h, self.epochs = folder / "history.json", history, epochs

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError) as exc:
            raise RunError(f"{self.file.parent}: the epoch checkpoint is damaged ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}); remove the folder to train this seed "
                           "from its first epoch") from None
        done = self.restored_epoch()
        if done and self.file.exists():
            saved = files.read_json(self.file, "the epoch checkpoint's curves")
            if saved.get("planned_epochs") != self.epochs:
                raise RunError(f"{self.file.parent}: checkpoint of a {saved.get('planned_epochs')}-epoch run; "
                               f"continue it with {saved.get('planned_epochs')} epochs, not {self.epochs}")
            for k in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"):
                getattr(self.h, k).extend(saved[k][:done])
            self.h.steps = int(self.model.optimizer.iterations.numpy())
            self.h.resumed_at = done

    def write_backup(self, weights: Path, metadata: Path, epoch: int, batch: int) -> None:
        files.write_text(self.file, json.dumps({**self.h.as_dict(), "planned_epochs": self.epochs}))
        with files.replacing(weights) as tmp:
            self.model.save_weights(filepath=str(tmp), overwrite=True)
        files.write_text(metadata, json.dumps({"epoch": epoch, "batch": batch}))


def evaluate(model, data: Arrays, classes: int) -> tuple[float, np.ndarray]:
    """Accuracy of ``model`` on ``data`` and its predicted labels."""
    probs = model.predict(pipeline(data, classes, 1000, training=False), verbose=0)
    pred = probs.argmax(axis=1)
    return float((pred == data.y).mean()), pred
