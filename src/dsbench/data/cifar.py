"""Read the official CIFAR-10 / CIFAR-100 *binary* archives with numpy and `tarfile`.

Nothing is unpickled and nothing is extracted to disk: the wanted members are read from the
.tar.gz into memory and decoded as fixed-size records.

Layouts (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version"):

- `cifar-10-binary.tar.gz`: `cifar-10-batches-bin/data_batch_1.bin` … `data_batch_5.bin`
  (train, 10,000 records each), `test_batch.bin` (10,000), `batches.meta.txt` (10 class
  names, one a line). Record: 1 label byte (0..9), then 3,072 image bytes.
- `cifar-100-binary.tar.gz`: `cifar-100-binary/train.bin` (50,000 records), `test.bin`
  (10,000), `coarse_label_names.txt` (20 names), `fine_label_names.txt` (100 names).
  Record: 1 coarse label byte (0..19), 1 fine label byte (0..99), then 3,072 image bytes.
  dsbench uses the fine labels.
- The 3,072 image bytes are 1,024 red, then 1,024 green, then 1,024 blue values, each plane
  row-major 32×32 (CHW); the reader returns NHWC uint8, as TFDS does.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from dsbench.errors import DsbenchError, one_line

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

IMAGE_SIZE = 32
CHANNELS = 3
IMAGE_BYTES = CHANNELS * IMAGE_SIZE * IMAGE_SIZE  # 3072


@dataclass(frozen=True)
class CifarLayout:
    """Where the records are in one official binary archive, and how they are built."""

    name: str
    archive: str  # official file name of the .tar.gz
    md5: str  # official md5 of the .tar.gz
    prefix: str  # folder inside the tar
    train_members: tuple[str, ...]
    test_members: tuple[str, ...]
    meta_members: tuple[tuple[str, int], ...]  # (label-names file, number of names in it)
    label_bytes: tuple[tuple[str, int], ...]  # each leading label byte: (what, number of classes)
    label_index: int  # which of the label bytes dsbench returns

    @property
    def record_bytes(self) -> int:
        return len(self.label_bytes) + IMAGE_BYTES

    @property
    def num_classes(self) -> int:
        return self.label_bytes[self.label_index][1]

    @property
    def members(self) -> tuple[str, ...]:
        """Full member names (prefix included) that the archive must hold."""
        names = (*self.train_members, *self.test_members, *(m for m, _ in self.meta_members))
        return tuple(self.prefix + m for m in names)


CIFAR10 = CifarLayout(
    name="cifar10",
    archive="cifar-10-binary.tar.gz",
    md5="c32a1d4ab5d03f1284b67883e8d87530",
    prefix="cifar-10-batches-bin/",
    train_members=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    test_members=("test_batch.bin",),
    meta_members=(("batches.meta.txt", 10),),
    label_bytes=(("label", 10),),
    label_index=0,
)

CIFAR100 = CifarLayout(
    name="cifar100",
    archive="cifar-100-binary.tar.gz",
    md5="03b5dce01913d631647c71ecec9e9cb8",
    prefix="cifar-100-binary/",
    train_members=("train.bin",),
    test_members=("test.bin",),
    meta_members=(("coarse_label_names.txt", 20), ("fine_label_names.txt", 100)),
    label_bytes=(("coarse label", 20), ("fine label", 100)),
    label_index=1,
)

_FIX = "re-download the official archive"


def read_cifar_members(path: str | PathLike[str], layout: CifarLayout) -> dict[str, bytes]:
    """The bytes of every member `layout` needs, read from the .tar.gz at `path`.

    Reads the whole gzip stream, trailer included, so a cut-off or corrupted download is
    reported (gzip checks its CRC and length at the end) even when the wanted members come
    first. Raises DsbenchError (one line) for an unreadable archive or a missing member.
    """
    path = Path(path)
    wanted = set(layout.members)
    found: dict[str, bytes] = {}
    try:
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r:") as tar:
            for member in tar:
                if member.name not in wanted:
                    continue
                if not member.isfile():
                    raise DsbenchError(
                        f"{layout.name} archive {path}: member {member.name} is not a regular "
                        f"file: {_FIX}"
                    )
                f = tar.extractfile(member)
                assert f is not None  # regular files always have data
                found[member.name] = f.read()
            # The tar ends before the gzip stream does (record padding): read to the end.
            while gz.read(1 << 20):
                pass
    except DsbenchError:
        raise
    except FileNotFoundError:
        raise DsbenchError(f"{layout.name} archive {path} does not exist: check the path") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        # BadGzipFile (OSError): not gzip; EOFError: cut off; zlib.error / BadGzipFile (CRC):
        # corrupted; TarError: gzip fine but not a tar.
        raise DsbenchError(
            f"{layout.name} archive {path} cannot be read as a .tar.gz ({one_line(e)}): {_FIX}"
        ) from None
    missing = [m for m in layout.members if m not in found]
    if missing:
        raise DsbenchError(
            f"{layout.name} archive {path} lacks {', '.join(missing)}: {_FIX} "
            f"(the binary version, {layout.archive})"
        )
    return found


def decode_records(data: bytes, layout: CifarLayout, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one member's records: images (N, 32, 32, 3) uint8 NHWC, labels (N,) uint8.

    Checks that the size is a whole, non-zero number of records and that every label byte
    is in range. `where` names the member in error messages.
    """
    rec = layout.record_bytes
    if len(data) == 0 or len(data) % rec:
        labels = " + ".join(f"1 {what} byte" for what, _ in layout.label_bytes)
        problem = "is empty" if len(data) == 0 else "is truncated"
        raise DsbenchError(
            f"{where} {problem}: {len(data)} bytes is not a positive multiple of the record "
            f"size {rec} ({labels} + {IMAGE_BYTES} image bytes): {_FIX}"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, rec)
    for column, (what, classes) in enumerate(layout.label_bytes):
        bad = np.flatnonzero(records[:, column] >= classes)
        if bad.size:
            i = int(bad[0])
            raise DsbenchError(
                f"{where}: record {i} has {what} {int(records[i, column])}, expected "
                f"0..{classes - 1} ({bad.size} such records): {_FIX}"
            )
    labels = records[:, layout.label_index].copy()
    planes = records[:, len(layout.label_bytes) :].reshape(-1, CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    images = np.ascontiguousarray(planes.transpose(0, 2, 3, 1))  # CHW planes -> HWC
    return images, labels


def label_names(data: bytes, expected: int, where: str) -> list[str]:
    """Class names from a label-names member (one a line, blank lines ignored)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise DsbenchError(f"{where} is not a text file of class names: {_FIX}") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != expected:
        raise DsbenchError(f"{where} holds {len(names)} class names, expected {expected}: {_FIX}")
    return names


def read_cifar_archive(path: str | PathLike[str], layout: CifarLayout) -> Arrays:
    """(x_train, y_train, x_test, y_test) from an official binary CIFAR archive.

    Images uint8 NHWC (N, 32, 32, 3), labels uint8 (N,) (fine labels for CIFAR-100), in the
    archive's order (train batches 1..5 concatenated for CIFAR-10). Does not check the md5
    of the archive: `dsbench.data.archives.load_archives` does that before calling this.
    """
    path = Path(path)
    members = read_cifar_members(path, layout)
    for meta, count in layout.meta_members:
        name = layout.prefix + meta
        label_names(members[name], count, f"{layout.name} archive {path}: member {name}")

    def decode(member_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        parts = []
        for m in member_names:
            name = layout.prefix + m
            where = f"{layout.name} archive {path}: member {name}"
            parts.append(decode_records(members.pop(name), layout, where))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])

    x_train, y_train = decode(layout.train_members)
    x_test, y_test = decode(layout.test_members)
    return x_train, y_train, x_test, y_test
