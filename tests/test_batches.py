"""The NumPy batches used on Keras' JAX / PyTorch backends, checked against plain slicing,
loops and ``np.rot90`` (independent of the vectorised gathers they test)."""

import keras
import numpy as np
import pytest

from budgetnas import data
from budgetnas.batches import ArrayBatches, affine, augment_batch, crop
from budgetnas.errors import DataError


def test_every_image_once_per_epoch_reshuffled_and_seeded(tiny_mnist):
    train = data.load(str(tiny_mnist)).train
    batches = ArrayBatches(train, 10, 64, training=True, seed=3)
    assert len(batches) == 7  # 400 images: six of 64 and one of 16

    def epoch(b):
        xs, ys = zip(*(b[i] for i in range(len(b))))
        return np.concatenate(xs), np.concatenate(ys)

    x0, y0 = epoch(batches)
    assert x0.dtype == np.float32 and x0.max() > 1.0  # raw pixels; the model rescales
    assert np.array_equal(np.sort(x0.reshape(400, -1), axis=0), np.sort(train.x.reshape(400, -1), axis=0))
    assert np.array_equal(y0.argmax(1), train.y[batches.order]) and np.allclose(y0.sum(1), 1)
    first = batches.order.copy()
    batches.on_epoch_begin()
    assert not np.array_equal(first, batches.order)  # a new order each epoch
    again = ArrayBatches(train, 10, 64, training=True, seed=3)
    assert np.array_equal(again.order, first)  # the same seed gives the same run


def test_evaluation_batches_keep_order_and_pixels(tiny_mnist):
    test = data.load(str(tiny_mnist)).test
    batches = ArrayBatches(test, 10, 64, training=False, augment="crop-flip")
    x, y = batches[1]
    assert np.array_equal(x, test.x[64:128].astype(np.float32))  # no augmentation outside training
    assert np.array_equal(y.argmax(1), test.y[64:128])


def test_crop_matches_slicing():
    rng = np.random.default_rng(0)
    padded = rng.random((5, 12, 12, 3))
    corners = rng.integers(0, 5, (5, 2))
    want = np.stack([padded[k, r:r + 8, c:c + 8] for k, (r, c) in enumerate(corners)])
    assert np.array_equal(crop(padded, corners, 8, 8), want)


def test_affine_whole_pixel_shift_and_quarter_turn():
    x = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5, 1) + 1
    moved = affine(x, np.zeros(2), np.array([[1.0, 0.0], [0.0, -2.0]]))
    down = np.zeros_like(x[0]); down[1:] = x[0, :-1]          # one row down, zeros enter at the top
    left = np.zeros_like(x[1]); left[:, :-2] = x[1, :, 2:]    # two columns left
    assert np.allclose(moved[0], down) and np.allclose(moved[1], left)
    turned = affine(x, np.full(2, np.pi / 2), np.zeros((2, 2)))
    assert np.allclose(turned[:, :, :, 0], np.rot90(x[:, :, :, 0], k=1, axes=(1, 2)), atol=1e-4)


def test_affine_half_pixel_shift_interpolates():
    x = np.zeros((1, 4, 4, 1), np.float32); x[0, :, 1] = 10.0
    out = affine(x, np.zeros(1), np.array([[0.0, 0.5]]))
    assert np.allclose(out[0, :, 1:3, 0], 5.0) and np.allclose(out[0, :, [0, 3], 0], 0.0)


@pytest.mark.parametrize("kind", ["shift", "rotate", "shift-rotate", "crop-flip", "crop-flip-rotate-jitter"])
def test_augmentations_keep_shape_range_and_repeat_with_the_seed(kind):
    x = np.random.default_rng(1).integers(0, 256, (16, 32, 32, 3)).astype(np.float32)
    a = augment_batch(x, kind, np.random.default_rng([7, 0, 0]))
    b = augment_batch(x, kind, np.random.default_rng([7, 0, 0]))
    assert a.shape == x.shape and a.dtype == np.float32 and np.array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 255 and not np.array_equal(a, x)


def test_crop_flip_only_moves_and_mirrors_pixels():
    x = np.random.default_rng(2).integers(0, 256, (8, 32, 32, 3)).astype(np.float32)
    out = augment_batch(x, "crop-flip", np.random.default_rng(0))
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    for k in range(8):  # each output is one of the 9×9 crops of its padded image, maybe mirrored
        crops = [padded[k, r:r + 32, c:c + 32] for r in range(9) for c in range(9)]
        assert any(np.array_equal(out[k], w) or np.array_equal(out[k], w[:, ::-1]) for w in crops)


def test_unknown_augmentation_is_a_data_error(tiny_mnist):
    with pytest.raises(DataError, match="unknown augmentation"):
        ArrayBatches(data.load(str(tiny_mnist)).train, 10, 32, training=True, augment="mixup")


def test_keras_fits_on_array_batches(tiny_mnist):
    ds = data.load(str(tiny_mnist))
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(ArrayBatches(ds.train, 10, 50, training=True, augment="shift", seed=0),
                     validation_data=ArrayBatches(ds.test, 10, 100, training=False), epochs=3, verbose=0)
    assert len(hist.history["loss"]) == 3 and hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] > 0.5  # a linear model learns tiny MNIST well past chance


def test_the_numpy_batches_know_every_augmentation_the_budgets_accept():
    from budgetnas import batches, data

    assert set(data.AUGMENTATIONS) == {"none", *batches.KINDS}


def test_reflect_fill_mirrors_the_image_about_its_border():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    out = affine(x, np.zeros(1), np.array([[0.0, 2.0]]), fill="reflect")  # two whole pixels right
    assert np.array_equal(out[0, :, 2:, 0], x[0, :, :2, 0])
    assert np.array_equal(out[0, :, :2, 0], x[0, :, 1::-1, 0])  # d c b a | a b c d
