"""Read and write MNIST-style IDX files (gzip-compressed), with numpy only.

Format (big-endian): images = magic 2051, count, rows, cols, then count*rows*cols uint8 pixels;
labels = magic 2049, count, then count uint8 labels. Never imports tensorflow: the archive
path of the data layer must work without it.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from os import PathLike
from pathlib import Path

import numpy as np

from dsbench.errors import DsbenchError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
_MAGIC_NAMES = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}
_NDIM = {IMAGES_MAGIC: 3, LABELS_MAGIC: 1}


def read_idx_gz(path: str | PathLike[str], expected_magic: int | None = None) -> np.ndarray:
    """Read a gzip-compressed IDX file into a uint8 array: (N, rows, cols) or (N,).

    Validates the magic number (and that it is `expected_magic` when given), the dimensions
    and that the payload length is exactly what the header announces.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DsbenchError(f"IDX file {path} does not exist: check the path") from None
    except (OSError, EOFError, zlib.error) as e:
        # gzip raises BadGzipFile (an OSError) or EOFError for cut-off downloads.
        raise DsbenchError(
            f"IDX file {path} is not a complete gzip file ({e}): re-download the official file"
        ) from None

    if len(data) < 4:
        raise DsbenchError(
            f"IDX file {path} is truncated: {len(data)} bytes, too short for a header: "
            "re-download the official file"
        )
    (magic,) = struct.unpack(">i", data[:4])
    if magic not in _NDIM:
        raise DsbenchError(
            f"IDX file {path} has magic number {magic}, expected {IMAGES_MAGIC} (images) "
            f"or {LABELS_MAGIC} (labels): not an MNIST-style IDX file"
        )
    if expected_magic is not None and magic != expected_magic:
        raise DsbenchError(
            f"IDX file {path} has magic number {magic} ({_MAGIC_NAMES[magic]}), expected "
            f"{expected_magic} ({_MAGIC_NAMES.get(expected_magic, '?')}): "
            "check that the file names are not swapped"
        )

    ndim = _NDIM[magic]
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DsbenchError(
            f"IDX file {path} is truncated: header needs {header_len} bytes, found {len(data)}: "
            "re-download the official file"
        )
    dims = struct.unpack(f">{ndim}i", data[4:header_len])
    if any(d < 0 for d in dims) or any(d == 0 for d in dims[1:]):
        raise DsbenchError(
            f"IDX file {path} has invalid dimensions {dims} in its header: "
            "count must be >= 0 and rows, cols > 0; re-download the official file"
        )

    expected = int(np.prod(dims, dtype=np.int64))
    found = len(data) - header_len
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise DsbenchError(
            f"IDX file {path} is {what}: header {dims} needs {expected} payload bytes, "
            f"found {found}: re-download the official file"
        )
    # bytearray so the returned array is writable (frombuffer on bytes is read-only).
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=header_len).reshape(dims)


def write_idx_gz(
    path: str | PathLike[str],
    array: np.ndarray,
    *,
    magic: int | None = None,
    count: int | None = None,
) -> None:
    """Write a uint8 array of shape (N,) or (N, rows, cols) as a gzip-compressed IDX file.

    `magic` and `count` override the header values; tests use them to produce files with a
    wrong magic number or a header announcing more items than the payload holds (truncated).
    """
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise DsbenchError(
            f"write_idx_gz needs a uint8 array of shape (N,) or (N, rows, cols), "
            f"got {array.dtype} {array.shape}"
        )
    default_magic = LABELS_MAGIC if array.ndim == 1 else IMAGES_MAGIC
    dims = list(array.shape)
    if count is not None:
        dims[0] = count
    header = struct.pack(f">i{len(dims)}i", default_magic if magic is None else magic, *dims)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array).tobytes())
