"""Bad input: one clear line on stderr, exit 2, and nothing written to the store.

Most config cases compose in process (Hydra's compose API, then the checks the training app
runs before anything is loaded); a few run the real CLI for the exit-2, one-line contract.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mlflow
import pytest
from helpers import NO_TF, TINY, all_runs, dsbench, store_uri
from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from mlflow.entities import ViewType
from omegaconf.errors import OmegaConfBaseException

from dsbench import cli, config
from dsbench.data.idx import read_idx_gz, write_idx_gz
from dsbench.errors import DsbenchError
from dsbench.training.job import make_job

CASES = {
    "unknown dataset": (
        ["dataset=cifar7"],
        "unknown dataset 'cifar7' (did you mean cifar10 or cifar100?); choose one of: cifar10, "
        "cifar100, fashion_mnist, mnist",
    ),
    "unknown model": (
        ["model=resnet18"],
        "unknown model 'resnet18' (did you mean resnet20?); choose one of: airbench, convnet",
    ),
    "unknown downsample": (["downsample=median"], "unknown downsample 'median'; choose one of"),
    "unknown head": (["head=mlp"], "unknown head 'mlp'; choose one of: allconv, flatten, gap, "),
    "lr zero": (["trainer.lr=0"], "trainer.lr must be > 0, got 0"),
    "lr negative": (["trainer.lr=-0.1"], "trainer.lr must be > 0"),
    "epochs zero": (["trainer.epochs=0"], "trainer.epochs must be >= 1, got 0"),
    "batch zero": (["trainer.batch_size=0"], "trainer.batch_size must be > 0"),
    "dropout one": (["head.dropout=1.0"], "head.dropout must be in [0, 1), got 1.0"),
    "dropout negative": (["model.slot_dropout=-0.1"], "model.slot_dropout must be in [0, 1)"),
    "epochs negative": (["trainer.epochs=-3"], "trainer.epochs must be >= 1, got -3"),
    "batch negative": (["trainer.batch_size=-8"], "trainer.batch_size must be > 0"),
    "unknown key": (["trainer.lrr=0.1"], "unknown key 'trainer.lrr' (did you mean trainer.lr?)"),
    # A typo in a group or a key: the closest names, never Hydra's "use +key to append".
    "typo in a group": (
        ["downsmaple=avg"],
        "unknown key 'downsmaple' (did you mean downsample?); the keys: dataset, model, ",
    ),
    "typo in a key": (
        ["trainer.epoch=1"],
        "unknown key 'trainer.epoch' (did you mean trainer.epochs?)",
    ),
    "study without its s": (
        ["experiment=mnist_downsampling"],
        "unknown key 'experiment' (did you mean experiments?)",
    ),
    "typo in an option": (
        ["downsample=avgg"],
        "unknown downsample 'avgg' (did you mean avg?); choose one of: aps, avg, blur,",
    ),
    "wrong type": (["trainer.epochs=many"], "could not be converted to Integer"),
    "unknown backend": (["trainer.backend=torch"], "unknown trainer.backend 'torch'"),
    "unknown precision": (["trainer.precision=fp8"], "unknown trainer.precision 'fp8'"),
    "device loop on tensorflow": (
        ["trainer.loop=device"],
        "trainer.loop=device runs on the JAX backend, got trainer.backend=tensorflow",
    ),
    "gpu precision on cpu": (
        ["trainer.precision=mixed_float16"],
        "trainer.precision=mixed_float16 needs a GPU; this machine has cpu:0: use float32 or",
    ),
    "below 1x1": (
        ["downsample.window=13", "downsample.stride=13"],
        "layer block2_conv1 (3×3, stride 1, valid) would shrink 2×2 to 0×0",
    ),
    "train subset beyond the data": (
        ["dataset.train_subset=54001"],
        "dataset.train_subset=54001 is larger than the 54000 mnist training examples left "
        "beside the validation set (val_fraction=0.1): use at most 54000, or null for all",
    ),
    "test subset beyond the data": (
        ["dataset.test_subset=10001"],
        "dataset.test_subset=10001 is larger than the 10000 mnist test examples",
    ),
    "translation beyond the image": (
        ["trainer.augment_translate=28"],
        "trainer.augment_translate=28 px would move the 28×28 mnist images out of view: "
        "use at most 27",
    ),
    "shift beyond the image": (["evaluation.shifts=[1,30]"], "evaluation.shifts=[1, 30] px"),
    "consistency beyond the image": (
        ["evaluation.consistency_shift=28"],
        "evaluation.consistency_shift=28 px would move",
    ),
    "padding that would crop": (
        ["model.pad_to=20"],
        "model.pad_to=20 is smaller than the 28×28 mnist images (it zero-pads, never crops)",
    ),
    "url that is no URL": (
        ["dataset.url=/srv/mirror/mnist"],
        "dataset.url='/srv/mirror/mnist' is not an http:// or https:// URL",
    ),
    "unwritable store": (
        ["tracking.uri=sqlite:////nonexistent/dir/mlflow.db"],
        "folder /nonexistent/dir does not exist or is not writable",
    ),
}


def _assert_one_line_no_store(out, expected: str, folder: Path, code: int = 2) -> None:
    """Exactly one line on stderr (TensorFlow's start-up lines are kept off it too), the
    exit code, and no store written."""
    assert out.returncode == code, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr[-2000:]
    assert lines[0].startswith("dsbench: error: ")
    assert expected in lines[0] and len(lines[0]) <= 300
    assert not (folder / "mlflow.db").exists()  # nothing half-written


# These run the real CLI: the whole contract (one line, exit 2, no store), for a composition
# error, a schema check, a geometry check and the checks that need Keras or the store.
SUBPROCESS = (
    "unknown dataset",
    "unknown key",
    "lr zero",
    "below 1x1",
    "gpu precision on cpu",
    "unwritable store",
)
IN_PROCESS = [case for case in CASES if case not in SUBPROCESS[-2:]]


def composed_error(overrides: list[str]) -> str:
    """The error line the training app prints for these overrides, composed in process:
    the same composition (`pkg://dsbench.conf`), schema and pre-flight checks."""
    config.register()
    with initialize_config_module(config.CONFIG_PATH.removeprefix("pkg://"), version_base="1.3"):
        try:
            make_job(compose("train", overrides=overrides), store=False)
        except DsbenchError as e:
            return str(e)
        except (HydraException, OmegaConfBaseException) as e:
            return cli.config_error_line(e)
    pytest.fail(f"{overrides} was accepted")


@pytest.mark.parametrize("case", IN_PROCESS)
def test_bad_config_in_process(case: str) -> None:
    overrides, expected = CASES[case]
    assert expected in composed_error(overrides)


@pytest.mark.parametrize("case", SUBPROCESS)
def test_bad_config(case: str, shared_data: Path, tmp_path: Path) -> None:
    overrides, expected = CASES[case]
    uri = f"tracking.uri={store_uri(tmp_path)}"
    data = f"dataset.archive_dir={shared_data / 'mnist'}"
    out = dsbench("train", *TINY, data, uri, *overrides, cwd=tmp_path, probe_tf=True)
    _assert_one_line_no_store(out, expected, tmp_path)
    if case != "gpu precision on cpu":  # the one check that needs Keras
        assert NO_TF in out.stdout  # found before TensorFlow was imported


def test_data_dir_without_archives(tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    out = dsbench(
        "train",
        *TINY,
        f"dataset.archive_dir={empty}",
        f"tracking.uri={store_uri(tmp_path)}",
        cwd=tmp_path,
        probe_tf=True,
    )
    assert NO_TF in out.stdout
    # Not bad input: the files are fetched, and offline (the session's mirror is a closed
    # port) that fails with one line naming them, the URL and the folder; exit 1.
    _assert_one_line_no_store(out, "cannot fetch mnist (4 files) from ", tmp_path, 1)
    assert "from http://127.0.0.1:9/mnist/" in out.stderr
    assert f"put the official files in {empty}" in out.stderr


def test_missing_data_dir(tmp_path: Path) -> None:
    out = dsbench(
        "train",
        *TINY,
        f"dataset.archive_dir={tmp_path / 'absent'}",
        f"tracking.uri={store_uri(tmp_path)}",
        cwd=tmp_path,
    )
    _assert_one_line_no_store(out, f"put the official files in {tmp_path / 'absent'}", tmp_path, 1)


def test_data_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    out = dsbench(
        "train",
        *TINY,
        f"dataset.archive_dir={blocked / 'mnist'}",
        f"tracking.uri={store_uri(tmp_path)}",
        cwd=tmp_path,
    )
    _assert_one_line_no_store(out, "and cannot be written", tmp_path)


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
        probe_tf=True,
    )
    _assert_one_line_no_store(out, f"archive {labels} is corrupt: md5 ", tmp_path)
    assert NO_TF in out.stdout


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


def _mnist_copy(shared_data: Path, tmp_path: Path) -> Path:
    archives = tmp_path / "mnist"
    shutil.copytree(shared_data / "mnist", archives)
    return archives


def _train(archives: Path, tmp_path: Path, *overrides: str):
    return dsbench(
        "train",
        *TINY,
        f"dataset.archive_dir={archives}",
        f"tracking.uri={store_uri(tmp_path)}",
        *overrides,
        cwd=tmp_path,
    )


def test_idx_file_with_wrong_magic_number(shared_data: Path, tmp_path: Path) -> None:
    """Labels where images belong: a well-formed IDX file of the wrong kind."""
    archives = _mnist_copy(shared_data, tmp_path)
    labels = read_idx_gz(archives / "t10k-labels-idx1-ubyte.gz")
    write_idx_gz(archives / "t10k-images-idx3-ubyte.gz", labels)
    out = _train(archives, tmp_path, "dataset.verify_md5=false")
    _assert_one_line_no_store(out, "t10k-images-idx3-ubyte.gz", tmp_path)
    assert "magic" in out.stderr


def test_truncated_idx_archive(shared_data: Path, tmp_path: Path) -> None:
    archives = _mnist_copy(shared_data, tmp_path)
    images = archives / "train-images-idx3-ubyte.gz"
    data = images.read_bytes()
    images.write_bytes(data[: len(data) // 3])
    out = _train(archives, tmp_path, "dataset.verify_md5=false")
    _assert_one_line_no_store(out, "is not a complete gzip file", tmp_path)


def test_backend_that_cannot_be_imported(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JAX missing, as on a machine without it: Python's own way to block an import."""
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['jax'] = None\n")
    monkeypatch.setenv("PYTHONPATH", str(blocker), prepend=os.pathsep)
    out = _train(shared_data / "mnist", tmp_path, "trainer.backend=jax")
    _assert_one_line_no_store(out, "trainer.backend=jax but jax cannot be imported", tmp_path)


@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_resuming_into_a_deleted_experiment(shared_data: Path, tmp_path: Path, sweep: bool):
    uri = store_uri(tmp_path)
    client = mlflow.MlflowClient(tracking_uri=uri)
    client.delete_experiment(client.create_experiment("gone"))
    flags = ["-m", "trainer.seed=0,1"] if sweep else []
    out = dsbench(
        "train",
        *flags,
        *TINY,
        f"dataset.archive_dir={shared_data / 'mnist'}",
        f"tracking.uri={uri}",
        "tracking.experiment=gone",
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("dsbench: error: MLflow experiment 'gone' at ")
    assert "was deleted; restore it (mlflow experiments restore --experiment-id" in last
    assert all_runs(uri, ViewType.ALL) == []  # nothing written, not even a sweep parent
