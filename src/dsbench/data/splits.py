"""The seeded validation split and subsets of a dataset, from any source.

numpy only at import time: tensorflow is imported (through `dsbench.data.tfds`) only when
`source="tfds"` is asked for. The stage takes its `dsbench.config.DatasetConfig`, checked
when it was made; the checks of the loose values here are the config's own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from dsbench.config import DatasetConfig, check_seed, check_subset, check_val_fraction
from dsbench.data.archives import check_arrays, load_archives
from dsbench.data.fetch import ensure_archives
from dsbench.data.registry import Arrays, DatasetInfo, get_info
from dsbench.errors import DsbenchError

SYNTHETIC_SIZES = (50_000, 10_000)  # training and test images of the synthetic source (CIFAR's)


@dataclass
class Splits:
    """Train / validation / test arrays: images NHWC, labels (N,) uint8.

    Images are uint8 as loaded; `dsbench.data.preprocess.springenberg_preprocess` returns a copy
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


CONTEXTS = ("training", "validation", "test")  # MLflow's names for a run's input datasets


@dataclass(frozen=True)
class SplitRecord:
    """One split as a run used it, exactly: what it is, and a digest of its data."""

    context: str  # one of CONTEXTS
    examples: int
    # 16 hex digits of SHA-256 over `description` and the split's arrays (images as trained,
    # labels): two runs with the same digest saw the same examples in the same order.
    digest: str
    description: dict[str, Any]


def split_records(splits: Splits, dataset: DatasetConfig) -> list[SplitRecord]:
    """The training, validation and test splits of a run: the official archives (their
    md5s), the source, the seeded split and subsets, the preprocessing, the sizes."""
    common = {
        "dataset": splits.info.name,
        "source": splits.source,
        # the official files the examples come from (TFDS prepares from the same ones)
        "archives_md5": None
        if splits.source == "synthetic"
        else {name: md5 for name, md5 in splits.info.files.values()},
        "val_fraction": dataset.val_fraction,
        "split_seed": dataset.split_seed,
        "train_subset": dataset.train_subset,
        "test_subset": dataset.test_subset,
        "preprocess": dataset.preprocess,
    }
    arrays = (
        (splits.x_train, splits.y_train),
        (splits.x_val, splits.y_val),
        (splits.x_test, splits.y_test),
    )
    records = []
    for context, (x, y) in zip(CONTEXTS, arrays, strict=True):
        description = {
            **common,
            "split": context,
            "examples": len(x),
            "image": f"{'×'.join(map(str, x.shape[1:]))} {x.dtype}",
        }
        digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode())
        digest.update(np.ascontiguousarray(x).data)
        digest.update(np.ascontiguousarray(y).data)
        records.append(SplitRecord(context, len(x), digest.hexdigest()[:16], description))
    return records


def split_train_val(
    x: np.ndarray, y: np.ndarray, val_fraction: float, split_seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded split of a training set into (x_train, y_train, x_val, y_val).

    The first round(val_fraction * N) indices of `default_rng(split_seed).permutation(N)` are
    the validation set, the rest the training set (both kept in their original order).
    val_fraction 0.0 gives an empty validation set.
    """
    check_val_fraction(val_fraction)
    check_seed(split_seed)
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
    check_subset(k, what)
    if k is None:
        return x, y
    if k > len(x):
        raise DsbenchError(
            f"{what}={k} is larger than the {len(x)} examples available: "
            f"use at most {len(x)}, or null for all"
        )
    idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:k])
    return x[idx], y[idx]


def load_splits(dataset: DatasetConfig) -> Splits:
    """Load `dataset.name` from `dataset.source` ("tfds", "archive" or "synthetic") and split it.

    - "archive": the official files in `archive_dir`, md5-checked (unless `verify_md5` is
      False, see `load_archives`), read by dsbench.
    - "tfds": TFDS prepares the dataset in `tfds_data_dir` offline, using the same official
      files from `archive_dir` as its manual dir (TFDS checks their checksums itself, always:
      `verify_md5` does not apply). Once prepared, the archives are no longer needed.

    Archives that `archive_dir` lacks (and that a source needs) are fetched first, from `url`
    or the official location (`dsbench.data.fetch`), before TensorFlow is imported.
    - "synthetic": random uint8 images of the dataset's shape and random labels
      (`synthetic_arrays`): speed measurements without the data (`dsbench.tools.bench`).

    The validation set is a seeded split of the training set (see `split_train_val`); then
    `train_subset` limits what is left for training and `test_subset` the test set (seeded
    subsets, see `take_subset`). The test set is otherwise untouched.

    Both sources hold the same examples, but TFDS stores them in another order, so the same
    seed picks *different* validation examples on the two paths. That is expected: compare
    results within one source.
    """
    info = get_info(dataset.name)  # its values were checked when `dataset` was made
    source, archive_dir, url = dataset.source, dataset.archive_dir, dataset.url
    if source == "archive":
        ensure_archives(info, archive_dir, url)
        x_train, y_train, x_test, y_test = load_archives(info, archive_dir, dataset.verify_md5)
    elif source == "synthetic":
        x_train, y_train, x_test, y_test = synthetic_arrays(info, dataset.split_seed)
    else:
        tfds_data_dir = dataset.tfds_data_dir
        if not prepared_anywhere(tfds_data_dir, info.tfds_name):  # TFDS will need the files
            ensure_archives(info, archive_dir, url)
        from dsbench.data.tfds import load_tfds  # imports tensorflow: only on this path

        x_train, y_train, x_test, y_test = load_tfds(
            info.tfds_name, tfds_data_dir, archive_dir, url
        )
        check_arrays(info, f"TFDS data in {tfds_data_dir}", x_train, y_train, x_test, y_test)

    seed = dataset.split_seed
    x_train, y_train, x_val, y_val = split_train_val(x_train, y_train, dataset.val_fraction, seed)
    # Seeds derived from split_seed, distinct from the validation split's stream.
    x_train, y_train = take_subset(
        x_train, y_train, dataset.train_subset, _sub_seed(seed, 1), "train_subset"
    )
    x_test, y_test = take_subset(
        x_test, y_test, dataset.test_subset, _sub_seed(seed, 2), "test_subset"
    )
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, info=info, source=source)


def prepared_anywhere(tfds_data_dir: str | PathLike[str], tfds_name: str) -> bool:
    """Some version of `tfds_name` is prepared in `tfds_data_dir` (TFDS's layout:
    <data_dir>/<name>/<version>/dataset_info.json), found without importing TFDS: when none
    is, the archives are fetched and checked before TensorFlow starts."""
    found = Path(tfds_data_dir).expanduser().glob(f"{tfds_name}/*/dataset_info.json")
    return any(not p.parent.name.startswith("incomplete.") for p in found)  # not half-done


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


def check_sizes(info: DatasetInfo, dataset: DatasetConfig) -> None:
    """Subsets that the dataset can fill, checked from its known sizes before loading it."""
    val_fraction = dataset.val_fraction
    train_subset, test_subset = dataset.train_subset, dataset.test_subset
    n_train, n_test = SYNTHETIC_SIZES if dataset.source == "synthetic" else info.sizes
    left = n_train - round(val_fraction * n_train)
    if train_subset is not None and train_subset > left:
        raise DsbenchError(
            f"dataset.train_subset={train_subset} is larger than the {left} {info.name} "
            f"training examples left beside the validation set (val_fraction={val_fraction}): "
            f"use at most {left}, or null for all"
        )
    if test_subset is not None and test_subset > n_test:
        raise DsbenchError(
            f"dataset.test_subset={test_subset} is larger than the {n_test} {info.name} test "
            f"examples: use at most {n_test}, or null for all"
        )
