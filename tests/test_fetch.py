"""Fetching the official archives: from a real HTTP server on 127.0.0.1 (tests/mirror.py)
serving the real MNIST files of ../shared/data. A good fetch, a 404, a corrupted file, a
connection dropped halfway, offline, parallel fetches; and the registry's URLs against the
ones TFDS's own builders use. Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT
from helpers import NO_TF, PROBE_TF, all_runs
from mirror import Mirror

from dsbench.contract import Metric
from dsbench.data.archives import load_archives, md5_of
from dsbench.data.fetch import ensure_archives, source_url
from dsbench.data.registry import DATASETS
from dsbench.errors import ExternalError

MNIST = DATASETS["mnist"]
NAMES = [name for name, _ in MNIST.files.values()]


@pytest.fixture(scope="module")
def server(shared_data: Path) -> Iterator[Mirror]:
    mirror = Mirror(shared_data)
    yield mirror
    mirror.close()


@pytest.fixture
def mirror(server: Mirror) -> Mirror:
    server.faults.clear()
    server.requests.clear()
    return server


def _leftovers(folder: Path) -> list[str]:
    """What a fetch left besides the official files and its lock."""
    return sorted(p.name for p in folder.iterdir() if p.name not in {*NAMES, ".dsbench-fetch.lock"})


def test_good_fetch_is_md5_checked_and_readable(tmp_path: Path, mirror: Mirror) -> None:
    folder = tmp_path / "mnist"  # does not exist yet: the fetch creates it
    fetched = ensure_archives(MNIST, folder, f"{mirror.url}/mnist/")
    assert sorted(fetched) == sorted(NAMES)
    for name, md5 in MNIST.files.values():
        assert md5_of(folder / name) == md5
    assert _leftovers(folder) == []
    x_train, _, x_test, _ = load_archives(MNIST, folder)
    assert (len(x_train), len(x_test)) == MNIST.sizes
    # A second call finds everything there and asks the server nothing.
    before = len(mirror.requests)
    assert ensure_archives(MNIST, folder, f"{mirror.url}/mnist/") == []
    assert len(mirror.requests) == before


def test_mirror_variable_and_config_key(
    tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSBENCH_MIRROR", mirror.url + "/")
    assert source_url(MNIST) == f"{mirror.url}/mnist/"
    assert source_url(MNIST, "http://example.invalid/x") == "http://example.invalid/x/"
    monkeypatch.delenv("DSBENCH_MIRROR")
    assert source_url(MNIST) == MNIST.url  # the official folder
    monkeypatch.setenv("DSBENCH_MIRROR", mirror.url)
    ensure_archives(MNIST, tmp_path)
    assert {p for p, _ in mirror.requests} == {f"mnist/{n}" for n in NAMES}


def test_404_names_the_url_and_the_folder(tmp_path: Path, mirror: Mirror) -> None:
    mirror.faults["mnist/t10k-labels-idx1-ubyte.gz"] = "404"
    with pytest.raises(ExternalError) as err:
        ensure_archives(MNIST, tmp_path, f"{mirror.url}/mnist/")
    msg = str(err.value)
    assert "\n" not in msg
    assert f"from {mirror.url}/mnist/: t10k-labels-idx1-ubyte.gz answered 404" in msg
    assert msg.count(mirror.url) == 1  # the URL once
    assert "t10k-labels-idx1-ubyte.gz" in msg.split(" from ")[0]  # named as missing
    assert f"put the official files in {tmp_path}" in msg
    assert mirror.count("mnist/t10k-labels-idx1-ubyte.gz") == 1  # a 404 is not retried
    assert not (tmp_path / "t10k-labels-idx1-ubyte.gz").exists()
    assert _leftovers(tmp_path) == []


def test_corrupt_download_is_not_kept(tmp_path: Path, mirror: Mirror) -> None:
    mirror.faults["mnist/train-labels-idx1-ubyte.gz"] = "corrupt"
    with pytest.raises(ExternalError) as err:
        ensure_archives(MNIST, tmp_path, f"{mirror.url}/mnist/")
    msg = str(err.value)
    assert "\n" not in msg
    assert f"expected {MNIST.files['train_labels'][1]}" in msg
    assert "nothing was kept" in msg
    assert not (tmp_path / "train-labels-idx1-ubyte.gz").exists()
    assert _leftovers(tmp_path) == []


def test_dropped_connection_leaves_nothing_and_a_second_fetch_succeeds(
    tmp_path: Path, mirror: Mirror
) -> None:
    path = "mnist/train-images-idx3-ubyte.gz"
    mirror.faults[path] = "drop"  # every attempt breaks off halfway
    with pytest.raises(ExternalError) as err:
        ensure_archives(MNIST, tmp_path, f"{mirror.url}/mnist/")
    assert "broke off after" in str(err.value)
    assert mirror.count(path) == 3  # retried, each time from where it stopped
    assert [r for p, r in mirror.requests if p == path][1].startswith("bytes=")
    assert not (tmp_path / "train-images-idx3-ubyte.gz").exists()
    assert _leftovers(tmp_path) == []
    mirror.faults.clear()
    ensure_archives(MNIST, tmp_path, f"{mirror.url}/mnist/")
    assert md5_of(tmp_path / "train-images-idx3-ubyte.gz") == MNIST.files["train_images"][1]


def test_a_broken_download_resumes_where_it_stopped(tmp_path: Path, mirror: Mirror) -> None:
    path = "mnist/train-images-idx3-ubyte.gz"
    mirror.faults[path] = "drop_once"
    ensure_archives(MNIST, tmp_path, f"{mirror.url}/mnist/")
    ranges = [r for p, r in mirror.requests if p == path]
    size = (mirror.root / path).stat().st_size
    # The second request asks only for the rest: from the last whole chunk that arrived.
    assert ranges[0] is None and len(ranges) == 2
    assert 0 < int(ranges[1].removeprefix("bytes=").rstrip("-")) <= size // 2
    assert md5_of(tmp_path / "train-images-idx3-ubyte.gz") == MNIST.files["train_images"][1]


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A port held bound but not listening: a connection is refused, and no other test
    (tests run side by side) can start a server there while this one runs."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{held.getsockname()[1]}"
    finally:
        held.close()


def test_offline_is_one_line_before_tensorflow(tmp_path: Path, closed_url: str) -> None:
    """`python -m dsbench.train` with no archives and no network: one line, exit 1, no TF."""
    url = closed_url
    folder = tmp_path / "data"
    env = {**os.environ, "DSBENCH_MIRROR": url, "DSBENCH_DATA": str(folder)}
    env["TFDS_DATA_DIR"] = str(tmp_path / "tfds")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # TensorFlow's start-up lines would show
    start = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE_TF,
            "dsbench.train",
            f"tracking.uri=sqlite:///{tmp_path}/m.db",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr[-3000:]
    line = lines[0]
    assert line.startswith("dsbench: error: cannot fetch mnist (")
    assert "mnist (4 files) from " in line  # docs/data.md names them
    assert len(line.replace(str(folder), "")) <= 250  # short, whatever the folder's length
    assert f"from {url}/mnist/" in line and "Connection refused" in line
    assert f"put the official files in {folder / 'mnist'}" in line
    assert time.monotonic() - start < 60
    assert out.stdout.strip().endswith(NO_TF)  # found before TensorFlow was imported
    assert not (tmp_path / "m.db").exists()
    assert not (folder / "mnist").exists()  # the folder it made for the fetch is gone


def test_fetch_command(tmp_path: Path, mirror: Mirror) -> None:
    env = {**os.environ, "DSBENCH_DATA": str(tmp_path)}
    command = [sys.executable, "-m", "dsbench", "data", "datasets=mnist", f"mirror={mirror.url}"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "mnist"
    assert out.stdout.strip() == (
        f"mnist: 4 file(s) in {folder}, md5 checked (fetched 4 from {mirror.url}/mnist/)"
    )
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.stdout.strip().endswith("md5 checked (present)")
    # A file that is there but not official is named as corrupt, with the md5 expected.
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(labels.read_bytes())
    data[100] ^= 0xFF
    labels.write_bytes(bytes(data))
    bad = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        f"dsbench: error: mnist archive {labels} is corrupt: md5 {md5_of(labels)}, expected "
        f"{MNIST.files['test_labels'][1]}: delete it and fetch again"
    )
    unknown = subprocess.run(
        [sys.executable, "-m", "dsbench", "data", "datasets=svhn"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "dsbench: error: unknown dataset 'svhn'; choose one of: cifar10, cifar100, fashion_mnist, "
        "mnist"
    )


def test_parallel_fetches_download_once(tmp_path: Path, mirror: Mirror) -> None:
    """Three processes start on one empty folder: one downloads, the others wait for it."""
    env = {**os.environ, "DSBENCH_DATA": str(tmp_path)}
    command = [sys.executable, "-m", "dsbench.data", "datasets=mnist", f"mirror={mirror.url}"]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    assert all(mirror.count(f"mnist/{name}") == 1 for name in NAMES), mirror.requests
    assert _leftovers(tmp_path / "mnist") == []


def test_registry_urls_are_those_of_tfds_builders() -> None:
    """Each official file's URL is the one in TFDS's checksum list for that dataset (read
    as a file: TFDS is not imported)."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    assert spec is not None and spec.submodule_search_locations
    checksums = Path(spec.submodule_search_locations[0]) / "url_checksums"
    for info in DATASETS.values():
        listed = {
            line.split("\t")[0]
            for line in (checksums / f"{info.tfds_name}.txt").read_text().splitlines()
            if line.strip()
        }
        ours = {info.url + name for name, _ in info.files.values()}
        assert ours == listed, info.name


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_registry_sizes_match_the_real_archives(shared_data: Path, name: str) -> None:
    x_train, _, x_test, _ = load_archives(DATASETS[name], shared_data / name)
    assert (len(x_train), len(x_test)) == DATASETS[name].sizes


@pytest.mark.slow
def test_make_run_fetches_verifies_and_trains(tmp_path: Path, mirror: Mirror) -> None:
    """A machine without ../shared/data, pointed at a local mirror: `make run` fetches the
    archives, checks them and trains. (The archive source, to keep it short: the TFDS path
    from fetched files is test_parallel's.)"""
    data = tmp_path / "data"
    env = {**os.environ, "DSBENCH_DATA": str(data), "DSBENCH_MIRROR": mirror.url}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = (
        "trainer.epochs=1 dataset.source=archive dataset.train_subset=2000 "
        f"dataset.test_subset=500 trainer.verbose=0 hydra.run.dir={tmp_path / 'run'}"
    )
    # Run from the temp folder, as a user runs from theirs: MLflow puts a sqlite store's
    # artifacts in ./mlruns there, not in the checkout.
    command = [
        "make",
        "-s",
        "-f",
        str(ROOT / "Makefile"),
        "run",
        f"VENV={sys.prefix}",
        f"ARGS={args}",
    ]
    out = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for name, md5 in MNIST.files.values():
        assert md5_of(data / "mnist" / name) == md5
        assert mirror.count(f"mnist/{name}") == 1
    (run,) = all_runs(env["MLFLOW_TRACKING_URI"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics[Metric.TEST_ACCURACY] > 0.5  # 2000 images, one epoch: it learned
    assert (tmp_path / "mlruns").is_dir()  # its artifacts, beside the store
