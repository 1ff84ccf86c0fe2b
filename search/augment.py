"""The arithmetic of augmentations that both batch paths share (:mod:`budgetnas.data`'s ``tf.data`` layers and
:mod:`budgetnas.batches`' NumPy): colour jitter and mixup, written once for ``numpy`` or ``keras.ops``."""

from __future__ import annotations

import numpy as np

TURN = 15.0  # "crop-flip-rotate-jitter": up to ±15° turns
JITTER = (0.1 * 255, 0.1, 0.5)  # and per image: brightness ± 25.5 (of 255), contrast × 1 ± 0.1, saturation × 1 ± 0.5
LUMA = (0.299, 0.587, 0.114)  # the grey a saturation change pulls towards (ITU-R BT.601)


def jitter(x, brightness, contrast, saturation, ops=np):
    """Colour jitter of an N×H×W×C batch of 0..255 pixels, one factor of each kind per image (length-N arrays):
    saturation pulls each pixel towards its grey (× ``saturation``; 1 keeps it), contrast scales each channel about
    its image mean (× ``contrast``), brightness adds ``brightness``; clipped to 0..255. ``ops``: ``numpy`` or
    ``keras.ops`` (the same arithmetic on both paths)."""
    per_image = (-1, 1, 1, 1)
    if x.shape[-1] == 3:
        grey = ops.sum(x * np.asarray(LUMA, np.float32), axis=-1, keepdims=True)
        x = grey + ops.reshape(saturation, per_image) * (x - grey)
    mean = ops.mean(x, axis=(1, 2), keepdims=True)
    x = mean + ops.reshape(contrast, per_image) * (x - mean) + ops.reshape(brightness, per_image)
    return ops.clip(x, 0.0, 255.0)


def mix(x, y, lam, partner, ops=np):
    """Each image ``k`` of a batch mixed with image ``partner[k]``: ``(1 − lam[k])·x[k] + lam[k]·x[partner[k]]``, its
    labels (one-hot or soft rows of ``y``) the same way. ``ops``: ``numpy`` or ``keras.ops``."""
    take = (lambda a: a[partner]) if ops is np else (lambda a: ops.take(a, partner, axis=0))
    wx, wy = ops.reshape(lam, (-1, 1, 1, 1)), ops.reshape(lam, (-1, 1))
    return (1.0 - wx) * x + wx * take(x), (1.0 - wy) * y + wy * take(y)
