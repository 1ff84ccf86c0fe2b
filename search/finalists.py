"""Finalists: retrain chosen architectures with several seeds and score them on the test set once.

Selection happened on the validation split; here each finalist trains on the training split for
the budget's full epoch count (validation curves are recorded for the plots, not used to choose),
and the test set is evaluated once per seed, after the final epoch. A plain dict of values
rebuilds each model, so nothing here needs the search machinery.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from budgetnas import files, gate
from budgetnas.budget import Budget, Recipe
from budgetnas.data import Arrays
from budgetnas.space import Space

FILE = "finalists.json"


@dataclass
class SeedResult:
    seed: int
    test_accuracy: float
    final_val_accuracy: float | None
    train_seconds: float
    history: dict[str, Any]
    model_file: str
    confusion: list[list[int]] = field(default_factory=list)
    backend: str | None = None  # the Keras backend it trained under (None: recorded before this field existed)


@dataclass
class Finalist:
    """One architecture's retraining: per-seed test accuracy and what it costs."""

    label: str  # "trial 12", or the space name for a fixed network
    trial: int | None
    space: str  # the space file the values apply to, relative to the run folder ("space.toml")
    values: dict[str, Any]
    architecture: str
    params: int
    trainable_params: int
    macs: int
    final_rf: list[float]
    epochs: int
    recipe: dict[str, Any]
    val_accuracy_search: float | None = None
    seeds: list[SeedResult] = field(default_factory=list)
    fit: str = "train"  # "all": a final fit of the validation winner on train + validation (no validation curve)

    @property
    def accuracies(self) -> list[float]:
        return [s.test_accuracy for s in self.seeds]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.stdev(self.accuracies) if len(self.seeds) > 1 else 0.0

    @property
    def spread(self) -> str:
        """'mean% ± std' over the seeds; a single seed has no spread, so it says so instead of '± 0.00'."""
        if len(self.seeds) == 1:
            return f"{100 * self.mean:.2f}% (1 seed)"
        return f"{100 * self.mean:.2f}% ± {100 * self.std:.2f}"

    @property
    def minimum(self) -> float:
        return min(self.accuracies)

    @property
    def train_seconds(self) -> float:
        return sum(s.train_seconds for s in self.seeds)

    @property
    def val_mean(self) -> float | None:
        """Mean final-epoch validation accuracy over the seeds (None if a seed recorded none)."""
        vals = [s.final_val_accuracy for s in self.seeds]
        return statistics.fmean(vals) if vals and None not in vals else None

    def chosen_seed(self) -> SeedResult:
        """The seed whose model is exported: best *validation* accuracy (never chosen on test). A final fit on
        all training images has no validation images left, so nothing but the test set could tell its seeds
        apart: its export is the run's own seed (the first), fixed before any seed trained."""
        return max(self.seeds, key=lambda s: (s.final_val_accuracy or 0.0, -s.seed))

    @property
    def teacher(self) -> dict[str, Any] | None:
        """The teacher it was distilled from and what that cost (:mod:`budgetnas.distill`); None: no teacher."""
        return next((s.history.get("teacher") for s in self.seeds if s.history.get("teacher")), None)

    def training_notes(self) -> list[str]:
        """One sentence each on how it trained beyond its recipe's numbers: distillation, a final fit."""
        out = []
        t = self.teacher
        if t:
            val = f"{100 * t['val_accuracy']:.2f}% validation" if t.get("val_accuracy") is not None else "no validation"
            out.append(f"Distilled from teacher `{t['teacher']}` ({t['params']:,} params, {val}, trained once on the "
                       f"training split in {t['minutes']:.1f} min; alpha {self.recipe.get('distill_alpha')}, "
                       f"temperature {self.recipe.get('distill_temperature')}, targets "
                       f"{self.recipe.get('distill_targets')}). The budget counts this network alone.")
        if self.fit == "all":
            out.append("Final fit: trained on all training images (train + validation) after validation chose it; "
                       "no validation curve, so the exported seed is the run's first, fixed before training.")
        return out

    def summary(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "min": self.minimum, "train_seconds": self.train_seconds}


def winner(finalists: list[Finalist]) -> Finalist | None:
    """The finalist a run reports and exports: best mean final *validation* accuracy over its seeds.

    Only searched finalists compete (a fixed baseline is never the winner unless it is all there
    is). The test set is never looked at here: it scores finalists, it does not choose between them.
    Ties (and finalists without validation curves) fall back to the search's own validation score.
    """
    refit = [f for f in finalists if f.fit == "all"]
    if refit:  # the final fit of the validation winner (retrain.retrain_run made it after choosing on validation)
        return refit[0]
    searched = [f for f in finalists if f.trial is not None] or finalists
    return max(searched, key=lambda f: (f.val_mean if f.val_mean is not None else -1.0,
                                        f.val_accuracy_search or 0.0), default=None)


def target_verdict(finalist: Finalist, target: float, test_images: int) -> str:
    """Whether ``finalist``'s test mean meets ``target``, by how much, and whether that margin is inside
    the test set's own noise: 2 binomial standard errors of an accuracy on ``test_images`` images (the same
    images score every seed, so averaging seeds does not shrink it)."""
    mean = finalist.mean
    se = math.sqrt(max(mean * (1 - mean), 1e-12) / test_images)
    margin = mean - target
    noise = (f"within the noise of a {test_images:,}-image test set" if abs(margin) < 2 * se
             else f"beyond the noise of a {test_images:,}-image test set")
    return (f"Target {100 * target:.2f}% {'met' if margin >= 0 else 'NOT met'} by {finalist.label}: test mean "
            f"{100 * mean:.2f}% over {len(finalist.seeds)} seed{'s' if len(finalist.seeds) != 1 else ''}, "
            f"{100 * margin:+.2f} points, {noise} (one standard error {100 * se:.2f} points).")


def confusion_matrix(y_true, y_pred, classes: int) -> list[list[int]]:
    import numpy as np

    m = np.zeros((classes, classes), dtype=int)
    np.add.at(m, (y_true, y_pred), 1)
    return m.tolist()


def shell(label: str, trial: int | None, budget: Budget, space: Space, values: Mapping[str, Any], recipe: Recipe,
          epochs: int, val_accuracy_search: float | None = None) -> Finalist:
    """A finalist with its architecture and counts from the gate, and no seeds trained yet."""
    verdict = gate.judge(budget, space, values)
    return Finalist(label=label, trial=trial, space=Path(space.path).name, values=dict(values),
                    architecture=verdict.architecture,
                    params=verdict.total_params, trainable_params=verdict.trainable_params, macs=verdict.macs,
                    final_rf=list(verdict.final_rf), epochs=epochs, recipe=asdict(recipe),
                    val_accuracy_search=val_accuracy_search)


def train_seed(label: str, budget: Budget, space: Space, values: Mapping[str, Any], recipe: Recipe,
               train: Arrays, val: Arrays, test: Arrays, epochs: int, seed: int, out_dir: Path,
               resume: bool = False, on_epoch: Callable[[str, int, int, dict], None] | None = None,
               fit: str = "train") -> SeedResult:
    """Train ``values`` with one seed for ``epochs``; evaluate on ``test`` once, after the last epoch.

    ``fit = "all"``: train on ``train`` and ``val`` together, without validation curves (a final fit). A
    teacher (distillation) still trains on ``train`` alone, so that the fit reuses the run's cached teacher.

    The seed checkpoints each epoch to ``<out_dir>/<label>_seed<N>.resume/``; with ``resume`` it continues
    from there, without it a stale checkpoint is discarded. The model is saved beside it as plain Keras.
    """
    import keras

    from budgetnas.trainer import evaluate, fit_candidate

    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / f"{_slug(label)}_seed{seed}.resume"
    if not resume:
        shutil.rmtree(checkpoint, ignore_errors=True)
    # no judging here: it was judged when chosen, and fixed baselines (the 1.17M-param base network) may break
    # the budget they are compared in
    fit_data, fit_val = (train, val) if fit == "train" else (train.join(val), None)
    model, history, seconds = fit_candidate(
        space, values, recipe, fit_data, fit_val, epochs, seed=seed, checkpoint_dir=checkpoint, teacher_images=train,
        on_epoch=(lambda e, logs: on_epoch(label, seed, e, {**logs, "epochs": epochs})) if on_epoch else None)
    acc, pred = evaluate(model, test, space.classes)
    name = f"{_slug(label)}_seed{seed}.keras"
    save_plain(model, out_dir / name)
    return SeedResult(seed, acc, history.val_accuracy[-1] if history.val_accuracy else None,
                      seconds, history.as_dict(), name, confusion_matrix(test.y, pred, space.classes),
                      backend=keras.backend.backend())


@dataclass
class Unfinished:
    """A seed whose retraining was stopped midway: what its last epoch checkpoint holds."""

    name: str  # the finalist's file-name slug, e.g. "trial_2"
    seed: int
    epochs_done: int
    epochs: int
    val_accuracy: list[float]
    train_seconds: float


def unfinished(out_dir: Path) -> list[Unfinished]:
    """Seeds with an epoch checkpoint in ``out_dir`` (see :func:`retrain`), stopped or still running."""
    out = []
    for f in sorted(out_dir.glob("*_seed*.resume/history.json")):
        name, _, seed = f.parent.name.removesuffix(".resume").rpartition("_seed")
        h = files.read_json(f, "a seed's epoch checkpoint")
        done = len(h["loss"])
        out.append(Unfinished(name, int(seed), done, h["planned_epochs"], h["val_accuracy"][:done],
                              sum(h["epoch_seconds"][:done])))
    return out


def save_plain(model, path: Path) -> None:
    """Save weights and architecture only (no optimizer, no custom schedule): loads in plain Keras."""

    # Rebuilt from its config, not keras.models.clone_model: since Keras 3.14 a clone of a compiled
    # model is compiled too, and its optimizer's custom schedule would then be needed to load the file.
    clean = model.__class__.from_config(model.get_config())
    clean.set_weights(model.get_weights())
    with files.replacing(path) as tmp:
        clean.save(tmp)


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in label).strip("_")


def save(path: Path, finalists: list[Finalist], protocol: dict[str, Any]) -> None:
    data = {"protocol": protocol, "finalists": [{**asdict(f), "summary": f.summary()} for f in finalists]}
    files.write_text(path / FILE, json.dumps(data, indent=1))


def load(path: Path) -> tuple[dict[str, Any], list[Finalist]]:
    from budgetnas.errors import RunError

    f = path / FILE
    try:
        data = files.read_json(f, "the finalists' results")
    except FileNotFoundError:
        raise RunError(f"{f}: no finalists yet (run `budgetnas retrain` first)") from None
    out = []
    try:
        for d in data["finalists"]:
            d = dict(d)
            d.pop("summary", None)
            seeds = [SeedResult(**s) for s in d.pop("seeds")]
            out.append(Finalist(**d, seeds=seeds))
        return dict(data["protocol"]), out
    except (KeyError, TypeError, AttributeError) as exc:
        raise RunError(f"{f}: not the finalists file budgetnas writes ({type(exc).__name__}: {exc}); "
                       "retrain to write it again") from None
