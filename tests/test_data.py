import numpy as np
import pytest

from budgetnas import augment, data
from budgetnas.errors import DataError


def test_npz_path_loads_as_nhwc(tiny_mnist):
    ds = data.load(str(tiny_mnist))
    assert ds.train.x.shape == (400, 28, 28, 1) and ds.train.x.dtype == np.uint8
    assert ds.classes == 10


def test_split_is_stratified_disjoint_and_seeded(tiny_mnist):
    ds = data.load(str(tiny_mnist))
    tr, va = data.split(ds.train, 100, seed=3)
    assert len(tr) == 300 and len(va) == 100
    assert np.bincount(va.y, minlength=10).tolist() == [10] * 10
    tr2, va2 = data.split(ds.train, 100, seed=3)
    assert np.array_equal(va.x, va2.x)
    # no image is in both splits
    joined = np.concatenate([tr.x.reshape(len(tr), -1), va.x.reshape(len(va), -1)])
    assert len(np.unique(joined, axis=0)) == 400
    _, va3 = data.split(ds.train, 100, seed=4)
    assert not np.array_equal(va.x, va3.x)


def test_missing_builtin_offline_says_where_it_looked(tmp_path, monkeypatch):
    import keras

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    with pytest.raises(DataError) as err:
        data.load("mnist", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "mnist.npz") in msg and "--data-dir" in msg and data.ENV_VAR in msg


def test_env_var_is_used(tiny_mnist, tmp_path, monkeypatch):
    (tmp_path / "mnist.npz").write_bytes(tiny_mnist.read_bytes())
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    assert data.load("mnist").source == str(tmp_path / "mnist.npz")


def test_bad_npz_is_a_data_error(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, x_train=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match="missing array"):
        data.load(str(p))


def test_pipeline_yields_raw_float_pixels_and_one_hot(tiny_mnist):
    ds = data.load(str(tiny_mnist))
    x, y = next(iter(data.pipeline(ds.train, 10, 32, training=True, augment="shift-rotate", seed=0)))
    assert x.shape == (32, 28, 28, 1) and y.shape == (32, 10)
    assert float(x.numpy().max()) > 1.0  # not rescaled: the model's Rescaling layer does that
    assert np.allclose(y.numpy().sum(axis=1), 1)


def _centroids(x):
    """(down, right) offset of each image's intensity centroid from the image centre."""
    h, w = x.shape[1:3]
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    mass = x[..., 0].sum(axis=(1, 2))
    return np.stack([(x[..., 0] * r).sum(axis=(1, 2)) / mass - (h - 1) / 2,
                     (x[..., 0] * c).sum(axis=(1, 2)) / mass - (w - 1) / 2], axis=1)


@pytest.mark.parametrize("path", ["tf.data", "numpy"])
@pytest.mark.parametrize("kind, turn, shift", [("rotate", 8, 0), ("shift", 0, 2), ("shift-rotate", 8, 2)])
def test_mnist_augmentations_turn_about_the_centre_and_shift_by_at_most_2_px(path, kind, turn, shift):
    # A Gaussian spot 6 px right of the centre: each augmented copy's centroid must lie where a turn of
    # at most `turn` degrees about the centre and a move of at most `shift` px per axis can put it.
    r, c = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    spot = 255 * np.exp(-((r - 13.5) ** 2 + (c - 19.5) ** 2) / 4.0)
    x = np.repeat(spot[None, :, :, None], 64, axis=0).astype(np.float32)
    if path == "numpy":
        from budgetnas.batches import augment_batch
        out = augment_batch(x, kind, np.random.default_rng(0))
    else:
        out = np.asarray(data._augmenter(kind, (28, 28, 1), seed=0)(x, training=True))
    p0, p = _centroids(x)[0], _centroids(out)
    assert np.allclose(p0, [0, 6], atol=1e-3)
    moved = np.linalg.norm(p - p0, axis=1)
    reach = 2 * 6 * np.sin(np.radians(turn + 0.2) / 2) + np.hypot(shift, shift) + 0.05
    assert np.all(moved <= reach) and moved.max() > reach / 3  # within range, and it really moves
    if shift == 0:  # a pure turn: same distance to the centre, at most 8 degrees of angle
        assert np.allclose(np.linalg.norm(p, axis=1), 6, atol=0.05)
        assert np.all(np.abs(np.degrees(np.arctan2(p[:, 0], p[:, 1]))) <= turn + 0.2)
    if turn == 0:  # a pure shift: at most 2 px along each axis
        assert np.all(np.abs(p - p0) <= shift + 0.05)


def _erased(before, after):
    """Per image: the (rows, cols) span of changed pixels and whether they fill that rectangle."""
    spans = []
    for b, a in zip(before, after):
        rows, cols = np.nonzero(np.any(b != a, axis=-1))
        if rows.size == 0:
            spans.append(None)
            continue
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        spans.append((rows.min(), cols.min(), h, w, rows.size == h * w))
    return spans


@pytest.mark.parametrize("path", ["keras", "numpy"])
def test_cutout_erases_one_half_side_square_per_image_to_the_batch_mean(path):
    # Distinct pixel values (never the fill value), so every erased pixel shows.
    x = (np.arange(64 * 32 * 32 * 3, dtype=np.float32).reshape(64, 32, 32, 3) % 251) + 300.0
    fill = x.mean(axis=(0, 1, 2))
    if path == "numpy":
        from budgetnas.batches import cutout
        out = cutout(x, np.random.default_rng(0).integers(0, 32, (64, 2)), 16)
    else:
        out = np.asarray(data.cutout(data.cutout_size(32), seed=0)(x))
    spans = _erased(x, out)
    assert all(s is not None and s[4] for s in spans)  # one solid rectangle in every image
    assert all(s[2] <= 16 and s[3] <= 16 for s in spans)
    full = [s for s in spans if 0 < s[0] <= 16 and 0 < s[1] <= 16]  # centred away from the border
    assert full and all((s[2], s[3]) == (16, 16) for s in full)
    assert any(s[2] < 16 or s[3] < 16 for s in spans)  # and clipped where it crosses the border
    changed = np.any(x != out, axis=-1)
    assert np.allclose(out[changed], np.broadcast_to(fill, out.shape)[changed], rtol=1e-6)


def _jitter_reference(x, b, c, s):
    """Colour jitter written out pixel by pixel: grey by BT.601 weights, saturation, contrast about each channel's
    image mean, brightness, clip."""
    out = np.empty_like(x, dtype=np.float64)
    for k in range(len(x)):
        img = x[k].astype(np.float64)
        grey = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
        img = grey[..., None] + s[k] * (img - grey[..., None])
        for ch in range(3):
            m = img[..., ch].mean()
            img[..., ch] = m + c[k] * (img[..., ch] - m) + b[k]
        out[k] = np.clip(img, 0, 255)
    return out


@pytest.mark.parametrize("path", ["keras", "numpy"])
def test_colour_jitter_matches_a_pixel_by_pixel_reference(path):
    import keras

    x = np.random.default_rng(3).integers(0, 256, (4, 8, 8, 3)).astype(np.float32)
    b, c, s = np.array([0.0, 20.0, -25.5, 5.0]), np.array([1.0, 0.9, 1.1, 1.05]), np.array([1.0, 0.5, 1.5, 0.0])
    if path == "numpy":
        out = augment.jitter(x, b, c, s)
    else:
        out = np.asarray(augment.jitter(keras.ops.convert_to_tensor(x), *(keras.ops.convert_to_tensor(v, "float32")
                                                                       for v in (b, c, s)), ops=keras.ops))
    assert np.allclose(out, _jitter_reference(x, b, c, s), atol=1e-3)
    assert np.allclose(out[0], x[0])  # factors (0, 1, 1): the image as it was
    assert np.allclose(out[3, ..., 0], out[3, ..., 1], atol=1e-3)  # saturation 0: grey


@pytest.mark.parametrize("path", ["tf.data", "numpy"])
def test_mixup_mixes_images_and_labels_alike_within_the_cap_that_grows_with_the_epoch(path):
    # Image k is all k and its label is class k: a mixed image's pixels are the label-weighted mean of the classes.
    n = 8
    arrays = data.Arrays(np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None] * 10, 4, axis=1)
                         .repeat(4, axis=2), np.arange(n))
    mixup = data.Mixup(0.4, epochs=10)
    if path == "numpy":
        from budgetnas.batches import ArrayBatches
        batches = ArrayBatches(arrays, n, n, training=True, mixup=mixup)
        take = lambda: batches[0]  # noqa: E731
    else:
        ds = data.pipeline(arrays, n, n, training=True, mixup=mixup)
        take = lambda: next(iter(ds))  # noqa: E731
    for epoch, cap in ((0, 0.0), (2, 0.2), (9, 0.4)):
        mixup.at_epoch(epoch)
        x, y = (np.asarray(v) for v in take())
        assert np.allclose(y.sum(axis=1), 1) and np.allclose(x.mean(axis=(1, 2, 3)), y @ (10.0 * np.arange(n)),
                                                             atol=1e-3)
        own = y[np.arange(n), np.round(x.mean(axis=(1, 2, 3)) / 10).astype(int)] if cap == 0 else y.max(axis=1)
        assert np.all(own >= 1 - cap - 1e-6)  # no image gives more than the cap of itself away
        if cap == 0:
            assert np.allclose(y.max(axis=1), 1)
        else:
            assert (y.max(axis=1) < 1 - 1e-3).sum() >= n // 2  # and most do mix
