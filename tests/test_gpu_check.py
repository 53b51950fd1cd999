"""`make gpu-check`: the GPU path in one command. Here, without a GPU, forced to the CPU at a
tiny size, on a Python where TensorFlow and TFDS cannot be imported (as on the GPU machine), so
that the script cannot rot before a GPU is lent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

from dsbench.tools import gpu_check
from dsbench.tools.bench import device_name


def without_tensorflow(folder: Path) -> dict[str, str]:
    """An environment whose Python finds TensorFlow and TFDS but cannot import them."""
    for module in ("tensorflow", "tensorflow_datasets"):
        (folder / module).mkdir(parents=True)
        (folder / module / "__init__.py").write_text(
            f"raise ImportError('{module} is not installed on this machine')\n"
        )
    return {**os.environ, "PYTHONPATH": str(folder), "TF_CPP_MIN_LOG_LEVEL": "3"}


def untracked() -> set[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.splitlines())


@pytest.mark.slow
def test_make_gpu_check_on_the_cpu_runs_every_step_without_tensorflow(tmp_path: Path) -> None:
    before = untracked()
    out = subprocess.run(
        ["make", "--no-print-directory", "gpu-check", "DEVICE=cpu", f"ARGS=out_dir={tmp_path}"],
        cwd=ROOT,
        env=without_tensorflow(tmp_path / "blocked"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    name = f"{device_name()}-jax"
    table = pd.read_csv(tmp_path / f"{name}.csv")
    assert list(zip(table["model"], table["variant"], strict=True)) == [
        ("mnist_convnet", "suite"),
        ("mnist_convnet", "torch_loop"),
        ("allcnn_c", "suite"),
        ("allcnn_c", "torch_loop"),
    ]
    assert (table["images_per_sec"] > 0).all()
    assert (table.loc[table["variant"] == "suite", "compile_seconds"] > 0).all()
    report = (tmp_path / f"{name}.md").read_text()
    assert report.startswith(f"# GPU check on {name}\n")
    assert "Keras backend: jax." in report and "PyTorch 2." in report
    assert "mnist_convnet: suite / torch_loop = " in report
    assert "allcnn_c: suite / torch_loop = " in report
    sweep = report[report.index("## A 2-job sweep through the entry point") :]
    assert "Checked: both runs FINISHED under one parent" in sweep
    rows = [line for line in sweep.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows] == ["downsample", "avg", "max"]
    assert "its numbers measure nothing" in report
    assert report in out.stdout  # printed too
    assert untracked() == before  # nothing left in the work tree (no mlruns/, no log)


def test_gpu_check_without_a_gpu_stops_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-m", "dsbench.tools.gpu_check", f"out_dir={tmp_path}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "dsbench: error: no GPU: JAX sees none on this machine; `make gpu-check DEVICE=cpu` "
        "runs the check on the CPU at a tiny size"
    ]
    assert list(tmp_path.iterdir()) == []


def test_gpu_check_names_an_unknown_device(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dsbench.tools.gpu_check", "device=tpu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "dsbench: error: device must be one of gpu, cpu, got 'tpu'"
    )


def test_gpu_check_lists_every_package_it_lacks_at_once(tmp_path: Path) -> None:
    """A machine set up from carried wheels learns all it lacks in one line, not one
    traceback per package."""
    code = (
        "from dsbench.tools import gpu_check as g; "
        "g.REQUIRED.update({'no_such_module_a': 'no-such-a', 'no_such.b': 'no-such-b'}); "
        "g.main()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "dsbench: error: this Python lacks no-such-a, no-such-b; install them "
        "(pip install no-such-a no-such-b) or carry their wheels (docs/bench.md)"
    ]


def test_every_package_the_check_needs_is_installed_here() -> None:
    assert gpu_check.missing_packages() == []
