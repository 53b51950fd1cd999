"""Small CIFAR-10 / CIFAR-100 archives in the exact official *binary* layout, for tests.

Same archive and member names, same record format (label byte(s), then the 1,024 red,
1,024 green and 1,024 blue bytes of a row-major 32×32 image), same label-name text files;
only the number of records differs (and so the md5: load them with `verify_md5=False`).
Pixels are deterministic random bytes; labels cycle through every class before being
shuffled, so every class is present whenever there are at least as many records as classes.

The layout is written out here independently of `dsbench.cifar`, so that the reader is
tested against the format, not against itself.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_DIR = "cifar-10-batches-bin/"
CIFAR10_TRAIN = tuple(f"{CIFAR10_DIR}data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = f"{CIFAR10_DIR}test_batch.bin"
CIFAR10_META = f"{CIFAR10_DIR}batches.meta.txt"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


CIFAR10_NAMES = _words("airplane automobile bird cat deer dog frog horse ship truck")

CIFAR100_ARCHIVE = "cifar-100-binary.tar.gz"
CIFAR100_DIR = "cifar-100-binary/"
CIFAR100_TRAIN = f"{CIFAR100_DIR}train.bin"
CIFAR100_TEST = f"{CIFAR100_DIR}test.bin"
CIFAR100_COARSE_META = f"{CIFAR100_DIR}coarse_label_names.txt"
CIFAR100_FINE_META = f"{CIFAR100_DIR}fine_label_names.txt"
CIFAR100_COARSE_NAMES = _words(
    """aquatic_mammals fish flowers food_containers fruit_and_vegetables
    household_electrical_devices household_furniture insects large_carnivores
    large_man-made_outdoor_things large_natural_outdoor_scenes large_omnivores_and_herbivores
    medium_mammals non-insect_invertebrates people reptiles small_mammals trees vehicles_1
    vehicles_2"""
)
CIFAR100_FINE_NAMES = _words(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
    crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house
    kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle
    mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree
    plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew
    skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank
    telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf
    woman worm"""
)
assert len(CIFAR100_COARSE_NAMES) == 20 and len(CIFAR100_FINE_NAMES) == 100


@dataclass
class CifarData:
    """What a generated archive holds: the members' bytes and the arrays a reader must give.

    Images NHWC uint8, labels uint8 (fine labels for CIFAR-100); train batches in order.
    """

    members: dict[str, bytes]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def records(images: np.ndarray, *labels: np.ndarray) -> bytes:
    """Official binary records: the label byte(s), then the R, G and B planes (row-major).

    `images` is NHWC uint8 (N, 32, 32, 3); each of `labels` is (N,) and becomes one byte per
    record, in the order given (CIFAR-100: coarse, then fine).
    """
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3), images.shape
    out = bytearray()
    for i, image in enumerate(images):
        out += bytes(int(label[i]) for label in labels)
        for channel in range(3):  # 1024 R, then 1024 G, then 1024 B
            out += np.ascontiguousarray(image[:, :, channel]).tobytes()  # row-major 32×32
    return bytes(out)


def names_txt(names: tuple[str, ...] | list[str]) -> bytes:
    """A label-names member: one name a line, then a blank line (as in the official files)."""
    return ("\n".join(names) + "\n\n").encode("ascii")


def write_tar_gz(path: Path, members: Mapping[str, bytes]) -> Path:
    """A .tar.gz holding `members` (name -> bytes) in the given order; byte-reproducible.

    Like the official archives, the folder of the members gets its own directory entry first.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for folder in dict.fromkeys(n.split("/")[0] + "/" for n in members if "/" in n):
            info = tarfile.TarInfo(folder.rstrip("/"))
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return path


def _images_labels(rng: np.random.Generator, n: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.permutation(np.arange(n) % classes).astype(np.uint8)
    return images, labels


def make_cifar10(per_batch: int = 20, n_test: int = 20, seed: int = 0) -> CifarData:
    """CIFAR-10 binary members with `per_batch` records in each of the 5 data batches."""
    rng = np.random.default_rng(seed)
    members: dict[str, bytes] = {}
    xs, ys = [], []
    for name in CIFAR10_TRAIN:
        x, y = _images_labels(rng, per_batch, 10)
        members[name] = records(x, y)
        xs.append(x)
        ys.append(y)
    x_test, y_test = _images_labels(rng, n_test, 10)
    members[CIFAR10_TEST] = records(x_test, y_test)
    members[CIFAR10_META] = names_txt(CIFAR10_NAMES)
    return CifarData(members, np.concatenate(xs), np.concatenate(ys), x_test, y_test)


def coarse_of(fine: np.ndarray) -> np.ndarray:
    """A fixed fine -> coarse map for generated data (not the official one; 5 fine each)."""
    return (fine % 20).astype(np.uint8)


def make_cifar100(n_train: int = 200, n_test: int = 100, seed: int = 0) -> CifarData:
    """CIFAR-100 binary members (records: coarse byte, fine byte, image)."""
    rng = np.random.default_rng(seed)
    x_train, y_train = _images_labels(rng, n_train, 100)
    x_test, y_test = _images_labels(rng, n_test, 100)
    members = {
        CIFAR100_TRAIN: records(x_train, coarse_of(y_train), y_train),
        CIFAR100_TEST: records(x_test, coarse_of(y_test), y_test),
        CIFAR100_COARSE_META: names_txt(CIFAR100_COARSE_NAMES),
        CIFAR100_FINE_META: names_txt(CIFAR100_FINE_NAMES),
    }
    return CifarData(members, x_train, y_train, x_test, y_test)


def write_cifar10_archive(folder: Path, **kwargs: int) -> Path:
    """Write `folder/cifar-10-binary.tar.gz` (see `make_cifar10` for the arguments)."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_tar_gz(folder / CIFAR10_ARCHIVE, make_cifar10(**kwargs).members)


def write_cifar100_archive(folder: Path, **kwargs: int) -> Path:
    """Write `folder/cifar-100-binary.tar.gz` (see `make_cifar100` for the arguments)."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_tar_gz(folder / CIFAR100_ARCHIVE, make_cifar100(**kwargs).members)
