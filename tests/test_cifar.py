"""CIFAR-10/100 data: the binary-archive reader on generated archives, its errors, TFDS path.

Generated archives (tests/cifar_fixtures.py) have the official layout but not the official
md5, so they load with `verify_md5=False`; the md5 check itself is tested to reject them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from cifar_fixtures import (
    CIFAR10_ARCHIVE,
    CIFAR10_META,
    CIFAR10_TEST,
    CIFAR10_TRAIN,
    CIFAR100_ARCHIVE,
    CIFAR100_COARSE_META,
    CIFAR100_FINE_META,
    CIFAR100_TEST,
    CIFAR100_TRAIN,
    CifarData,
    coarse_of,
    make_cifar10,
    make_cifar100,
    names_txt,
    records,
    write_tar_gz,
)

from dsbench.config import DatasetConfig
from dsbench.data.archives import load_archives, md5_of
from dsbench.data.cifar import CIFAR10, CIFAR100, read_cifar_archive
from dsbench.data.registry import DATASETS
from dsbench.data.splits import load_splits
from dsbench.errors import DsbenchError

C10 = DATASETS["cifar10"]
C100 = DATASETS["cifar100"]


def _one_line(err: pytest.ExceptionInfo[DsbenchError]) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def _write(folder: Path, archive: str, members: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_tar_gz(folder / archive, members)


# --- registry --------------------------------------------------------------------------------


def test_registry_entries() -> None:
    assert (C10.image_shape, C10.num_classes, C10.tfds_name) == ((32, 32, 3), 10, "cifar10")
    assert (C100.image_shape, C100.num_classes, C100.tfds_name) == ((32, 32, 3), 100, "cifar100")
    assert C10.files == {"archive": ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")}
    assert C100.files == {
        "archive": ("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8")
    }
    # The reader looks for exactly the official member names the fixtures write.
    assert set(CIFAR10.members) == {*CIFAR10_TRAIN, CIFAR10_TEST, CIFAR10_META}
    assert set(CIFAR100.members) == {
        CIFAR100_TRAIN,
        CIFAR100_TEST,
        CIFAR100_COARSE_META,
        CIFAR100_FINE_META,
    }
    assert (CIFAR10.record_bytes, CIFAR100.record_bytes) == (3073, 3074)


# --- generated archives load -----------------------------------------------------------------


def _assert_same(arrays: tuple[np.ndarray, ...], want: CifarData) -> None:
    for got, expected in zip(
        arrays, (want.x_train, want.y_train, want.x_test, want.y_test), strict=True
    ):
        assert got.dtype == np.uint8
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def test_cifar10_generated_archive_loads(cifar10_archive_dir: Path) -> None:
    arrays = load_archives(C10, cifar10_archive_dir, verify_md5=False)
    x_train, y_train, x_test, y_test = arrays
    assert x_train.shape == (100, 32, 32, 3) and x_test.shape == (20, 32, 32, 3)
    assert y_train.shape == (100,) and y_test.shape == (20,)
    assert set(y_train.tolist()) == set(range(10)) == set(y_test.tolist())
    assert all(a.flags.c_contiguous and a.flags.writeable for a in arrays)
    _assert_same(arrays, make_cifar10())  # batches 1..5 in order, then the test batch


def test_cifar100_generated_archive_loads_fine_labels(cifar100_archive_dir: Path) -> None:
    arrays = load_archives(C100, cifar100_archive_dir, verify_md5=False)
    x_train, y_train, x_test, y_test = arrays
    assert x_train.shape == (200, 32, 32, 3) and x_test.shape == (100, 32, 32, 3)
    assert set(y_train.tolist()) == set(range(100)) == set(y_test.tolist())
    want = make_cifar100()
    _assert_same(arrays, want)
    # Fine, not coarse: the coarse byte of the generated records is fine % 20.
    assert not np.array_equal(y_train, coarse_of(want.y_train))


@pytest.mark.parametrize("layout", [CIFAR10, CIFAR100], ids=lambda lay: lay.name)
def test_pixel_layout_planes_to_nhwc(tmp_path: Path, layout) -> None:
    """Raw record bytes written by hand: (row r, col c, channel ch) lands at x[n, r, c, ch]."""
    n_labels = len(layout.label_bytes)
    marks = {(3, 5, 0): 200, (10, 1, 1): 100, (31, 30, 2): 50, (0, 31, 0): 7}
    record = bytearray(layout.record_bytes)
    record[:n_labels] = bytes([1] * n_labels)
    for (r, c, ch), value in marks.items():
        record[n_labels + ch * 1024 + r * 32 + c] = value  # plane ch, row-major
    # A second record: R = row index, G = column index, B = 9 everywhere.
    gradient = bytearray(bytes([2] * n_labels))
    gradient += bytes(r for r in range(32) for _ in range(32))
    gradient += bytes(c for _ in range(32) for c in range(32))
    gradient += bytes([9] * 1024)
    data = bytes(record + gradient)

    members = {m: data for m in layout.members if m.endswith(".bin")}
    if layout is CIFAR10:
        members[CIFAR10_META] = names_txt([f"c{i}" for i in range(10)])
    else:
        members[CIFAR100_COARSE_META] = names_txt([f"k{i}" for i in range(20)])
        members[CIFAR100_FINE_META] = names_txt([f"f{i}" for i in range(100)])
    path = write_tar_gz(tmp_path / layout.archive, members)

    for x, y in [read_cifar_archive(path, layout)[0:2], read_cifar_archive(path, layout)[2:4]]:
        assert x.shape[1:] == (32, 32, 3)
        np.testing.assert_array_equal(y[:2], [1, 2])
        first = x[0]
        for (r, c, ch), value in marks.items():
            assert first[r, c, ch] == value, (r, c, ch)
        assert int(first.astype(np.int64).sum()) == sum(marks.values())
        second = x[1]
        np.testing.assert_array_equal(second[:, :, 0], np.repeat(np.arange(32), 32).reshape(32, 32))
        np.testing.assert_array_equal(second[:, :, 1], np.tile(np.arange(32), (32, 1)))
        assert (second[:, :, 2] == 9).all()


def test_fixture_writer_is_the_official_record_format() -> None:
    # The fixtures' own encoder, checked once by hand: label, then R, G, B planes.
    image = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    image[0, 0, 1, 2] = 77  # row 0, col 1, blue
    data = records(image, np.array([4]), np.array([42]))
    assert len(data) == 3074 and data[:2] == bytes([4, 42])
    assert data[2 + 2 * 1024 + 1] == 77 and sum(data[2:]) == 77


# --- load_splits on generated archives ---------------------------------------------------------


def _generated(name: str, folder: Path, **values: object) -> DatasetConfig:
    """The archive source on a generated archive (not the official md5)."""
    return DatasetConfig(name, "archive", str(folder), verify_md5=False, **values)


def test_load_splits_cifar10_archive(cifar10_archive_dir: Path) -> None:
    a = load_splits(_generated("cifar10", cifar10_archive_dir))
    assert a.info is C10 and a.source == "archive"
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (90, 10, 20)
    assert a.x_val.shape[1:] == (32, 32, 3) and a.x_val.dtype == np.uint8
    b = load_splits(_generated("cifar10", cifar10_archive_dir, train_subset=40, test_subset=15))
    assert (len(b.x_train), len(b.x_val), len(b.x_test)) == (40, 10, 15)
    np.testing.assert_array_equal(a.x_val, b.x_val)  # same split seed: same val set
    c = load_splits(_generated("cifar10", cifar10_archive_dir, train_subset=40, test_subset=15))
    np.testing.assert_array_equal(b.x_train, c.x_train)
    np.testing.assert_array_equal(b.y_test, c.y_test)


def test_load_splits_cifar100_archive(cifar100_archive_dir: Path) -> None:
    s = load_splits(_generated("cifar100", cifar100_archive_dir, val_fraction=0.2, split_seed=1))
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (160, 40, 100)
    assert s.y_train.max() < 100 and s.y_train.dtype == np.uint8


def test_load_splits_verifies_md5_by_default(cifar10_archive_dir: Path) -> None:
    with pytest.raises(DsbenchError, match="is corrupt: md5"):
        load_splits(DatasetConfig("cifar10", "archive", str(cifar10_archive_dir)))


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "fixture"), [(C10, "cifar10_archive_dir"), (C100, "cifar100_archive_dir")]
)
def test_md5_mismatch_rejected(info, fixture: str, request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(fixture)
    archive, official = info.files["archive"]
    with pytest.raises(DsbenchError) as err:
        load_archives(info, folder)
    msg = _one_line(err)
    assert (
        f"{folder / archive} is corrupt: md5 {md5_of(folder / archive)}, expected {official}" in msg
    )
    assert "delete it to fetch it again" in msg and "dataset.verify_md5=false" in msg


def test_missing_archive_file(tmp_path: Path) -> None:
    with pytest.raises(DsbenchError) as err:
        load_archives(C10, tmp_path, verify_md5=False)
    assert f"archive dir {tmp_path} lacks cifar-10-binary.tar.gz" in _one_line(err)


def test_truncated_member(tmp_path: Path) -> None:
    members = make_cifar10().members
    members[CIFAR10_TRAIN[2]] = members[CIFAR10_TRAIN[2]][:-100]  # 20 records less 100 bytes
    _write(tmp_path, CIFAR10_ARCHIVE, members)
    with pytest.raises(DsbenchError) as err:
        load_archives(C10, tmp_path, verify_md5=False)
    msg = _one_line(err)
    assert "member cifar-10-batches-bin/data_batch_3.bin is truncated" in msg
    assert f"{20 * 3073 - 100} bytes is not a positive multiple of the record size 3073" in msg
    assert "re-download the official archive" in msg


def test_truncated_member_cifar100(tmp_path: Path) -> None:
    members = make_cifar100().members
    members[CIFAR100_TEST] = members[CIFAR100_TEST] + b"\x00"
    _write(tmp_path, CIFAR100_ARCHIVE, members)
    with pytest.raises(DsbenchError) as err:
        load_archives(C100, tmp_path, verify_md5=False)
    msg = _one_line(err)
    assert "member cifar-100-binary/test.bin is truncated" in msg
    assert "record size 3074 (1 coarse label byte + 1 fine label byte + 3072 image bytes)" in msg


def test_empty_member(tmp_path: Path) -> None:
    members = make_cifar10().members
    members[CIFAR10_TEST] = b""
    _write(tmp_path, CIFAR10_ARCHIVE, members)
    with pytest.raises(DsbenchError, match=r"test_batch\.bin is empty: 0 bytes"):
        load_archives(C10, tmp_path, verify_md5=False)


@pytest.mark.parametrize(
    ("cut", "expected"),
    [
        (lambda b: b[: len(b) // 2], "cannot be read as a .tar.gz"),  # cut-off download
        (lambda b: b[:5], "cannot be read as a .tar.gz"),  # not even a gzip header
        (lambda b: b"PK\x03\x04" + b[4:], "cannot be read as a .tar.gz"),  # not gzip at all
        (lambda b: b[:-20], "cannot be read as a .tar.gz"),  # only the tail (padding) is lost
    ],
    ids=["half", "header-only", "not-gzip", "tail"],
)
def test_corrupt_gzip(tmp_path: Path, cifar10_archive_dir: Path, cut, expected: str) -> None:
    good = (cifar10_archive_dir / CIFAR10_ARCHIVE).read_bytes()
    (tmp_path / CIFAR10_ARCHIVE).write_bytes(cut(good))
    with pytest.raises(DsbenchError) as err:
        load_archives(C10, tmp_path, verify_md5=False)
    msg = _one_line(err)
    assert f"cifar10 archive {tmp_path / CIFAR10_ARCHIVE} {expected}" in msg
    assert msg.endswith("re-download the official archive")


def test_flipped_byte_caught_by_gzip_crc(tmp_path: Path, cifar10_archive_dir: Path) -> None:
    # Random pixels do not compress: deflate stores them, so a flipped byte inside a stored
    # block decodes "fine" and only the CRC in the gzip trailer can catch it.
    data = bytearray((cifar10_archive_dir / CIFAR10_ARCHIVE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / CIFAR10_ARCHIVE).write_bytes(bytes(data))
    with pytest.raises(DsbenchError) as err:
        load_archives(C10, tmp_path, verify_md5=False)
    assert "cannot be read as a .tar.gz" in _one_line(err)


def test_gzip_but_not_tar(tmp_path: Path) -> None:
    import gzip

    (tmp_path / CIFAR10_ARCHIVE).write_bytes(gzip.compress(b"hello " * 1000))
    with pytest.raises(DsbenchError) as err:
        load_archives(C10, tmp_path, verify_md5=False)
    assert "cannot be read as a .tar.gz" in _one_line(err)


@pytest.mark.parametrize("dropped", [CIFAR10_TEST, CIFAR10_TRAIN[4], CIFAR10_META])
def test_missing_member(tmp_path: Path, dropped: str) -> None:
    members = make_cifar10().members
    del members[dropped]
    path = _write(tmp_path, CIFAR10_ARCHIVE, members)
    with pytest.raises(DsbenchError) as err:
        load_archives(C10, tmp_path, verify_md5=False)
    msg = _one_line(err)
    assert f"cifar10 archive {path} lacks {dropped}: re-download the official archive" in msg


def test_python_version_archive_is_rejected(tmp_path: Path) -> None:
    # The pickled "python version" has other member names: reported as missing members,
    # never unpickled.
    members = {"cifar-10-batches-py/data_batch_1": b"\x80\x04junk", "cifar-10-batches-py/x": b""}
    _write(tmp_path, CIFAR10_ARCHIVE, members)
    with pytest.raises(DsbenchError) as err:
        load_archives(C10, tmp_path, verify_md5=False)
    assert "lacks cifar-10-batches-bin/data_batch_1.bin" in _one_line(err)


@pytest.mark.parametrize(
    ("make", "archive", "member", "column", "value", "expected"),
    [
        (make_cifar10, CIFAR10_ARCHIVE, CIFAR10_TRAIN[1], 0, 10, "label 10, expected 0..9"),
        (make_cifar100, CIFAR100_ARCHIVE, CIFAR100_TRAIN, 1, 100, "fine label 100, expected 0..99"),
        (make_cifar100, CIFAR100_ARCHIVE, CIFAR100_TEST, 0, 20, "coarse label 20, expected 0..19"),
    ],
    ids=["cifar10", "cifar100-fine", "cifar100-coarse"],
)
def test_label_out_of_range(tmp_path: Path, make, archive, member, column, value, expected):
    members = make().members
    rec = 3073 if archive == CIFAR10_ARCHIVE else 3074
    data = bytearray(members[member])
    data[3 * rec + column] = value  # record 3
    members[member] = bytes(data)
    _write(tmp_path, archive, members)
    info = C10 if archive == CIFAR10_ARCHIVE else C100
    with pytest.raises(DsbenchError) as err:
        load_archives(info, tmp_path, verify_md5=False)
    msg = _one_line(err)
    assert f"member {member}: record 3 has {expected} (1 such records)" in msg


def test_label_names_file_checked(tmp_path: Path) -> None:
    members = make_cifar100().members
    members[CIFAR100_FINE_META] = names_txt([f"f{i}" for i in range(99)])
    _write(tmp_path, CIFAR100_ARCHIVE, members)
    with pytest.raises(DsbenchError) as err:
        load_archives(C100, tmp_path, verify_md5=False)
    assert "fine_label_names.txt holds 99 class names, expected 100" in _one_line(err)


# --- TFDS path -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "archive"), [("cifar10", CIFAR10_ARCHIVE), ("cifar100", CIFAR100_ARCHIVE)]
)
def test_tfds_missing_archive_fails_fast(tmp_path: Path, name: str, archive: str) -> None:
    manual = tmp_path / "manual"
    manual.mkdir()
    start = time.monotonic()
    with pytest.raises(DsbenchError) as err:
        load_splits(DatasetConfig(name, "tfds", str(manual), tfds_data_dir=str(tmp_path / "tfds")))
    msg = _one_line(err)
    # Fetched first (from the session's closed mirror port), before TFDS is asked.
    assert msg.startswith(f"cannot fetch {name} ({archive}) from http://127.0.0.1:9/{name}/")
    assert f"put the official files in {manual}" in msg
    assert time.monotonic() - start < 60
    assert not (tmp_path / "tfds" / name).exists()


def test_tfds_generated_archive_fails_checksum(tmp_path: Path, cifar10_archive_dir: Path) -> None:
    """TFDS refuses a non-official archive (we never register checksums): one line, no hang."""
    start = time.monotonic()
    with pytest.raises(DsbenchError) as err:
        tfds = str(tmp_path / "tfds")
        load_splits(DatasetConfig("cifar10", "tfds", str(cifar10_archive_dir), tfds_data_dir=tfds))
    msg = _one_line(err)
    assert "TFDS could not prepare cifar10" in msg
    path = cifar10_archive_dir / CIFAR10_ARCHIVE
    assert f"downloaded to {path}, has wrong checksum" in msg
    assert f"place the official archives in {cifar10_archive_dir}" in msg
    assert time.monotonic() - start < 60
    assert not list((tmp_path / "tfds").glob("cifar10/*/dataset_info.json"))


# --- the real archives, where a user has them ------------------------------------------------


@pytest.mark.parametrize(("info", "n_train"), [(C10, 50000), (C100, 50000)], ids=["c10", "c100"])
def test_real_archive_if_present(info, n_train: int, data_dir: Path) -> None:
    folder = data_dir / info.name
    if not (folder / info.files["archive"][0]).is_file():
        pytest.skip(f"no official {info.files['archive'][0]} in {folder} (cannot be downloaded)")
    x_train, y_train, x_test, y_test = load_archives(info, folder)  # md5 checked
    assert x_train.shape == (n_train, 32, 32, 3) and x_test.shape == (10000, 32, 32, 3)
    k = info.num_classes
    assert np.bincount(y_train, minlength=k).tolist() == [n_train // k] * k
    assert np.bincount(y_test, minlength=k).tolist() == [10000 // k] * k
