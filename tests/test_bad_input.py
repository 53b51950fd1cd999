"""Bad input: one clear line on stderr, exit 2, and nothing written to the store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import TINY, dsbench, store_uri

CASES = {
    "unknown dataset": (
        ["dataset=cifar7"],
        "unknown dataset 'cifar7'; choose one of: cifar10, cifar100, fashion_mnist, mnist",
    ),
    "unknown model": (["model=resnet"], "unknown model 'resnet'; choose one of: convnet"),
    "unknown downsample": (["downsample=median"], "unknown downsample 'median'; choose one of"),
    "unknown head": (["head=mlp"], "unknown head 'mlp'; choose one of: allconv, flatten, gap"),
    "lr zero": (["trainer.lr=0"], "trainer.lr must be > 0, got 0"),
    "lr negative": (["trainer.lr=-0.1"], "trainer.lr must be > 0"),
    "epochs zero": (["trainer.epochs=0"], "trainer.epochs must be >= 1, got 0"),
    "batch zero": (["trainer.batch_size=0"], "trainer.batch_size must be > 0"),
    "dropout one": (["head.dropout=1.0"], "head.dropout must be in [0, 1), got 1.0"),
    "unknown key": (["trainer.lrr=0.1"], "Could not override 'trainer.lrr'"),
    "wrong type": (["trainer.epochs=many"], "could not be converted to Integer"),
    "unknown backend": (["trainer.backend=torch"], "unknown trainer.backend 'torch'"),
    "unknown precision": (["trainer.precision=fp8"], "unknown trainer.precision 'fp8'"),
    "below 1x1": (
        ["downsample.window=13", "downsample.stride=13"],
        "layer block2_conv1 (3×3, stride 1, valid) would shrink 2×2 to 0×0",
    ),
    "unwritable store": (
        ["tracking.uri=sqlite:////nonexistent/dir/mlflow.db"],
        "folder /nonexistent/dir does not exist or is not writable",
    ),
}


def _assert_one_line_no_store(out, expected: str, folder: Path) -> None:
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr[-2000:]
    assert lines[0].startswith("dsbench: error: ")
    assert expected in lines[0]
    assert not (folder / "mlflow.db").exists()  # nothing half-written


@pytest.mark.parametrize("case", CASES)
def test_bad_config(case: str, shared_data: Path, tmp_path: Path) -> None:
    overrides, expected = CASES[case]
    uri = f"tracking.uri={store_uri(tmp_path)}"
    data = f"dataset.archive_dir={shared_data / 'mnist'}"
    out = dsbench("train", *TINY, data, uri, *overrides, cwd=tmp_path)
    _assert_one_line_no_store(out, expected, tmp_path)


def test_data_dir_without_archives(tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    out = dsbench(
        "train",
        *TINY,
        f"dataset.archive_dir={empty}",
        f"tracking.uri={store_uri(tmp_path)}",
        cwd=tmp_path,
    )
    _assert_one_line_no_store(out, "train-images-idx3-ubyte.gz", tmp_path)


def test_missing_data_dir(tmp_path: Path) -> None:
    out = dsbench(
        "train",
        *TINY,
        f"dataset.archive_dir={tmp_path / 'absent'}",
        f"tracking.uri={store_uri(tmp_path)}",
        cwd=tmp_path,
    )
    _assert_one_line_no_store(out, str(tmp_path / "absent"), tmp_path)


def test_corrupted_archive(shared_data: Path, tmp_path: Path) -> None:
    archives = tmp_path / "mnist"
    shutil.copytree(shared_data / "mnist", archives)
    labels = archives / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(labels.read_bytes())
    data[100] ^= 0xFF
    labels.write_bytes(bytes(data))
    out = dsbench(
        "train",
        *TINY,
        f"dataset.archive_dir={archives}",
        f"tracking.uri={store_uri(tmp_path)}",
        cwd=tmp_path,
    )
    _assert_one_line_no_store(out, "md5", tmp_path)


def test_truncated_cifar_archive(cifar10_archive_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "cifar10" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    data = (cifar10_archive_dir / archive.name).read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    out = dsbench(
        "train",
        *TINY,
        "dataset=cifar10",
        "model=springenberg_a",
        "dataset.verify_md5=false",
        f"dataset.archive_dir={archive.parent}",
        f"tracking.uri={store_uri(tmp_path)}",
        cwd=tmp_path,
    )
    _assert_one_line_no_store(out, "cifar-10-binary.tar.gz", tmp_path)


def test_cifar_archive_with_wrong_md5(cifar10_archive_dir: Path, tmp_path: Path) -> None:
    out = dsbench(
        "train",
        *TINY,
        "dataset=cifar10",
        "model=springenberg_a",
        f"dataset.archive_dir={cifar10_archive_dir}",
        f"tracking.uri={store_uri(tmp_path)}",
        cwd=tmp_path,
    )
    _assert_one_line_no_store(out, "md5", tmp_path)
