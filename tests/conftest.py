"""Shared fixtures. Real data comes from $DSBENCH_DATA, else ../shared/data beside the checkout
(never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import train

ROOT = Path(__file__).resolve().parents[1]
DATA_ENV = "DSBENCH_DATA"  # what the configs read too (dataset.archive_dir); the Makefile sets it
SHARED_DATA = ROOT.parent / "shared" / "data"  # this project's machines keep the data there


def data_root() -> Path:
    """The folder holding <dataset>/ with the official archives: $DSBENCH_DATA if set
    (relative to the folder pytest runs in), else ../shared/data beside the checkout."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser().resolve() if value else SHARED_DATA


# Nothing in a test reaches beyond 127.0.0.1: archives a test lacks are "fetched" from a port
# where nothing listens (refused at once), unless the test points at its own mirror.
os.environ["DSBENCH_MIRROR"] = "http://127.0.0.1:9"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"  # never via a proxy

# The fixtures that train or prepare TFDS (here, test_train.py's `mnist_epoch` and
# test_springenberg2015.py's `twelve_model_store`): a test using one (directly or through
# another fixture) is slow, and must say so, so that `make test-fast` trains nothing.
TRAINING_FIXTURES = {
    "mnist_tfds",
    "study_store",
    "mnist_epoch",
    "mnist_epoch_trained",
    "twelve_model_store",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("slow") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            f"these tests train (through {', '.join(sorted(TRAINING_FIXTURES))}) but are not "
            f"marked @pytest.mark.slow: {', '.join(unmarked)}"
        )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Where the real archives are looked for (`data_root`); a dataset may be missing there."""
    return data_root()


@pytest.fixture(scope="session")
def shared_data(data_dir: Path) -> Path:
    """The data folder, which holds the real MNIST archives (else the test fails, saying where
    it looked and how to point it elsewhere)."""
    if not (data_dir / "mnist").is_dir():
        found = f"from ${DATA_ENV}" if os.environ.get(DATA_ENV) else f"${DATA_ENV} is not set"
        pytest.fail(
            f"real MNIST archives expected in {data_dir / 'mnist'} ({found}): set {DATA_ENV} to "
            "a folder holding mnist/, or fetch them there with `make data DATASETS=mnist`",
            pytrace=False,
        )
    return data_dir


@pytest.fixture(scope="session")
def mnist_manual_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tmp dir holding symlinks to the four real MNIST archives (TFDS's manual dir)."""
    manual = tmp_path_factory.mktemp("mnist_manual")
    for archive in sorted((shared_data / "mnist").glob("*.gz")):
        (manual / archive.name).symlink_to(archive)
    return manual


@pytest.fixture(scope="session")
def mnist_tfds(mnist_manual_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TFDS data dir with MNIST prepared offline from the real archives (~45 s, once a session).

    Use with `mnist_manual_dir` as manual dir; later loads reuse the prepared data.
    """
    from dsbench.data.tfds import prepare_tfds

    data_dir = tmp_path_factory.mktemp("tfds_data")
    prepare_tfds("mnist", data_dir, mnist_manual_dir)
    return data_dir


@pytest.fixture(scope="session")
def cifar10_archive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tmp dir holding a generated `cifar-10-binary.tar.gz` in the official binary layout.

    5 data batches of 20 records and a test batch of 20 (`cifar_fixtures.make_cifar10()`
    gives the arrays it holds). Not the official md5: load it with `verify_md5=False`.
    """
    from cifar_fixtures import write_cifar10_archive

    folder = tmp_path_factory.mktemp("cifar10_archive")
    write_cifar10_archive(folder)
    return folder


@pytest.fixture(scope="session")
def cifar100_archive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tmp dir holding a generated `cifar-100-binary.tar.gz` (200 train, 100 test records).

    `cifar_fixtures.make_cifar100()` gives the arrays it holds; load with `verify_md5=False`.
    """
    from cifar_fixtures import write_cifar100_archive

    folder = tmp_path_factory.mktemp("cifar100_archive")
    write_cifar100_archive(folder)
    return folder


STUDY_DESCRIPTION = "Max vs blur pooling on MNIST, 2 seeds: a test study."


@pytest.fixture(scope="session")
def study_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real sweep (max, blur × seeds 0, 1; tiny MNIST runs) in experiment `study`.

    The sweep's end logs its analysis (tables, plots, dashboard) to the parent run. Shared by
    the analysis and the MLflow UI tests; returns the store's URI.
    """
    return train(
        tmp_path_factory.mktemp("study"),
        "downsample=max,blur",
        "trainer.seed=0,1",
        "tracking.experiment=study",
        f"tracking.description='{STUDY_DESCRIPTION}'",
        data=shared_data / "mnist",
        sweep=True,
    ).uri


@pytest.fixture(autouse=True)
def _fetch_retries_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process a failed download is retried without the 2 + 4 s wait: the tests check
    the attempts, not the wait (a subprocess run of the CLI, as in test_fetch.py, still waits
    as a user's does)."""
    from dsbench.data import fetch

    monkeypatch.setattr(fetch, "BACKOFF", 0.0)
