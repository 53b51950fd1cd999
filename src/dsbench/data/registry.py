"""The datasets dsbench knows: shapes, classes, official files and md5s, and their readers.

Registered: mnist, fashion_mnist (official IDX .gz files, `dsbench.data.idx`), cifar10,
cifar100 (official *binary* .tar.gz archives, `dsbench.data.cifar`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsbench.data.cifar import CIFAR10, CIFAR100, CifarLayout, read_cifar_archive
from dsbench.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx_gz
from dsbench.errors import unknown

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, y_train, x_test, y_test


@dataclass(frozen=True)
class DatasetInfo:
    """What dsbench knows about one dataset.

    `files` maps a part name to (official file name, official md5); `url` is the official
    folder they are downloaded from (each file is `url` + its name: the URLs TFDS's own
    builders use, a test checks them against TFDS's checksum files). `sizes` are the training
    and test examples. `reader` turns the md5-verified files ({part: path}) into (x_train,
    y_train, x_test, y_test), images NHWC uint8: one reader per archive format, so adding a
    dataset is a new entry plus a reader.
    """

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    files: Mapping[str, tuple[str, str]]
    url: str
    sizes: tuple[int, int]
    tfds_name: str
    reader: Callable[[Mapping[str, Path]], Arrays]


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
        url="https://www.cs.toronto.edu/~kriz/",
        sizes=(50_000, 10_000),
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
        url="https://storage.googleapis.com/cvdf-datasets/mnist/",  # a mirror of LeCun's files
        sizes=(60_000, 10_000),
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
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # Zalando's own
        sizes=(60_000, 10_000),
        tfds_name="fashion_mnist",
        reader=_read_idx_archives,
    ),
    "cifar10": _cifar_info(CIFAR10),
    "cifar100": _cifar_info(CIFAR100),
}


def get_info(name: str) -> DatasetInfo:
    """The registry entry for `name`, or DsbenchError listing the known datasets."""
    if name not in DATASETS:
        raise unknown("dataset", name, sorted(DATASETS))
    return DATASETS[name]
