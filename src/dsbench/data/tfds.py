"""Load a dataset through tensorflow-datasets, prepared from the official archives.

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

from dsbench.data.fetch import ensure_archives
from dsbench.data.registry import DATASETS
from dsbench.errors import DsbenchError, ExternalError, one_line
from dsbench.quiet import import_quietly

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _import_tfds() -> Any:
    # TFDS imports TensorFlow lazily, at first use: import it here, quietly.
    _, tfds = import_quietly("tensorflow", "tensorflow_datasets")

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


def prepare_tfds(
    name: str,
    data_dir: str | PathLike[str],
    manual_dir: str | PathLike[str],
    url: str | None = None,
) -> None:
    """Prepare TFDS dataset `name` in `data_dir` from the official archives in `manual_dir`.

    Does nothing when `data_dir` already holds the prepared dataset. TFDS itself never
    downloads: archives that `manual_dir` lacks are fetched by `dsbench.data.fetch` (from
    `url` or the official location, md5-checked), then TFDS reads them from there.

    Safe from many processes at once (joblib jobs, several sweeps): TFDS's own first prepare
    is not (all but one fail to rename its `incomplete.*` folder), so they take turns under a
    file lock in `data_dir`; the first prepares, the others find the dataset prepared.
    """
    tfds = _import_tfds()
    if _is_prepared(tfds, name, data_dir):
        return
    folder = Path(data_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DsbenchError(
            f"TFDS data dir {folder} cannot be created ({e.strerror}): "
            "use a writable dataset.tfds_data_dir"
        ) from None
    from filelock import FileLock

    with FileLock(folder / f".dsbench-{name}.lock"):
        if not _is_prepared(tfds, name, data_dir):  # another process may have done it
            _prepare(tfds, name, data_dir, Path(manual_dir).expanduser(), url)


def _is_prepared(tfds: Any, name: str, data_dir: str | PathLike[str]) -> bool:
    builder = _builder(tfds, name, data_dir)  # a new builder: it reads data_dir as it is now
    # is_prepared() logs a warning for a folder that does not exist yet: look first.
    return builder.data_path.exists() and builder.is_prepared()


def _prepare(
    tfds: Any, name: str, data_dir: str | PathLike[str], manual: Path, url: str | None
) -> None:
    builder = _builder(tfds, name, data_dir)
    # The file names TFDS looks for in manual_dir are those of its own checksum file.
    url_infos = builder.url_infos or {}
    wanted = sorted({info.filename for info in url_infos.values() if info.filename})
    if name in DATASETS and DATASETS[name].tfds_name == name:
        ensure_archives(DATASETS[name], manual, url)  # md5-checked, as on the archive path
    fix = f"place the official archives in {manual} or use dataset.source=archive"
    missing = [f for f in wanted if not (manual / f).is_file()]
    if missing:  # a TFDS dataset dsbench has no registry entry (and no URLs) for
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
        # Not the archives' fault (they passed TFDS's checksums): an I/O error, a full disk.
        raise ExternalError(
            f"TFDS could not prepare {name} in {data_dir} from {manual}: {one_line(e)}"
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
        raise ExternalError(
            f"TFDS could not read {name} from {data_dir} ({one_line(e)}): "
            f"delete {data_dir} to prepare it again, or use dataset.source=archive"
        ) from e
    return (
        _images(x_train, name),
        _labels(y_train, name),
        _images(x_test, name),
        _labels(y_test, name),
    )


def load_tfds(
    name: str,
    data_dir: str | PathLike[str],
    manual_dir: str | PathLike[str],
    url: str | None = None,
) -> Arrays:
    """Prepare (from the archives in `manual_dir`, see `prepare_tfds`) if needed, then read
    TFDS dataset `name`.

    Returns (x_train, y_train, x_test, y_test): images uint8 NHWC, labels uint8 (N,).
    TFDS stores examples in its own order, not the archive's.
    """
    prepare_tfds(name, data_dir, manual_dir, url)
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
