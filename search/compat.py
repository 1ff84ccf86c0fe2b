"""Every place budgetnas leans on a library's private or deprecated behaviour, and what each relies on.

When a library release breaks one of these, this module is the one to change. Each is pinned by a test.

* Keras ``BackupAndRestore`` (Keras 3.15): the epoch it restored is only ``model._initial_epoch``;
  ``_save_model`` is its one save hook, writing ``_weights_path`` and ``_training_metadata_path`` with
  ``_current_epoch`` and ``_last_batch_seen`` in place. :class:`EpochBackup` names them once.
  Pinned by ``tests/test_trainer.py::test_resumed_run_matches_an_unbroken_one``.
* Keras layers: a BatchNormalization layer's ``call`` is replaced per instance (:func:`replace_call`; Keras
  offers no hook to choose the kernel). Pinned by ``tests/test_fused_bn.py``.
* keras-tuner 1.4: ``HyperbandOracle`` takes no trial budget; the base oracle honours ``max_trials`` set on it
  (:func:`set_max_trials`). Pinned by ``tests/drivers/test_drivers.py`` (keras-tuner hyperband).
* Optuna 5: a ``Study`` cannot set attributes of a trial another process asked; the storage can
  (:func:`set_trial_user_attrs`). Pinned by the resume and dead-worker tests.
* Keras layers called more than once (a shared block): ``layer.input`` gives only the first call; each call is a
  node in the private ``layer._inbound_nodes`` (:func:`layer_calls`). Pinned by
  ``tests/test_space_words.py::test_shared_block_weights_counted_once_and_applied_each_repeat``.
* TensorFlow 2.20 prints start-up lines before it reads ``TF_CPP_MIN_LOG_LEVEL``; :func:`import_tensorflow_quietly`
  holds stderr back while it imports. Pinned by
  ``tests/test_cli.py::test_a_command_prints_no_tensorflow_start_up_lines``.
* TensorFlow marks ``tf.lite.Interpreter`` for removal in 2.20; ``ai_edge_litert`` is its successor, a
  dependency where it has wheels, and is used when installed (:func:`tflite_interpreter`). Pinned by
  ``tests/test_finalists.py`` (the exported TFLite models scored on the test images).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping


def _epoch_backup():
    import keras

    class EpochBackup(keras.callbacks.BackupAndRestore):
        """Keras' epoch-level backup, with its private parts behind two names: :meth:`restored_epoch` and
        :meth:`write_backup`, which a subclass implements to write the backup files its own way."""

        def restored_epoch(self) -> int:
            """The epoch training resumes after (0: a fresh start). Call after ``on_train_begin``."""
            return getattr(self.model, "_initial_epoch", 0) or 0

        def write_backup(self, weights: Path, metadata: Path, epoch: int, batch: int) -> None:
            """Write the model's weights to ``weights`` and ``{"epoch": epoch, "batch": batch}`` to ``metadata``
            (JSON): the two files Keras reads back on restore."""
            raise NotImplementedError

        def _save_model(self):  # Keras' one save hook
            self.write_backup(Path(self._weights_path), Path(self._training_metadata_path), self._current_epoch,
                              self._last_batch_seen)

    return EpochBackup


def __getattr__(name: str):
    if name == "EpochBackup":  # built on first use: Keras (and TensorFlow) load only when something trains
        cls = _epoch_backup()
        globals()["EpochBackup"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


QUIET_TF = "BUDGETNAS_QUIET_TF"  # set by a command that quiets TensorFlow; its spawned processes do the same


def import_tensorflow_quietly() -> None:
    """Import TensorFlow without its start-up lines on stderr (absl's "All log messages before
    absl::InitializeLog()", the oneDNN and CPU-feature notices), which TF_CPP_MIN_LOG_LEVEL does not reach:
    TensorFlow 2.20 writes them before it reads its log level. stderr is held back at the file-descriptor
    level during the import only; an import error still raises. Does nothing when Keras runs on another
    backend or TensorFlow is already imported."""
    import sys

    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    os.environ[QUIET_TF] = "1"
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        try:
            import tensorflow  # noqa: F401
        except ImportError:  # a machine with JAX only: nothing to quiet
            pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def layer_calls(layer) -> list[tuple[list, Any]]:
    """Every call of ``layer`` in the graphs it belongs to, in the order they were made: (input tensors, output
    tensor) each. Keras offers only the first call publicly (``layer.input`` / ``layer.output``)."""
    return [(list(node.input_tensors), node.output_tensors[0]) for node in layer._inbound_nodes]


def replace_call(layer, call: Callable) -> None:
    """Make ``layer`` run ``call`` instead of its own ``call`` (this instance only)."""
    object.__setattr__(layer, "call", call)


def set_max_trials(oracle, trials: int) -> None:
    """Give a keras-tuner oracle a trial budget (Hyperband's constructor has no such argument)."""
    oracle.max_trials = trials


def set_trial_user_attrs(store, study_name: str, number: int, attrs: Mapping[str, Any]) -> None:
    """Set user attributes of trial ``number`` of a study through its storage (any process's trial)."""
    study_id = store.get_study_id_from_name(study_name)
    trial_id = store.get_trial_id_from_study_id_trial_number(study_id, number)
    for key, value in attrs.items():
        store.set_trial_user_attr(trial_id, key, value)


def tflite_interpreter(path: Path):
    """A TFLite interpreter for the model at ``path``: ``ai_edge_litert``'s when installed, else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=str(path))


def quiet_tensorflow() -> None:
    """TensorFlow's start-up and log lines stay out of a command's output unless the user set their level."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import_tensorflow_quietly()
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
