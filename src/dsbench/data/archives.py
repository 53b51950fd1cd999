"""The official archives of a dataset in a folder: present, md5-checked, read and checked.

numpy only: the archive path of the data stage works without TensorFlow.
"""

from __future__ import annotations

import hashlib
from os import PathLike
from pathlib import Path

import numpy as np

from dsbench.data.registry import Arrays, DatasetInfo
from dsbench.errors import DsbenchError


def md5_of(path: str | PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex md5 of a file, read in chunks so large archives never sit in memory twice."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


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
                f"{info.name} archive {path} is corrupt: md5 {actual}, expected {official_md5}: "
                "delete it to fetch it again (a re-packed archive: dataset.verify_md5=false)"
            )
        paths[part] = path

    x_train, y_train, x_test, y_test = info.reader(paths)
    check_arrays(info, f"archives in {archive_dir}", x_train, y_train, x_test, y_test)
    return x_train, y_train, x_test, y_test


def check_arrays(info: DatasetInfo, where: str, *arrays: np.ndarray) -> None:
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
