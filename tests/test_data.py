"""Data layer on the real MNIST / Fashion-MNIST archives: reader, TFDS path, errors, splits."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from dsbench.config import DatasetConfig
from dsbench.data.archives import load_archives, md5_of
from dsbench.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx_gz, write_idx_gz
from dsbench.data.registry import DATASETS
from dsbench.data.splits import load_splits, split_train_val, take_subset
from dsbench.errors import DsbenchError, ExternalError

# md5 of the *decompressed* IDX files, from ../shared/data/SOURCES.md.
DECOMPRESSED_MD5 = {
    "mnist": {
        "train_images": "6bbc9ace898e44ae57da46a324031adb",
        "train_labels": "a25bea736e30d166cdddb491f175f624",
        "test_images": "2646ac647ad5339dbf082846283269ea",
        "test_labels": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion_mnist": {
        "train_images": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train_labels": "9018921c3c673c538a1fc5bad174d6f9",
        "test_images": "8181f5470baa50b63fa0f6fddb340f0a",
        "test_labels": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
MNIST = DATASETS["mnist"]


def _mnist(
    source: str, archive_dir: Path, tfds_data_dir: Path | None = None, **values: object
) -> DatasetConfig:
    """MNIST's DatasetConfig from `source` with these folders; other values the schema's."""
    folders = {"archive_dir": str(archive_dir)}
    if tfds_data_dir is not None:
        folders["tfds_data_dir"] = str(tfds_data_dir)
    return DatasetConfig("mnist", source, **folders, **values)


def _idx_bytes(array: np.ndarray) -> bytes:
    """The decompressed IDX file that holds `array` (images NHWC with c=1, or labels)."""
    if array.ndim == 4:
        n, rows, cols, _ = array.shape
        header = struct.pack(">iiii", IMAGES_MAGIC, n, rows, cols)
    else:
        header = struct.pack(">ii", LABELS_MAGIC, len(array))
    return header + array.tobytes()


def _digests(x: np.ndarray, y: np.ndarray) -> list[bytes]:
    """Sorted per-example digests of image bytes + label: an order-free fingerprint."""
    return sorted(
        hashlib.blake2b(img.tobytes() + bytes([int(lab)]), digest_size=16).digest()
        for img, lab in zip(x, y, strict=True)
    )


def _archive_dir_with(tmp_path: Path, shared_data: Path, part: str, replacement: Path) -> Path:
    """A copy of the MNIST archive dir (symlinks) where file `part` is `replacement`."""
    folder = tmp_path / "archives"
    folder.mkdir()
    for p, (file_name, _) in MNIST.files.items():
        target = replacement if p == part else shared_data / "mnist" / file_name
        (folder / file_name).symlink_to(target)
    return folder


@pytest.fixture(scope="session")
def mnist_arrays(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return load_archives(MNIST, shared_data / "mnist")


# --- archive reader on the real files ------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_archives_real_files(name: str, shared_data: Path, mnist_arrays) -> None:
    info = DATASETS[name]
    arrays = mnist_arrays if name == "mnist" else load_archives(info, shared_data / name)
    x_train, y_train, x_test, y_test = arrays
    assert x_train.shape == (60000, 28, 28, 1)
    assert x_test.shape == (10000, 28, 28, 1)
    assert y_train.shape == (60000,)
    assert y_test.shape == (10000,)
    for a in arrays:
        assert a.dtype == np.uint8
    for y in (y_train, y_test):
        assert set(np.unique(y).tolist()) == set(range(10))
    # Content: rebuilding the IDX bytes from the arrays gives the official decompressed md5.
    parts = dict(zip(MNIST.files, arrays, strict=True))
    for part, array in parts.items():
        assert hashlib.md5(_idx_bytes(array)).hexdigest() == DECOMPRESSED_MD5[name][part], part


def test_mnist_known_first_labels(mnist_arrays) -> None:
    assert mnist_arrays[1][:4].tolist() == [5, 0, 4, 1]


def test_md5_of_matches_official(shared_data: Path) -> None:
    for _part, (file_name, official) in MNIST.files.items():
        assert md5_of(shared_data / "mnist" / file_name) == official


def test_write_then_read_idx_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    write_idx_gz(tmp_path / "i.gz", images)
    write_idx_gz(tmp_path / "l.gz", labels)
    np.testing.assert_array_equal(read_idx_gz(tmp_path / "i.gz", IMAGES_MAGIC), images)
    np.testing.assert_array_equal(read_idx_gz(tmp_path / "l.gz", LABELS_MAGIC), labels)


# --- TFDS offline path ---------------------------------------------------------------------


@pytest.mark.slow
def test_tfds_same_data_as_archive(mnist_tfds: Path, mnist_manual_dir: Path, mnist_arrays) -> None:
    splits = load_splits(_mnist("tfds", mnist_manual_dir, mnist_tfds, val_fraction=0.0))
    assert splits.source == "tfds"
    x_train, y_train, x_test, y_test = mnist_arrays
    for got, want in [
        (splits.x_train, x_train),
        (splits.y_train, y_train),
        (splits.x_test, x_test),
        (splits.y_test, y_test),
    ]:
        assert got.shape == want.shape
        assert got.dtype == np.uint8
    assert splits.x_val.shape == (0, 28, 28, 1)
    # TFDS stores examples in its own order: same data, compared order-free.
    assert splits.y_train[:4].tolist() != [5, 0, 4, 1]
    assert _digests(splits.x_train, splits.y_train) == _digests(x_train, y_train)
    assert _digests(splits.x_test, splits.y_test) == _digests(x_test, y_test)


@pytest.mark.slow
def test_tfds_split_sizes(mnist_tfds: Path, mnist_manual_dir: Path) -> None:
    subsets = {"split_seed": 3, "train_subset": 500, "test_subset": 300}
    splits = load_splits(_mnist("tfds", mnist_manual_dir, mnist_tfds, **subsets))
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (500, 6000, 300)
    assert set(np.unique(splits.y_train).tolist()) == set(range(10))


def test_tfds_without_archives_offline_fails_fast(tmp_path: Path) -> None:
    """No archives, no prepared data, no network (the session's mirror is a closed port):
    the fetch fails in seconds with one line, before TFDS is asked anything."""
    manual = tmp_path / "manual"
    manual.mkdir()
    start = time.monotonic()
    with pytest.raises(ExternalError) as err:
        load_splits(_mnist("tfds", manual, tmp_path / "tfds"))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("cannot fetch mnist (4 files) from ")
    assert "-ubyte.gz: " in msg and "Connection refused" in msg  # the file that failed
    assert f"put the official files in {manual}" in msg
    assert time.monotonic() - start < 30
    assert not (tmp_path / "tfds").exists()


def test_archive_dir_with_tilde(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Configs write paths like "~/data/mnist": they must be expanded.
    monkeypatch.setenv("HOME", str(shared_data))
    x_train, _, _, _ = load_archives(MNIST, "~/mnist")
    assert x_train.shape == (60000, 28, 28, 1)


def test_a_failed_fetch_leaves_no_folder_behind(tmp_path: Path) -> None:
    """The archive folder is made for the fetch; when the fetch fails it goes again, with
    every folder above it that the fetch made; a folder that was there stays, with no file
    but the fetch's lock (other processes may be waiting on it)."""
    with pytest.raises(ExternalError, match="cannot fetch mnist"):
        load_splits(_mnist("tfds", tmp_path / "nope" / "mnist", tmp_path / "tfds"))
    assert not (tmp_path / "nope").exists()
    (tmp_path / "there").mkdir()
    with pytest.raises(ExternalError, match="cannot fetch mnist"):
        load_splits(_mnist("archive", tmp_path / "there", tmp_path / "tfds"))
    assert [p.name for p in (tmp_path / "there").iterdir()] == [".dsbench-fetch.lock"]


def test_tfds_bad_checksum(tmp_path: Path, shared_data: Path) -> None:
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    data = bytearray((shared_data / "mnist" / bad.name).read_bytes())
    data[-20] ^= 0xFF
    bad.write_bytes(bytes(data))
    manual = _archive_dir_with(tmp_path, shared_data, "train_labels", bad)
    with pytest.raises(DsbenchError) as err:
        load_splits(_mnist("tfds", manual, tmp_path / "tfds"))
    msg = str(err.value)
    assert "\n" not in msg
    assert "TFDS could not prepare mnist" in msg
    assert "downloaded to " + str(manual / bad.name) + ", has wrong checksum" in msg
    assert f"place the official archives in {manual}" in msg


# --- errors on the archive path ------------------------------------------------------------


def test_missing_archive_dir(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_dir"
    with pytest.raises(DsbenchError) as err:
        load_archives(MNIST, missing)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(missing) in msg and "does not exist" in msg
    for file_name, _ in MNIST.files.values():
        assert file_name in msg


def test_missing_archive_file(tmp_path: Path, shared_data: Path) -> None:
    folder = tmp_path / "partial"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte.gz").symlink_to(
        shared_data / "mnist" / "train-images-idx3-ubyte.gz"
    )
    with pytest.raises(DsbenchError) as err:
        load_archives(MNIST, folder)
    msg = str(err.value)
    assert "lacks train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz" in msg
    assert "t10k-labels-idx1-ubyte.gz" in msg


def test_wrong_md5(tmp_path: Path, shared_data: Path) -> None:
    bad = tmp_path / "modified.gz"
    data = bytearray((shared_data / "mnist" / "train-labels-idx1-ubyte.gz").read_bytes())
    data[100] ^= 0x01
    bad.write_bytes(bytes(data))
    folder = _archive_dir_with(tmp_path, shared_data, "train_labels", bad)
    with pytest.raises(DsbenchError) as err:
        load_archives(MNIST, folder)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(folder / "train-labels-idx1-ubyte.gz") in msg
    assert f"is corrupt: md5 {md5_of(bad)}, expected d53e105ee54ea40749a09fcbcd1e9432" in msg
    assert "delete it to fetch it again" in msg


def test_truncated_idx(tmp_path: Path, shared_data: Path) -> None:
    labels = np.zeros(100, dtype=np.uint8)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    write_idx_gz(path, labels, count=60000)  # header promises 60000 labels, holds 100
    with pytest.raises(DsbenchError) as err:
        read_idx_gz(path)
    msg = str(err.value)
    assert str(path) in msg and "truncated" in msg
    assert "needs 60000 payload bytes, found 100" in msg
    # The full path rejects it earlier, by md5.
    folder = _archive_dir_with(tmp_path, shared_data, "train_labels", path)
    with pytest.raises(DsbenchError, match=r"is corrupt: md5 \w+, expected d53e105e"):
        load_archives(MNIST, folder)


def test_truncated_gzip(tmp_path: Path, shared_data: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes((shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()[:2000])
    with pytest.raises(DsbenchError, match="not a complete gzip file"):
        read_idx_gz(path)


def test_idx_longer_than_header(tmp_path: Path) -> None:
    path = tmp_path / "long.gz"
    write_idx_gz(path, np.zeros((10, 4, 4), dtype=np.uint8), count=9)
    with pytest.raises(DsbenchError, match="longer than its header says"):
        read_idx_gz(path)


def test_wrong_magic(tmp_path: Path, shared_data: Path) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    write_idx_gz(path, np.zeros((3, 28, 28), dtype=np.uint8), magic=2052)
    with pytest.raises(DsbenchError) as err:
        read_idx_gz(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "magic number 2052, expected 2051 (images) or 2049 (labels)" in msg
    folder = _archive_dir_with(tmp_path, shared_data, "test_images", path)
    with pytest.raises(DsbenchError, match=r"is corrupt: md5 \w+, expected 9fb629c4"):
        load_archives(MNIST, folder)


def test_labels_file_where_images_expected(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    write_idx_gz(path, np.zeros(5, dtype=np.uint8))
    with pytest.raises(DsbenchError, match=r"magic number 2049 \(labels\), expected 2051"):
        read_idx_gz(path, IMAGES_MAGIC)


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(DsbenchError) as err:
        load_splits(DatasetConfig("cifar7", "archive", str(tmp_path)))
    msg = str(err.value)
    # One wording for a bad name, the config's and the loader's alike.
    assert msg == (
        "unknown dataset 'cifar7' (did you mean cifar10 or cifar100?); choose one of: cifar10, "
        "cifar100, fashion_mnist, mnist"
    )


def test_subset_larger_than_data(shared_data: Path) -> None:
    with pytest.raises(DsbenchError, match="test_subset=10001 is larger than the 10000"):
        load_splits(_mnist("archive", shared_data / "mnist", test_subset=10001))


# --- seeded validation split and subsets ---------------------------------------------------


def test_val_split_deterministic_disjoint(mnist_arrays) -> None:
    y = mnist_arrays[1]
    idx = np.arange(len(y))  # split indices to see exactly which examples go where
    tr1, ytr1, va1, yva1 = split_train_val(idx, y, 0.1, 42)
    tr2, _, va2, _ = split_train_val(idx, y, 0.1, 42)
    _, _, va3, _ = split_train_val(idx, y, 0.1, 43)
    assert (len(tr1), len(va1)) == (54000, 6000)
    np.testing.assert_array_equal(va1, va2)
    np.testing.assert_array_equal(tr1, tr2)
    assert not np.array_equal(va1, va3)
    assert np.intersect1d(tr1, va1).size == 0
    np.testing.assert_array_equal(np.union1d(tr1, va1), idx)
    # Labels travel with their examples.
    np.testing.assert_array_equal(ytr1, y[tr1])
    np.testing.assert_array_equal(yva1, y[va1])
    # The split is defined as the first round(f*N) of default_rng(seed).permutation(N).
    expected_val = np.sort(np.random.default_rng(42).permutation(60000)[:6000])
    np.testing.assert_array_equal(va1, expected_val)


def test_val_fraction_zero_and_rounding() -> None:
    x = np.arange(10)
    tr, _, va, _ = split_train_val(x, x, 0.0, 0)
    assert len(tr) == 10 and len(va) == 0
    tr, _, va, _ = split_train_val(x, x, 0.25, 0)  # round(2.5) == 2
    assert (len(tr), len(va)) == (8, 2)
    with pytest.raises(DsbenchError, match="gives 0 validation examples out of 10"):
        split_train_val(x, x, 0.01, 0)


def test_subsets_every_class(mnist_arrays) -> None:
    x, y = mnist_arrays[0], mnist_arrays[1]
    xs, ys = take_subset(x, y, 200, 0)
    assert xs.shape == (200, 28, 28, 1)
    assert set(np.unique(ys).tolist()) == set(range(10))
    xs2, ys2 = take_subset(x, y, 200, 0)
    np.testing.assert_array_equal(ys, ys2)
    np.testing.assert_array_equal(xs, xs2)


def test_load_splits_archive_end_to_end(shared_data: Path) -> None:
    subsets = {"split_seed": 7, "train_subset": 1000, "test_subset": 500}
    a = load_splits(_mnist("archive", shared_data / "mnist", **subsets))
    b = load_splits(_mnist("archive", shared_data / "mnist", **subsets))
    assert a.source == "archive" and a.info is MNIST
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (1000, 6000, 500)
    assert a.x_val.shape[1:] == (28, 28, 1) and a.y_val.dtype == np.uint8
    for ys in (a.y_train, a.y_val, a.y_test):
        assert set(np.unique(ys).tolist()) == set(range(10))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    # The train subset comes from what is left after the validation split.
    assert not set(_digests(a.x_train, a.y_train)) & set(_digests(a.x_val, a.y_val))


def test_dataset_module_imports_no_tensorflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys, dsbench.data.splits, dsbench.data.idx, dsbench.data.tfds;"
        "bad = [m for m in ('tensorflow', 'tensorflow_datasets', 'keras') if m in sys.modules];"
        "sys.exit(', '.join(bad) or None)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gzip_helper_is_plain_idx(tmp_path: Path) -> None:
    # write_idx_gz writes a standard IDX file: header + raw bytes, nothing else.
    path = tmp_path / "x.gz"
    write_idx_gz(path, np.arange(6, dtype=np.uint8))
    with gzip.open(path, "rb") as f:
        assert f.read() == struct.pack(">ii", 2049, 6) + bytes(range(6))
    shutil.copy(path, tmp_path / "y.gz")
    assert md5_of(tmp_path / "y.gz") == md5_of(path)
