"""The suite's GPU path checked in one command, in minutes: `python -m dsbench.tools.gpu_check`
(`make gpu-check`).

A GPU machine may be lent for minutes only, so this does in one go, sized to end within 8
minutes on an H100 (docs/bench.md says how to run it there):

1. speed, side by side (`dsbench.tools.bench`): the suite's training (`training.run.train`,
   MLflow on) on the fast path (JAX, mixed_bfloat16, the device loop) and the hand-written
   PyTorch bf16 loop on the same layers, for the MNIST convnet and All-CNN-C on random data of
   the real shape, interleaved over rounds: steady images/s, compile seconds, peak device
   memory, suite / PyTorch;
2. a real 2-job sweep, `dsbench train -m downsample=max,avg` of the convnet on the
   real MNIST archives into a fresh sqlite store, then checked: both runs FINISHED under one
   parent, every metric of the contract logged, the end-of-sweep analysis written and logged;

and writes `<out_dir>/<device>-jax.md` and `.csv` (the device: the GPU's kind).

It needs neither TensorFlow nor TFDS (the archives are read directly), so it runs on a GPU
machine that has JAX and PyTorch only, with Keras, Hydra and MLflow carried as wheels.
Without a GPU it stops with one line; `device=cpu` runs every step on the CPU at a tiny size,
which the test suite does so that the script cannot rot (it measures nothing there).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsbench.contract import (
    EPOCH_METRICS,
    FINAL_METRICS,
    PARENT_RUN,
    SWEEP_ROLE,
    Metric,
    Tag,
    shifted_accuracy,
)
from dsbench.errors import DsbenchError, one_line

# What the check imports, by the name pip installs it under. Looked up before anything is
# imported, so that a machine set up from carried wheels learns everything it lacks at once
# instead of one traceback at a time. TensorFlow and TFDS are not among them.
REQUIRED = {
    "keras": "keras",
    "jax": "jax",
    "hydra": "hydra-core",
    "hydra_plugins.hydra_joblib_launcher": "hydra-joblib-launcher",  # the default launcher
    "joblib": "joblib",
    "mlflow": "mlflow-skinny",
    "sqlalchemy": "sqlalchemy",
    "alembic": "alembic",
    "pandas": "pandas",
    "matplotlib": "matplotlib",
    "scipy": "scipy",
    "tabulate": "tabulate",
    "filelock": "filelock",
    "tqdm": "tqdm",
    "requests": "requests",
}
DEVICES = ("gpu", "cpu")
EXPERIMENT = "gpu-check"
SWEEP = ["dataset=mnist", "model=convnet", "downsample=max,avg"]


@dataclass(frozen=True)
class Size:
    images: int  # training images per epoch of the speed part
    batch: int
    epochs: int  # of the speed part; the first holds compilation and is not counted
    repeats: int  # interleaved rounds of suite and PyTorch loop
    sweep: list[str]  # the sweep jobs' size


SIZES = {
    # Within 8 minutes on an H100: 4 suite runs (10–34 s of XLA compilation each, as measured
    # on one in this project's GPU notes) and 4 PyTorch runs, then 2 sweep jobs of 3 full MNIST
    # epochs (compiled again, in their own processes).
    "gpu": Size(50_000, 512, 3, 2, ["trainer.epochs=3"]),
    # Every step at the smallest size that still has a steady epoch: the script, not speed.
    "cpu": Size(
        256,
        128,
        2,
        1,
        ["trainer.epochs=2", "dataset.train_subset=512", "dataset.test_subset=500"],
    ),
}


@dataclass
class GpuCheckConfig:
    device: str = "gpu"  # gpu | cpu (every step at a tiny size on the CPU: tests the script)
    # The real MNIST archives the sweep trains on.
    archive_dir: str = "${oc.env:DSBENCH_DATA,data}/mnist"
    out_dir: str = "results/bench"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise DsbenchError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")


class CheckFailed(Exception):
    """The GPU path did not do what it must (a run unfinished, a metric missing): the suite's
    fault, not the input's; one line, exit 1."""


def missing_packages() -> list[str]:
    """The pip names of REQUIRED modules this Python cannot import."""
    missing = []
    for module, package in REQUIRED.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # its parent package is missing
            found = False
        if not found:
            missing.append(package)
    return missing


def use_device(device: str) -> None:
    """Pin JAX to the device, before JAX is imported, in this process and the sweep's."""
    if device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the sweep layout then plans for the CPU
        return
    from dsbench.training.backend import has_gpu

    if not has_gpu():
        raise DsbenchError(
            "no GPU: JAX sees none on this machine; `make gpu-check DEVICE=cpu` runs the "
            "check on the CPU at a tiny size"
        )


def measure_speed(check: GpuCheckConfig, store: str) -> list[dict[str, Any]]:
    from dsbench.tools import bench

    size = SIZES[check.device]
    settings = bench.BenchConfig(
        batch_size=size.batch,
        images=size.images,
        epochs=size.epochs,
        repeats=size.repeats,
        # On a GPU the bench takes the fast path by itself; on the CPU it is asked for.
        suite=[] if check.device == "gpu" else list(bench.FAST_PATH),
        variants=["suite", "torch_loop"],
        real_epoch=False,  # the sweep trains on real MNIST
    )
    return bench.measure(settings, store)


def run_sweep(check: GpuCheckConfig, folder: Path) -> float:
    """The sweep, as a user runs it; its wall seconds."""
    from dsbench.tools.bench import FAST_PATH

    command = [
        sys.executable,
        "-m",
        "dsbench.train",
        "-m",
        *SWEEP,
        *FAST_PATH,
        *SIZES[check.device].sweep,
        "dataset.source=archive",
        f"dataset.archive_dir={check.archive_dir}",
        "trainer.verbose=0",
        f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
        f"tracking.experiment={EXPERIMENT}",
        f"hydra.sweep.dir={folder / 'sweep'}",
    ]
    start = time.perf_counter()
    out = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise CheckFailed(f"the sweep exited with {out.returncode}: {one_line(last, 300)}")
    return seconds


def check_sweep(folder: Path, gpu: bool) -> list[dict[str, Any]]:
    """Every run of the sweep as a user's analysis needs it; one row per job for the report."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    parents = [r for r in runs if r.data.tags.get(Tag.ROLE) == SWEEP_ROLE]
    jobs = [r for r in runs if Tag.ROLE not in r.data.tags]
    problems = []
    if len(parents) != 1 or len(jobs) != 2:
        problems.append(f"{len(parents)} sweep parent(s) and {len(jobs)} job runs, not 1 and 2")
    expected = {*FINAL_METRICS, shifted_accuracy(0)} | (
        {Metric.PEAK_MEMORY_BYTES} if gpu else set()
    )
    for run in jobs:
        name = run.info.run_name
        if run.info.status != "FINISHED":
            problems.append(f"{name} is {run.info.status}")
        if parents and run.data.tags.get(PARENT_RUN) != parents[0].info.run_id:
            problems.append(f"{name} is not nested under the sweep's parent")
        lacking = sorted(expected - set(run.data.metrics))
        lacking += [m for m in EPOCH_METRICS if not client.get_metric_history(run.info.run_id, m)]
        if lacking:
            problems.append(f"{name} lacks {', '.join(lacking)}")
    analysis = folder / "sweep" / "analysis"
    for file in ("comparison.md", "dashboard.html"):
        if not (analysis / file).is_file():
            problems.append(f"the end-of-sweep analysis wrote no {file}")
    if parents and not client.list_artifacts(parents[0].info.run_id, "analysis"):
        problems.append("the sweep's parent run has no analysis/ artifacts")
    if problems:
        raise CheckFailed("; ".join(problems))
    return [_job_row(run) for run in sorted(jobs, key=lambda r: r.data.tags[Tag.DOWNSAMPLE])]


def _job_row(run: Any) -> dict[str, Any]:
    metrics = run.data.metrics
    return {
        "downsample": run.data.tags[Tag.DOWNSAMPLE],
        "epochs": int(metrics[Metric.STOPPED_EPOCH]),
        "train images": int(metrics[Metric.TRAIN_IMAGES]),
        "test error %": round(100 * metrics[Metric.TEST_ERROR], 2),
        "steady img/s": round(metrics[Metric.STEADY_IMAGES_PER_SEC]),
        "compile s": round(metrics[Metric.COMPILE_SECONDS], 2),
        "peak memory GiB": (
            round(metrics[Metric.PEAK_MEMORY_BYTES] / 2**30, 2)
            if Metric.PEAK_MEMORY_BYTES in metrics
            else None  # the backend reports none (JAX on a CPU)
        ),
        "metrics logged": len(metrics),
    }


def sweep_notes(check: GpuCheckConfig, rows: list[dict[str, Any]], seconds: float) -> list[str]:
    import pandas as pd

    from dsbench.tools.bench import FAST_PATH

    command = " ".join(["dsbench train -m", *SWEEP, *FAST_PATH])
    return [
        "## A 2-job sweep through the entry point",
        "",
        f"`{command} {' '.join(SIZES[check.device].sweep)}` on the real MNIST archives into a "
        f"fresh sqlite store: {seconds:.1f} s wall, start-up and the end-of-sweep analysis "
        "included. Checked: both runs FINISHED under one parent, every metric of the contract "
        "logged (each epoch's too), the analysis (comparison table, dashboard) written and "
        "logged to the parent.",
        "",
        pd.DataFrame(rows).to_markdown(index=False, missingval="–"),
        "",
    ]


def check_all(check: GpuCheckConfig, command: str) -> Path:
    from dsbench.tools import bench
    from dsbench.training.backend import select_backend

    start = time.perf_counter()
    select_backend("jax")
    with tempfile.TemporaryDirectory(prefix="dsbench-gpu-check-") as tmp:
        rows = measure_speed(check, f"sqlite:///{tmp}/bench.db")
        folder = Path(tmp, "sweep-store")
        folder.mkdir()
        seconds = run_sweep(check, folder)
        jobs = check_sweep(folder, gpu=check.device == "gpu")
    notes = sweep_notes(check, jobs, seconds)
    notes.append(f"The whole check took {(time.perf_counter() - start) / 60:.1f} minutes.")
    if check.device == "cpu":
        notes.append(
            "Run on the CPU at a tiny size (`device=cpu`): it tests the script; "
            "its numbers measure nothing."
        )
    return bench.write(
        rows, Path(check.out_dir), command, list(bench.FAST_PATH), "GPU check", notes
    )


def _app() -> Any:
    """The Hydra app, made only once the packages are known to be there."""
    import hydra
    from hydra.core.config_store import ConfigStore
    from omegaconf import DictConfig

    from dsbench import cli, config

    ConfigStore.instance().store(name="gpu_check_schema", node=GpuCheckConfig)

    @hydra.main(version_base="1.3", config_path=config.CONFIG_PATH, config_name="gpu_check")
    def app(cfg: DictConfig) -> None:
        with cli.exit_on_bad_input():
            check = config.validate(cfg, GpuCheckConfig)
            use_device(check.device)
            command = " ".join(["python -m dsbench.tools.gpu_check", *sys.argv[1:]])
            try:
                check_all(check, command)
            except CheckFailed as e:
                cli.fail(f"the GPU check failed: {e}", cli.EXIT_EXTERNAL)

    return app


def main() -> None:
    missing = missing_packages()
    if missing:
        print(
            f"dsbench: error: this Python lacks {', '.join(missing)}; install them "
            f"(pip install {' '.join(missing)}) or carry their wheels (docs/bench.md)",
            file=sys.stderr,
        )
        sys.exit(1)
    from dsbench import cli

    cli.run_app(_app())


if __name__ == "__main__":
    main()
