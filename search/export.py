"""Export a finalist: .keras, SavedModel, TFLite float32 and full-integer int8, and a model card.

Every exported model takes raw pixels (0–255, H×W×C): the Rescaling layer at its input carries the
normalisation without adding parameters. Each format is checked against the test set on export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from budgetnas import files
from budgetnas.data import Arrays
from budgetnas.errors import ConfigError
from budgetnas.finalists import Finalist

FORMATS = ("keras", "savedmodel", "tflite", "tflite-int8")


@dataclass
class Check:
    format: str
    path: str
    accuracy: float
    reference: float
    tolerance: float | None  # points; None: must be exact
    trained_under: str | None = None  # the training backend, when not the one checking here

    @property
    def ok(self) -> bool:
        gap = abs(self.accuracy - self.reference) * 100
        return gap == 0 if self.tolerance is None else gap <= self.tolerance

    def line(self) -> str:
        gap = (self.accuracy - self.reference) * 100
        rule = "exactly" if self.tolerance is None else f"within {self.tolerance} points"
        if self.trained_under:
            rule += f", trained under {self.trained_under}"
        verdict = "ok" if self.ok else f"WARNING: misses by {abs(gap):.2f} points"
        return (f"{self.format}: test accuracy {100 * self.accuracy:.2f}% vs {100 * self.reference:.2f}% "
                f"({gap:+.2f} points; required {rule}): {verdict}")


def parse_formats(raw: str) -> list[str]:
    out = [f.strip() for f in raw.split(",") if f.strip()]
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise ConfigError(f"--format {raw!r}: choose from {', '.join(FORMATS)}")
    return out


def _tflite_predict(path: Path, x: np.ndarray) -> np.ndarray:
    from budgetnas.compat import tflite_interpreter

    interp = tflite_interpreter(path)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    preds = []
    for i in range(0, len(x), 500):
        batch = x[i:i + 500].astype(inp["dtype"])  # float32 or uint8: both take raw 0–255 pixels
        interp.resize_tensor_input(inp["index"], batch.shape)
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], batch)
        interp.invoke()
        preds.append(interp.get_tensor(out["index"]).argmax(axis=1))
    return np.concatenate(preds)


def export(finalist: Finalist, run_path: Path, out: Path, formats: list[str], train: Arrays, test: Arrays,
           classes: int) -> list[Check]:
    """Write the chosen seed's model in every format to ``out`` and check each against the test set."""
    import keras
    import tensorflow as tf

    seed = finalist.chosen_seed()
    out.mkdir(parents=True, exist_ok=True)
    src = run_path / "finalists" / seed.model_file
    model = keras.saving.load_model(src, compile=False)
    reference = seed.test_accuracy
    # Same backend: the .keras and SavedModel files must score exactly what training scored. Weights trained
    # under another backend (JAX on a GPU) meet TensorFlow's rounding here: within TFLite's 0.1 points.
    foreign = seed.backend if seed.backend not in (None, keras.backend.backend()) else None
    x = test.x.astype(np.float32)
    checks: list[Check] = []
    keras_path = out / "model.keras"
    files.copy(src, keras_path)
    if "keras" in formats:
        reloaded = keras.saving.load_model(keras_path, compile=False)
        from budgetnas.trainer import evaluate

        acc, _ = evaluate(reloaded, test, classes)
        checks.append(Check("keras", str(keras_path), acc, reference, 0.1 if foreign else None, foreign))
    saved = out / "saved_model"
    if any(f in formats for f in ("savedmodel", "tflite", "tflite-int8")):
        with files.replacing(saved) as tmp:
            model.export(str(tmp), verbose=False)
    if "savedmodel" in formats:
        loaded = tf.saved_model.load(str(saved))
        preds = np.concatenate([np.asarray(loaded.serve(x[i:i + 1000])).argmax(axis=1)
                                for i in range(0, len(x), 1000)])
        checks.append(Check("savedmodel", str(saved), float((preds == test.y).mean()), reference,
                            0.1 if foreign else 0.0, foreign))
    if "tflite" in formats:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        path = out / "model_float32.tflite"
        files.write_bytes(path, conv.convert())
        acc = float((_tflite_predict(path, x) == test.y).mean())
        checks.append(Check("tflite", str(path), acc, reference, 0.1))
    if "tflite-int8" in formats:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        rng = np.random.default_rng(0)
        idx = rng.choice(len(train), size=min(500, len(train)), replace=False)
        reps = train.x[idx].astype(np.float32)
        conv.representative_dataset = lambda: ([reps[i:i + 1]] for i in range(len(reps)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8  # raw pixels 0–255 go straight in
        conv.inference_output_type = tf.float32
        path = out / "model_int8.tflite"
        files.write_bytes(path, conv.convert())
        acc = float((_tflite_predict(path, test.x) == test.y).mean())
        checks.append(Check("tflite-int8", str(path), acc, reference, 0.5))
    return checks


def model_card(finalist: Finalist, budget, dataset: str, checks: list[Check], table_md: str,
               protocol: dict) -> str:
    seed = finalist.chosen_seed()
    n = len(finalist.seeds)
    over = f" over {n} seeds (min {100 * finalist.minimum:.2f}%)" if n > 1 else ""
    lines = [
        f"# Model card — {finalist.label} ({budget.name})", "",
        f"- Dataset: `{dataset}`; input: raw pixels 0–255, shape {protocol.get('input_shape')}; output: "
        f"{protocol.get('classes')} class probabilities (softmax).",
        f"- Budget: `{budget.name}` — {budget.description}",
        f"- Parameters: {finalist.params:,} total ({finalist.trainable_params:,} trainable) — the count Keras "
        f"prints for `model.keras`; MACs per image: {finalist.macs:,}.",
        f"- Architecture: `{finalist.architecture}`",
        f"- Test accuracy at the final epoch ({finalist.epochs}): {finalist.spread}{over}.",
        (f"- These weights: seed {seed.seed} (chosen by final validation accuracy "
         f"{100 * (seed.final_val_accuracy or 0):.2f}%), test accuracy {100 * seed.test_accuracy:.2f}%."
         if seed.final_val_accuracy is not None else
         f"- These weights: seed {seed.seed} (the run's first seed), test accuracy {100 * seed.test_accuracy:.2f}%."),
        *[f"- {note}" for note in finalist.training_notes()],
        "- Protocol: architecture chosen on a validation split carved from the training set; test set used "
        "once per seed after the final epoch.", "",
        "## Export checks (test set)", "",
    ]
    lines += [f"- {c.line()}" for c in checks]
    lines += ["", "## How to load", "", "```python",
              "import keras, numpy as np",
              "model = keras.saving.load_model('model.keras')",
              "probs = model.predict(images_uint8.astype('float32'))  # N×H×W×C, 0–255",
              "```", "", "TFLite: `ai_edge_litert.interpreter.Interpreter(model_path='model_float32.tflite')` (or TensorFlow's "
              "`tf.lite.Interpreter`) takes float32 0–255; "
              "`model_int8.tflite` takes uint8 0–255 directly.", "", "## Layers", "", table_md, ""]
    return "\n".join(lines)


def export_run(path: Path, trial: int | None = None, formats: list[str] | None = None, out: Path | None = None,
               data_dir: str | None = None) -> tuple[Finalist, list[Check], Path]:
    """Export one retrained finalist of a run (``trial``; default: the winner, by mean final validation
    accuracy) in ``formats`` into ``out`` (default ``RUN/export``) with its model card; returns the finalist,
    each format's check on the test set, and the folder.

    Raises:
        budgetnas.errors.RunError: ``trial`` is not a finalist of the run.
    """
    from budgetnas import finalists as fin_mod
    from budgetnas import gate
    from budgetnas.errors import RunError
    from budgetnas.report.layers import layer_markdown
    from budgetnas.run.folder import load_data_splits, open_folder

    meta, budget, space, _ = open_folder(path)
    proto, fins = fin_mod.load(path)
    if trial is not None:
        chosen = next((f for f in fins if f.trial == trial), None)
        if chosen is None:
            raise RunError(f"{path}: trial {trial} is not a finalist (finalists: "
                           f"{', '.join(str(f.trial) for f in fins)})")
    else:
        chosen = fin_mod.winner(fins)
        if chosen is None:
            raise RunError(f"{path}: no retrained finalist to export (`budgetnas retrain {meta.name}`)")
    ds, train, _ = load_data_splits(budget, space, data_dir or meta.data_dir, meta.seed)
    out = Path(out) if out else path / "export"
    checks = export(chosen, path, out, list(formats or FORMATS), train, ds.test, space.classes)
    verdict = gate.judge(budget, space, chosen.values)
    card = model_card(chosen, budget, budget.dataset, checks, layer_markdown(verdict.table), proto)
    files.write_text(out / "MODEL_CARD.md", card)
    return chosen, checks, out
