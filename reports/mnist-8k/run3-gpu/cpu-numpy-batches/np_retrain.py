"""Experiment: retrain on the TensorFlow backend with the NumPy batches (search/batches.py) instead of tf.data.

Expects reports/mnist-8k-npb/ to be a copy of the H200 run folder (mnist-8k-gpu) without its finalists,
its run.json storage URL pointing at the copy's study.db. Run from the repository root with PYTHONPATH=.
"""
import sys

import search.data as data
import search.trainer as trainer
from search.batches import ArrayBatches


def numpy_pipeline(arrays, classes, batch_size, *, training, augment="none", seed=0):
    return ArrayBatches(arrays, classes, batch_size, training=training, augment=augment, seed=seed)


data.pipeline = trainer.pipeline = numpy_pipeline
from search.cli import main  # noqa: E402

sys.exit(main(["retrain", "mnist-8k-npb", "--top", "1", "--seeds", "3"]))
