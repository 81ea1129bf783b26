"""The prepared-dataset format and the built-in datasets (digits, synthetic)."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from imgzoo import data
from imgzoo.data import store
from imgzoo.errors import ConfigError, DataError

SMALL_SYNTHETIC = {"image_size": 12, "channels": 2, "num_classes": 4, "train_size": 200,
                   "test_size": 40}
ARRAYS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")


@pytest.fixture(scope="module")
def digits(digits_h5):
    return data.load(digits_h5)


def prepared(tmp_path, name, options, filename="out.h5"):
    data.prepare(name, options, tmp_path / filename)
    return data.load(tmp_path / filename)


def assert_same_arrays(a, b):
    for key in ARRAYS:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    for split in store.SPLITS:
        np.testing.assert_array_equal(a.source_index[split], b.source_index[split])


def test_known_datasets():
    assert {"digits", "synthetic", "cifar10", "cifar100", "stl10", "tinyimagenet",
            "fashion_mnist"} == set(data.known_datasets())


def test_digits_round_trip(digits):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    assert (digits.name, digits.num_classes, digits.image_size, digits.channels) == \
        ("digits", 10, 8, 1)
    assert digits.class_names == [str(d) for d in range(10)]
    # 20% of 1797 carved as test, then 10% of the rest as val.
    assert (len(digits.train_y), len(digits.val_y), len(digits.test_y)) == (1294, 144, 359)
    for split in store.SPLITS:
        x, y = getattr(digits, f"{split}_x"), getattr(digits, f"{split}_y")
        index = digits.source_index[split]
        assert x.dtype == np.uint8 and x.shape[1:] == (8, 8, 1) and y.dtype == np.int64
        np.testing.assert_array_equal(y, bunch.target[index])
        np.testing.assert_array_equal(x[..., 0], np.rint(bunch.images[index] * 255 / 16))
    indices = [set(digits.source_index[s]) for s in store.SPLITS]
    assert sum(map(len, indices)) == 1797 and set.union(*indices) == set(range(1797))


def test_splits_are_stratified(digits):
    # val is drawn from the official train rows (train + val), test from all 1797.
    train_rows = np.concatenate([digits.train_y, digits.val_y])
    all_rows = np.concatenate([train_rows, digits.test_y])
    for carved, population in ((digits.val_y, train_rows), (digits.test_y, all_rows)):
        expected = np.bincount(population, minlength=10) * len(carved) / len(population)
        assert np.all(np.abs(np.bincount(carved, minlength=10) - expected) < 1)


def test_mean_std_are_the_train_splits(digits):
    pixels = digits.train_x.reshape(-1, digits.channels).astype(np.float64) / 255
    np.testing.assert_allclose(digits.mean, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(digits.std, pixels.std(axis=0), rtol=1e-6)
    assert digits.mean.dtype == np.float32 and digits.std.dtype == np.float32


def test_attributes_follow_the_contract(tmp_path):
    path = tmp_path / "s.h5"
    data.prepare("synthetic", {**SMALL_SYNTHETIC, "split_seed": 3}, path)
    with h5py.File(path, "r") as f:
        assert f.attrs["schema"] == "imgzoo.dataset" and f.attrs["schema_version"] == 1
        assert f.attrs["split_seed"] == 3 and f.attrs["name"] == "synthetic"
        assert json.loads(f.attrs["options"])["image_size"] == 12
        assert len(f.attrs["source_sha256"]) == 64
        for split in store.SPLITS:
            assert f[split]["images"].dtype == np.uint8
            assert f[split]["labels"].dtype == np.int64
            assert f[split]["source_index"].dtype == np.int64


def test_synthetic_round_trip(tmp_path):
    p = prepared(tmp_path, "synthetic", SMALL_SYNTHETIC)
    assert (p.num_classes, p.image_size, p.channels) == (4, 12, 2)
    assert p.class_names == ["class0", "class1", "class2", "class3"]
    assert (len(p.train_y), len(p.val_y), len(p.test_y)) == (180, 20, 40)
    assert p.train_x.shape == (180, 12, 12, 2) and p.train_x.dtype == np.uint8
    assert np.bincount(p.val_y).tolist() == [5, 5, 5, 5]  # balanced labels, stratified val
    assert not set(p.source_index["train"]) & set(p.source_index["val"])
    np.testing.assert_array_equal(p.source_index["test"], np.arange(40))


def test_prepare_is_deterministic(tmp_path):
    a = prepared(tmp_path, "synthetic", SMALL_SYNTHETIC, "a.h5")
    b = prepared(tmp_path, "synthetic", SMALL_SYNTHETIC, "b.h5")
    assert_same_arrays(a, b)
    assert a.attrs["source_sha256"] == b.attrs["source_sha256"]


def test_split_seed_changes_the_split_only(tmp_path):
    a = prepared(tmp_path, "synthetic", SMALL_SYNTHETIC, "a.h5")
    b = prepared(tmp_path, "synthetic", {**SMALL_SYNTHETIC, "split_seed": 1}, "b.h5")
    assert set(a.source_index["val"]) != set(b.source_index["val"])
    np.testing.assert_array_equal(a.test_x, b.test_x)  # the generated set is the same


def test_generator_seed_changes_the_images(tmp_path):
    a = prepared(tmp_path, "synthetic", SMALL_SYNTHETIC, "a.h5")
    b = prepared(tmp_path, "synthetic", {**SMALL_SYNTHETIC, "generator_seed": 1}, "b.h5")
    assert not np.array_equal(a.test_x, b.test_x)
    assert a.attrs["source_sha256"] != b.attrs["source_sha256"]


def test_synthetic_is_learnable_but_not_trivially():
    from imgzoo.data.readers import synthetic

    options = {**synthetic.OPTIONS, "image_size": 16, "train_size": 2000, "test_size": 500}
    raw = synthetic.read("synthetic", options)
    # Nearest class mean: the best a per-pixel template can do without training.
    means = np.stack([raw.train_x[raw.train_y == c].reshape(-1, 768).mean(0) for c in range(10)])
    flat = raw.test_x.reshape(len(raw.test_x), -1).astype(np.float64)
    predicted = ((flat[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    accuracy = (predicted == raw.test_y).mean()
    assert 0.3 < accuracy < 0.9, accuracy


def test_val_size_and_limit_train(tmp_path):
    p = prepared(tmp_path, "digits", {"val_size": 100, "limit_train": 200})
    assert len(p.val_y) == 100 and len(p.train_y) == 200
    # The train split is stored in an order whose every prefix is stratified.
    assert np.all(np.abs(np.bincount(p.train_y, minlength=10) - 20) <= 2)
    full = prepared(tmp_path, "digits", {"val_size": 100}, "full.h5")
    np.testing.assert_array_equal(p.source_index["train"], full.source_index["train"][:200])
    np.testing.assert_array_equal(p.val_x, full.val_x)
    pixels = p.train_x.reshape(-1).astype(np.float64) / 255
    np.testing.assert_allclose(p.mean, [pixels.mean()], rtol=1e-6)


def test_failed_prepare_leaves_no_file(tmp_path, monkeypatch):
    def fail(group, split):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "_write_split", fail)
    with pytest.raises(RuntimeError):
        data.prepare("synthetic", SMALL_SYNTHETIC, tmp_path / "out.h5")
    assert list(tmp_path.iterdir()) == []


def test_failed_prepare_keeps_an_older_file(tmp_path):
    path = tmp_path / "out.h5"
    data.prepare("synthetic", SMALL_SYNTHETIC, path)
    before = path.read_bytes()
    with pytest.raises(ConfigError):
        data.prepare("synthetic", {**SMALL_SYNTHETIC, "channels": 0}, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.h5"]


@pytest.fixture
def small_file(tmp_path):
    path = tmp_path / "small.h5"
    data.prepare("synthetic", SMALL_SYNTHETIC, path)
    return path


def test_wrong_schema_version_is_a_data_error(small_file):
    with h5py.File(small_file, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(DataError, match=rf"{small_file}.*schema version 99"):
        data.load(small_file)


def test_foreign_file_is_a_data_error(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(DataError, match=rf"{path}: not an imgzoo prepared dataset"):
        data.load(path)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(DataError, match=str(text)):
        data.load(text)


def test_truncated_file_is_a_data_error(small_file):
    content = small_file.read_bytes()
    small_file.write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match=str(small_file)):
        data.load(small_file)


def test_missing_group_is_a_data_error(small_file):
    with h5py.File(small_file, "a") as f:
        del f["val"]
    with pytest.raises(DataError, match=str(small_file)):
        data.load(small_file)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such prepared dataset"):
        data.load(tmp_path / "nope.h5")


def test_unknown_dataset_suggests_the_closest(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset 'cifar-10'.*cifar10"):
        data.prepare("cifar-10", {}, tmp_path / "x.h5")


def test_unknown_option_is_named(tmp_path):
    with pytest.raises(ConfigError, match="dataset 'synthetic': unknown option 'imge_size'.*"
                                          "image_size"):
        data.prepare("synthetic", {"imge_size": 8}, tmp_path / "x.h5")
    with pytest.raises(ConfigError, match="dataset 'digits': unknown option 'source'"):
        data.prepare("digits", {"source": "x"}, tmp_path / "x.h5")


@pytest.mark.parametrize("options, key", [
    ({"val_fraction": 1.5}, "val_fraction"),
    ({"val_fraction": 0}, "val_fraction"),
    ({"split_seed": -1}, "split_seed"),
    ({"val_size": 2000}, "val_size"),
    ({"limit_train": "10"}, "limit_train"),
    ({"test_fraction": True}, "test_fraction"),
])
def test_bad_values_are_config_errors(tmp_path, options, key):
    with pytest.raises(ConfigError, match=f"'digits'.*{key}"):
        data.prepare("digits", options, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_data_package_does_not_import_torch(tmp_path):
    code = ("import sys, imgzoo.data as d; "
            f"d.prepare('synthetic', {SMALL_SYNTHETIC!r}, {str(tmp_path / 'x.h5')!r}); "
            f"d.load({str(tmp_path / 'x.h5')!r}); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
