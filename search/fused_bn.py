"""Training-mode batch normalization through TensorFlow's fused kernel, for the TensorFlow backend.

Keras 3's ``BatchNormalization`` computes training-mode batch norm from separate ops (moments, then
normalize) and differentiates through them; TensorFlow's fused kernel (``FusedBatchNormV3`` and its
gradient, oneDNN on x86) does the same arithmetic in one op each way. On a 2-core CPU that is 27 ms instead
of 91 ms per step for the batch norms of the 97,696-param CIFAR-10 network, and its whole training step
about 1.3x faster (``benchmarks/separable_speed.md``).

:func:`fuse_batch_norm` swaps the training-mode computation of a built model's ``BatchNormalization``
layers in place. The layers, their weights and their saved form are unchanged (a ``.keras`` file of a
fused model loads in plain Keras), inference is untouched, and any case the fused kernel does not cover
(a mask, not 4-D channels-last float32, renorm, a frozen layer) goes through Keras' own code. Up to float
rounding the outputs, gradients and moving statistics equal Keras' (``tests/test_fused_bn.py``).
"""

from __future__ import annotations

import keras

from budgetnas import compat


def fuse_batch_norm(model) -> int:
    """Route the training-mode batch norms of ``model`` through the fused kernel; returns how many.

    A no-op (0) on any backend but TensorFlow. Applying it twice changes nothing more.
    """
    return sum(fuse(layer) for layer in batch_norms(model))


def fuse(layer) -> bool:
    """Fuse one ``BatchNormalization`` layer (True), or leave anything else as it is (False)."""
    if (keras.backend.backend() != "tensorflow" or type(layer) is not keras.layers.BatchNormalization
            or getattr(layer, "_budgetnas_fused", False)):
        return False
    compat.replace_call(layer, _fused_call(layer, layer.call))
    object.__setattr__(layer, "_budgetnas_fused", True)
    return True


def batch_norms(model) -> list:
    """The ``BatchNormalization`` layers of ``model``, nested models' included."""
    return [layer for layer in _layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # a nested model or Sequential
            yield from _layers(layer)


def _fused_call(layer, keras_call):
    import tensorflow as tf

    def call(inputs, training=None, mask=None):
        if (not (training and layer.trainable) or mask is not None or layer.renorm
                or len(inputs.shape) != 4 or layer.axis not in (-1, 3) or inputs.dtype != tf.float32):
            return keras_call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = layer.gamma.value if layer.scale else tf.ones((channels,), tf.float32)
        beta = layer.beta.value if layer.center else tf.zeros((channels,), tf.float32)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=layer.epsilon, data_format="NHWC", is_training=True)
        # The kernel returns the batch variance with Bessel's correction (n / (n - 1)); Keras moves its
        # statistics with the plain (biased) variance it also normalises with.
        n = tf.cast(tf.size(inputs) // channels, tf.float32)
        variance = variance * (n - 1.0) / n
        m = layer.momentum
        layer.moving_mean.assign(layer.moving_mean * m + mean * (1.0 - m))
        layer.moving_variance.assign(layer.moving_variance * m + variance * (1.0 - m))
        return y

    return call
