"""`python -m dsbench.tools.bench`: the side-by-side speed measurement writes its tables."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from helpers import dsbench

from dsbench.contract import Metric
from dsbench.tools.bench import FAST_PATH, device_name


def tiny_bench(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """The MNIST convnet, one round of two 2-step epochs per variant, no real-data epoch."""
    return dsbench(
        "tools.bench",
        "models=[mnist_convnet]",
        "images=512",
        "batch_size=256",
        "epochs=2",
        "repeats=1",
        "real_epoch=false",
        *overrides,
        f"out_dir={tmp_path}",
        cwd=tmp_path,
    )


@pytest.mark.slow
def test_bench_measures_four_variants_side_by_side(tmp_path: Path) -> None:
    out = tiny_bench(tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    name = f"{device_name()}-tensorflow"  # the CPU default backend
    table = pd.read_csv(tmp_path / f"{name}.csv")
    assert list(table["variant"]) == ["suite", "no_tracking", "keras_fit", "torch_loop"]
    assert (table["images_per_sec"] > 0).all() and (table["train_tflops"] > 0).all()
    assert (table["images"] == 512).all() and (table["batch"] == 256).all()
    suite = table.set_index("variant").loc["suite"]
    assert suite[Metric.COMPILE_SECONDS] >= 0
    report = (tmp_path / f"{name}.md").read_text()
    assert "Produced by `dsbench bench models=[mnist_convnet]" in report
    assert re.search(
        r"mnist_convnet: suite / keras_fit = \d\.\d{3}, suite / no_tracking = \d\.\d{3}, "
        r"suite / torch_loop = \d\.\d{3}",
        report,
    )
    assert "PyTorch 2." in report
    assert "Table-3 projection: needs the allcnn_c model" in report
    assert report in out.stdout  # printed too
    assert "mnist_convnet suite round 1: " in out.stdout  # progress on the console,
    assert not (tmp_path / "bench.log").exists()  # not in a log file left in the cwd


def test_bench_rejects_an_unknown_model(tmp_path: Path) -> None:
    out = dsbench("tools.bench", "models=[resnet]", f"out_dir={tmp_path}", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "dsbench: error: unknown bench model 'resnet'; choose one of: mnist_convnet, allcnn_c"
    )


@pytest.mark.slow
def test_bench_runs_the_gpu_fast_path_on_the_cpu(tmp_path: Path) -> None:
    """The overrides a GPU run uses by default (JAX, bf16, device loop), here on the CPU: the
    same code path as on a GPU but for the device, PyTorch's bf16 autocast included."""
    fast_path = "','".join(FAST_PATH)
    out = tiny_bench(tmp_path, f"suite=['{fast_path}']")
    assert out.returncode == 0, out.stderr[-3000:]
    table = pd.read_csv(tmp_path / f"{device_name()}-jax.csv").set_index("variant")
    assert list(table.index) == ["suite", "no_tracking", "keras_fit", "torch_loop"]
    assert (table["images_per_sec"] > 0).all()
    assert table.loc["suite", Metric.COMPILE_SECONDS] > 0  # the device loop's AOT compile, timed
    report = (tmp_path / f"{device_name()}-jax.md").read_text()
    assert "Keras 3.15.1, JAX 0.10.2, PyTorch 2." in report and "Keras backend: jax." in report
    assert f"The suite ran with `{' '.join(FAST_PATH)}`" in report


@pytest.mark.slow
def test_bench_stops_before_training_on_what_the_pytorch_loop_cannot_do(tmp_path: Path) -> None:
    out = tiny_bench(tmp_path, "suite=['trainer.schedule=cosine']")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "dsbench: error: the PyTorch loop trains with a constant learning rate, not "
        "trainer.schedule=cosine: bench with trainer.schedule=constant, or with torch=false"
    )
    assert "round 1" not in out.stdout  # nothing trained first
    assert list(tmp_path.glob("*.csv")) == []  # and no half table written
