"""Load a dataset through tensorflow-datasets, offline, from the official archives.

The only module of the data stage that imports tensorflow / tensorflow_datasets; it does so
inside the functions so that importing it stays cheap.

TFDS uses a file from `manual_dir` instead of downloading it when the file there has the
official name, and it checks its size and sha256 against the checksums shipped with TFDS.
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from dsbench.errors import DsbenchError, one_line

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _import_tfds() -> Any:
    # Must be set before tensorflow is first imported to silence its C++ log lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    return tfds


def _builder(tfds: Any, name: str, data_dir: str | PathLike[str]) -> Any:
    try:
        # expanduser: configs use "~/tensorflow_datasets".
        return tfds.builder(name, data_dir=os.fspath(Path(data_dir).expanduser()))
    except Exception as e:  # DatasetNotFoundError and friends: report, do not dump a traceback
        raise DsbenchError(
            f"TFDS cannot build dataset {name!r} ({one_line(e)}): "
            "use a dataset name that TFDS 4.9.10 knows, or dataset.source=archive"
        ) from e


def prepare_tfds(name: str, data_dir: str | PathLike[str], manual_dir: str | PathLike[str]) -> None:
    """Prepare TFDS dataset `name` in `data_dir` from the official archives in `manual_dir`.

    Does nothing when `data_dir` already holds the prepared dataset. Never downloads: the
    archives must be in `manual_dir` (checked first, because without them TFDS would try the
    network, which hangs or fails slowly on offline machines).
    """
    tfds = _import_tfds()
    builder = _builder(tfds, name, data_dir)
    # is_prepared() logs a warning for a folder that does not exist yet: look first.
    if builder.data_path.exists() and builder.is_prepared():
        return

    manual = Path(manual_dir).expanduser()
    fix = f"place the official archives in {manual} or use dataset.source=archive"
    # The file names TFDS looks for in manual_dir are those of its own checksum file.
    url_infos = builder.url_infos or {}
    wanted = sorted({info.filename for info in url_infos.values() if info.filename})
    if not manual.is_dir():
        raise DsbenchError(
            f"TFDS manual dir {manual} does not exist; {name} needs {', '.join(wanted)}: {fix}"
        )
    missing = [f for f in wanted if not (manual / f).is_file()]
    if missing:
        raise DsbenchError(
            f"TFDS manual dir {manual} lacks {', '.join(missing)} for {name} "
            f"(TFDS would try to download them; dsbench stays offline): {fix}"
        )

    config = tfds.download.DownloadConfig(
        manual_dir=os.fspath(manual),
        # Never fetch an already-prepared copy from gs://tfds-data (a network call, and data
        # that did not come from our archives). TFDS 4.9.10 has GCS off by default; explicit
        # so that a setting or version that turns it on changes nothing here.
        try_download_gcs=False,
        # register_checksums stays False: True would rewrite TFDS's installed checksum files.
    )
    try:
        builder.download_and_prepare(download_config=config)
    except Exception as e:  # TFDS raises many types (checksum, IO, parse): one line for all
        # NonMatchingChecksumError is not exported by tfds.download in 4.9.10: match by name.
        # Its first line names the file: "Artifact <url>, downloaded to <path>, has wrong
        # checksum:"; the rest (two long UrlInfo reprs and a link) is too long for one line.
        if type(e).__name__ == "NonMatchingChecksumError":
            first = str(e).splitlines()[0].rstrip(": ")
            raise DsbenchError(
                f"TFDS could not prepare {name}: {first} (size or sha256 differs from the "
                f"checksums TFDS ships): {fix} (official files, unmodified)"
            ) from e
        raise DsbenchError(
            f"TFDS could not prepare {name} in {data_dir} from {manual} ({one_line(e)}): "
            f"{fix} (official files, unmodified)"
        ) from e


def read_tfds(name: str, data_dir: str | PathLike[str]) -> Arrays:
    """Read a prepared TFDS dataset as uint8 arrays: images (N, h, w, c), labels (N,)."""
    tfds = _import_tfds()
    builder = _builder(tfds, name, data_dir)
    try:
        train, test = builder.as_dataset(split=["train", "test"], batch_size=-1, as_supervised=True)
        x_train, y_train = tfds.as_numpy(train)
        x_test, y_test = tfds.as_numpy(test)
    except Exception as e:
        raise DsbenchError(
            f"TFDS could not read {name} from {data_dir} ({one_line(e)}): "
            f"delete {data_dir} to prepare it again, or use dataset.source=archive"
        ) from e
    return (
        _images(x_train, name),
        _labels(y_train, name),
        _images(x_test, name),
        _labels(y_test, name),
    )


def load_tfds(name: str, data_dir: str | PathLike[str], manual_dir: str | PathLike[str]) -> Arrays:
    """Prepare (offline, from `manual_dir`) if needed, then read TFDS dataset `name`.

    Returns (x_train, y_train, x_test, y_test): images uint8 NHWC, labels uint8 (N,).
    TFDS stores examples in its own order, not the archive's.
    """
    prepare_tfds(name, data_dir, manual_dir)
    return read_tfds(name, data_dir)


def _images(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype != np.uint8 or x.ndim != 4:
        raise DsbenchError(
            f"TFDS {name} gave images {x.dtype} {x.shape}, expected uint8 (N, h, w, c): "
            "use dataset.source=archive"
        )
    return x


def _labels(y: np.ndarray, name: str) -> np.ndarray:
    # TFDS gives int64 labels; dsbench keeps uint8 on both paths.
    if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() > 255)):
        raise DsbenchError(
            f"TFDS {name} gave labels {y.dtype} {y.shape} outside uint8 (N,): "
            "use dataset.source=archive"
        )
    return y.astype(np.uint8)
