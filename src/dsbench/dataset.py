"""Datasets: registry, verified archive reading, seeded validation split and subsets.

Registered: mnist, fashion_mnist (official IDX .gz files, `dsbench.idx`), cifar10, cifar100
(official *binary* .tar.gz archives, `dsbench.cifar`).

numpy only at import time: tensorflow is imported (through `dsbench.tfds_source`) only when
`source="tfds"` is asked for.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from dsbench.cifar import CIFAR10, CIFAR100, CifarLayout, read_cifar_archive
from dsbench.errors import DsbenchError
from dsbench.idx import IMAGES_MAGIC, LABELS_MAGIC, md5_of, read_idx_gz

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
SOURCES = ("tfds", "archive", "synthetic")
SYNTHETIC_SIZES = (50_000, 10_000)  # training and test images of the synthetic source (CIFAR's)


@dataclass(frozen=True)
class DatasetInfo:
    """What dsbench knows about one dataset.

    `files` maps a part name to (official file name, official md5). `reader` turns the
    md5-verified files ({part: path}) into (x_train, y_train, x_test, y_test), images NHWC
    uint8: one reader per archive format, so adding CIFAR is a new entry plus a reader.
    """

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    files: Mapping[str, tuple[str, str]]
    tfds_name: str
    reader: Callable[[Mapping[str, Path]], Arrays]


@dataclass
class Splits:
    """Train / validation / test arrays: images NHWC, labels (N,) uint8.

    Images are uint8 as loaded; `dsbench.preprocess.springenberg_preprocess` returns a copy
    with float32 images (GCN + ZCA).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: DatasetInfo
    source: str


def _read_idx_archives(paths: Mapping[str, Path]) -> Arrays:
    """Reader for the four MNIST-style IDX archives; adds the channel axis (NHW -> NHWC)."""
    x_train = read_idx_gz(paths["train_images"], IMAGES_MAGIC)[..., np.newaxis]
    y_train = read_idx_gz(paths["train_labels"], LABELS_MAGIC)
    x_test = read_idx_gz(paths["test_images"], IMAGES_MAGIC)[..., np.newaxis]
    y_test = read_idx_gz(paths["test_labels"], LABELS_MAGIC)
    return x_train, y_train, x_test, y_test


def _cifar_reader(layout: CifarLayout) -> Callable[[Mapping[str, Path]], Arrays]:
    """Reader for one official binary CIFAR archive (the single part "archive")."""

    def read(paths: Mapping[str, Path]) -> Arrays:
        return read_cifar_archive(paths["archive"], layout)

    return read


def _cifar_info(layout: CifarLayout) -> DatasetInfo:
    return DatasetInfo(
        name=layout.name,
        image_shape=(32, 32, 3),
        num_classes=layout.num_classes,  # CIFAR-100: the 100 fine labels
        files={"archive": (layout.archive, layout.md5)},
        tfds_name=layout.name,  # TFDS's cifar10 / cifar100 read the same binary archives
        reader=_cifar_reader(layout),
    )


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        image_shape=(28, 28, 1),
        num_classes=10,
        files={
            "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        },
        tfds_name="mnist",
        reader=_read_idx_archives,
    ),
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        image_shape=(28, 28, 1),
        num_classes=10,
        files={
            "train_images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            "train_labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            "test_images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            "test_labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        },
        tfds_name="fashion_mnist",
        reader=_read_idx_archives,
    ),
    "cifar10": _cifar_info(CIFAR10),
    "cifar100": _cifar_info(CIFAR100),
}


def get_info(name: str) -> DatasetInfo:
    """The registry entry for `name`, or DsbenchError listing the known datasets."""
    if name not in DATASETS:
        raise DsbenchError(
            f"unknown dataset {name!r}: dataset.name must be one of {', '.join(DATASETS)}"
        )
    return DATASETS[name]


def load_archives(
    info: DatasetInfo, archive_dir: str | PathLike[str], verify_md5: bool = True
) -> Arrays:
    """Read the official archives of `info` from `archive_dir`, after checking their md5.

    Returns (x_train, y_train, x_test, y_test) in the archives' own order, uint8, images NHWC.

    `verify_md5=False` skips the md5 check (and only it: names, format, sizes and label
    ranges are still checked). It is the escape hatch for archives that hold the official
    layout but not the official bytes: generated test archives, or a user's re-packed copy.
    Keep it on for real runs: the md5 is what makes results comparable across machines.
    """
    archive_dir = Path(archive_dir).expanduser()
    names = [file_name for file_name, _ in info.files.values()]
    if not archive_dir.is_dir():
        raise DsbenchError(
            f"{info.name} archive dir {archive_dir} does not exist: create it and place the "
            f"official files there: {', '.join(names)}"
        )
    missing = [n for n in names if not (archive_dir / n).is_file()]
    if missing:
        raise DsbenchError(
            f"{info.name} archive dir {archive_dir} lacks {', '.join(missing)}: "
            f"place the official files there ({', '.join(names)})"
        )
    paths: dict[str, Path] = {}
    for part, (file_name, official_md5) in info.files.items():
        path = archive_dir / file_name
        if verify_md5 and (actual := md5_of(path)) != official_md5:
            raise DsbenchError(
                f"{info.name} archive {path} has md5 {actual}, expected {official_md5}: "
                "re-download the official file (only for a deliberately re-packed archive: "
                "dataset.verify_md5=false)"
            )
        paths[part] = path

    x_train, y_train, x_test, y_test = info.reader(paths)
    _check_arrays(info, f"archives in {archive_dir}", x_train, y_train, x_test, y_test)
    return x_train, y_train, x_test, y_test


def _check_arrays(info: DatasetInfo, where: str, *arrays: np.ndarray) -> None:
    """Images and labels agree with each other and with `info` (catches mixed-up files)."""
    for x, y in (arrays[0:2], arrays[2:4]):
        if x.dtype != np.uint8 or x.shape[1:] != info.image_shape:
            raise DsbenchError(
                f"{info.name} {where}: images are {x.dtype} {x.shape[1:]}, expected uint8 "
                f"{info.image_shape}: use the official files"
            )
        if len(x) != len(y):
            raise DsbenchError(
                f"{info.name} {where}: {len(x)} images but {len(y)} labels: use the official files"
            )
        if y.size and int(y.max()) >= info.num_classes:
            raise DsbenchError(
                f"{info.name} {where}: label {int(y.max())} found, "
                f"expected 0..{info.num_classes - 1}: use the official files"
            )


def split_train_val(
    x: np.ndarray, y: np.ndarray, val_fraction: float, split_seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded split of a training set into (x_train, y_train, x_val, y_val).

    The first round(val_fraction * N) indices of `default_rng(split_seed).permutation(N)` are
    the validation set, the rest the training set (both kept in their original order).
    val_fraction 0.0 gives an empty validation set.
    """
    _check_val_fraction(val_fraction)
    _check_seed(split_seed)
    n = len(x)
    n_val = round(val_fraction * n)
    if val_fraction > 0 and not 0 < n_val < n:
        raise DsbenchError(
            f"val_fraction={val_fraction} gives {n_val} validation examples out of {n}: "
            "use a value that leaves at least one example on each side, or 0.0 for none"
        )
    perm = np.random.default_rng(split_seed).permutation(n)
    val_idx = np.sort(perm[:n_val])
    train_idx = np.sort(perm[n_val:])
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def take_subset(
    x: np.ndarray,
    y: np.ndarray,
    k: int | None,
    seed: int | np.random.SeedSequence,
    what: str = "subset",
) -> tuple[np.ndarray, np.ndarray]:
    """First `k` examples of a seeded permutation (kept in original order); all when k is None.

    A random subset rather than the first k rows, so that small subsets hold every class.
    """
    _check_subset(what, k)
    if k is None:
        return x, y
    if k > len(x):
        raise DsbenchError(
            f"{what}={k} is larger than the {len(x)} examples available: "
            f"use at most {len(x)}, or null for all"
        )
    idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:k])
    return x[idx], y[idx]


def load_splits(
    name: str,
    source: str,
    archive_dir: str | PathLike[str],
    tfds_data_dir: str | PathLike[str] | None,
    val_fraction: float,
    split_seed: int,
    train_subset: int | None = None,
    test_subset: int | None = None,
    verify_md5: bool = True,
) -> Splits:
    """Load dataset `name` from `source` ("tfds", "archive" or "synthetic") and split it.

    - "archive": the official files in `archive_dir`, md5-checked (unless `verify_md5` is
      False, see `load_archives`), read by dsbench.
    - "tfds": TFDS prepares the dataset in `tfds_data_dir` offline, using the same official
      files from `archive_dir` as its manual dir (TFDS checks their checksums itself, always:
      `verify_md5` does not apply).
    - "synthetic": random uint8 images of the dataset's shape and random labels
      (`synthetic_arrays`): speed measurements without the data (`dsbench.bench`).

    The validation set is a seeded split of the training set (see `split_train_val`); then
    `train_subset` limits what is left for training and `test_subset` the test set (seeded
    subsets, see `take_subset`). The test set is otherwise untouched.

    Both sources hold the same examples, but TFDS stores them in another order, so the same
    seed picks *different* validation examples on the two paths. That is expected: compare
    results within one source.
    """
    info = get_info(name)
    if source not in SOURCES:
        raise DsbenchError(
            f"unknown dataset source {source!r}: dataset.source must be one of {', '.join(SOURCES)}"
        )
    # Validate every cheap argument before the (slow) loading.
    _check_val_fraction(val_fraction)
    _check_seed(split_seed)
    _check_subset("train_subset", train_subset)
    _check_subset("test_subset", test_subset)

    if not isinstance(verify_md5, bool):
        raise DsbenchError(f"verify_md5={verify_md5!r} is invalid: use true or false")

    if source == "archive":
        x_train, y_train, x_test, y_test = load_archives(info, archive_dir, verify_md5)
    elif source == "synthetic":
        x_train, y_train, x_test, y_test = synthetic_arrays(info, split_seed)
    else:
        if tfds_data_dir is None:
            raise DsbenchError(
                "dataset.source=tfds needs a TFDS data dir (dataset.tfds_data_dir): "
                "set it, or use dataset.source=archive"
            )
        from dsbench.tfds_source import load_tfds  # imports tensorflow: only on this path

        x_train, y_train, x_test, y_test = load_tfds(info.tfds_name, tfds_data_dir, archive_dir)
        _check_arrays(info, f"TFDS data in {tfds_data_dir}", x_train, y_train, x_test, y_test)

    x_train, y_train, x_val, y_val = split_train_val(x_train, y_train, val_fraction, split_seed)
    # Seeds derived from split_seed, distinct from the validation split's stream.
    x_train, y_train = take_subset(
        x_train, y_train, train_subset, _sub_seed(split_seed, 1), "train_subset"
    )
    x_test, y_test = take_subset(
        x_test, y_test, test_subset, _sub_seed(split_seed, 2), "test_subset"
    )
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, info=info, source=source)


def synthetic_arrays(info: DatasetInfo, seed: int) -> Arrays:
    """Random images of `info`'s shape (uint8, uniform) and random labels, SYNTHETIC_SIZES
    many: what a speed measurement needs of a dataset, and nothing it can learn."""
    rng = np.random.default_rng(_sub_seed(seed, 3))
    arrays: list[np.ndarray] = []
    for n in SYNTHETIC_SIZES:
        arrays.append(rng.integers(0, 256, (n, *info.image_shape), dtype=np.uint8))
        arrays.append(rng.integers(0, info.num_classes, n, dtype=np.uint8))
    x_train, y_train, x_test, y_test = arrays
    return x_train, y_train, x_test, y_test


def _sub_seed(split_seed: int, stream: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([split_seed, stream])


def _check_subset(what: str, k: int | None) -> None:
    if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral) or k <= 0):
        raise DsbenchError(f"{what}={k!r} is invalid: use a positive integer, or null for all")


def _check_val_fraction(val_fraction: float) -> None:
    ok = isinstance(val_fraction, numbers.Real) and not isinstance(val_fraction, bool)
    if not ok or not (val_fraction == 0 or 0 < val_fraction < 1):
        raise DsbenchError(
            f"val_fraction={val_fraction!r} is invalid: use a number in (0, 1), "
            "or 0.0 for no validation set"
        )


def _check_seed(split_seed: int) -> None:
    if (
        isinstance(split_seed, bool)
        or not isinstance(split_seed, numbers.Integral)
        or split_seed < 0
    ):
        raise DsbenchError(f"split_seed={split_seed!r} is invalid: use an integer >= 0")
