import numpy as np
import pytest

from search import data
from search.errors import DataError


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
