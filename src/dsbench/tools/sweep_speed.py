"""A sweep laid out for the cores against the same sweep one job at a time, side by side:
`python -m dsbench.tools.sweep_speed` (`make bench-sweep`).

For each model, one grid of jobs (strategies × seeds on a subset of the real training set, a
few epochs, the study's evaluation) runs as a real sweep, `dsbench train -m`, into
a fresh sqlite store,
twice in each round: with `sweep.jobs=1` (one job at a time with every core, as sweeps ran
before the layout) and with the default layout (`sweep.jobs=auto`: jobs side by side, few
threads each). Every second round the order is reversed, so a slow phase of a shared machine
does not always fall on the same layout. Reported per model: each layout's wall time (the
whole command: start-up, data, every job, the end-of-sweep analysis), the jobs × threads it
used, and the median over rounds of the ratio laid-out / one at a time (< 1: faster), to
`<out_dir>/sweep-<machine>.md` and `.csv`.
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from dsbench import cli, config
from dsbench.contract import Metric, Tag
from dsbench.errors import DsbenchError, unknown
from dsbench.provenance import produced_by
from dsbench.tools.bench import device_name, write_report

log = logging.getLogger(__name__)

# The grids, as a study trains them: real archives (fetched if missing), the validation split,
# the shift evaluation on the test set. A study's job is not only training: reading the data,
# the evaluation's shifted copies (numpy, one core), MLflow's records and the start-up are
# work that one job at a time leaves the other cores idle during.
GRIDS = {
    "convnet": [  # the keras-io convnet of the strategy studies, the full MNIST test set
        "dataset=mnist",
        "model=convnet",
        "downsample=max,avg",
        "trainer.seed=0,1",
    ],
    "allcnn_c": [  # the Springenberg Fashion-MNIST study's All-CNN-C and Model C (32×32)
        "dataset=fashion_mnist",
        "model=springenberg_c",
        "downsample=max,conv",
        "trainer.seed=0,1",
        "dataset.test_subset=2000",
    ],
}
LAYOUTS = {"one at a time": ["sweep.jobs=1"], "laid out": []}  # the second: the defaults


@dataclass
class SweepSpeedConfig:
    models: list[str] = field(default_factory=lambda: list(GRIDS))
    # Training images per job, per model. The convnet's: the MNIST training split, as a study
    # trains, so training outweighs a job's fixed costs (start-up, data, the shift evaluation
    # of 10,000 test images), which dominate small jobs (at 16,384 images × 2 epochs the
    # layout saved 6 % of the wall time here, at 54,000 × 3 24 %). All-CNN-C: 1,536 images.
    images: dict[str, int] = field(default_factory=lambda: {"convnet": 54000, "allcnn_c": 1536})
    epochs: int = 3
    repeats: int = 2  # rounds; each runs both layouts
    out_dir: str = "results/bench"
    # More training overrides for every job (e.g. a smaller test set for a quick check); the
    # report's command line names them.
    overrides: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in self.models:
            if name not in GRIDS:
                raise unknown("sweep bench model", name, GRIDS)
            if self.images.get(name, 0) < 1:
                raise DsbenchError(f"images.{name} must be >= 1, got {self.images.get(name)}")
        for key in ("epochs", "repeats"):
            if getattr(self, key) < 1:
                raise DsbenchError(f"{key} must be >= 1, got {getattr(self, key)}")


def sweep_command(
    bench: SweepSpeedConfig, model: str, layout: list[str], folder: Path
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dsbench.train",
        "-m",
        *GRIDS[model],
        "dataset.source=archive",
        f"dataset.train_subset={bench.images[model]}",
        f"trainer.epochs={bench.epochs}",
        "trainer.verbose=0",
        f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
        f"hydra.sweep.dir={folder / 'sweep'}",
        *bench.overrides,
        *layout,
    ]


def run_sweep(bench: SweepSpeedConfig, model: str, layout: str) -> dict[str, Any]:
    """One sweep in a fresh folder: its wall time, and how its jobs shared the machine."""
    with tempfile.TemporaryDirectory(prefix="dsbench-sweep-speed-") as tmp:
        folder = Path(tmp)
        command = sweep_command(bench, model, LAYOUTS[layout], folder)
        start = time.perf_counter()
        out = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if out.returncode != 0:
            raise DsbenchError(f"the {layout} {model} sweep failed: {out.stderr.strip()[-300:]}")
        runs = _job_runs(f"sqlite:///{folder / 'mlflow.db'}")
    return {
        "seconds": seconds,
        "job_count": len(runs),
        "at_once": runs[0].data.tags.get(Tag.JOBS_AT_ONCE),
        "threads_each": runs[0].data.tags.get(Tag.THREADS),
        "img_s": statistics.median(r.data.metrics[Metric.STEADY_IMAGES_PER_SEC] for r in runs),
    }


def _job_runs(uri: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = [r for r in client.search_runs(ids) if Tag.ROLE not in r.data.tags]
    if not runs or any(r.info.status != "FINISHED" for r in runs):
        raise DsbenchError(f"a sweep of the bench left unfinished jobs in {uri}")
    return runs


def measure(bench: SweepSpeedConfig) -> list[dict[str, Any]]:
    rows = []
    for model in bench.models:
        measured: dict[str, list[dict[str, Any]]] = {name: [] for name in LAYOUTS}
        for round_ in range(bench.repeats):
            order = list(LAYOUTS) if round_ % 2 == 0 else list(LAYOUTS)[::-1]
            for layout in order:
                result = run_sweep(bench, model, layout)
                measured[layout].append(result)
                log.info("%s, %s, round %d: %.1f s", model, layout, round_ + 1, result["seconds"])
        rows += rows_from(model, bench, measured)
    return rows


def rows_from(
    model: str, bench: SweepSpeedConfig, measured: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """One row per layout; the ratio is the median of each round's laid-out / sequential."""
    sequential, laid_out = (measured[name] for name in LAYOUTS)
    ratio = statistics.median(
        b["seconds"] / a["seconds"] for a, b in zip(sequential, laid_out, strict=True)
    )
    rows = []
    for name, results in measured.items():
        rows.append(
            {
                "model": model,
                "layout": name,
                "job runs": results[0]["job_count"],
                "jobs × threads": f"{results[0]['at_once']} × {results[0]['threads_each']}",
                "images/job": bench.images[model],
                "wall s": statistics.median(r["seconds"] for r in results),
                "job train img/s": statistics.median(r["img_s"] for r in results),
                "vs one at a time": ratio if name != next(iter(LAYOUTS)) else 1.0,
                "rounds s": [round(r["seconds"], 1) for r in results],
            }
        )
    return rows


def write(rows: list[dict[str, Any]], bench: SweepSpeedConfig, command: str) -> Path:
    name = f"sweep-{device_name()}"
    rounded = {"wall s": 1, "job train img/s": 0, "vs one at a time": 2}
    head = [
        f"# A sweep laid out for the cores vs one job at a time: {name.removeprefix('sweep-')}",
        "",
        produced_by(f"`{command}`", "keras", "tensorflow"),
        f"Each model's grid (strategies × seeds) ran as a real sweep of {bench.epochs}-epoch "
        "jobs on a subset of the real training set, with the studies' shift evaluation, "
        "into a fresh sqlite store, once one job at a time "
        "(`sweep.jobs=1`, every core for each job) and once with the default layout, in "
        f"each of {bench.repeats} rounds (every second round the other layout first). "
        "`wall s`: the whole command (start-up, every job, the end-of-sweep analysis), "
        "median over rounds. `vs one at a time`: the median over rounds of the round's "
        "wall-time ratio (< 1: the layout is faster). `job train img/s`: one job's steady "
        "rate, lower side by side, since jobs share the cores.",
    ]
    return write_report(Path(bench.out_dir), name, rows, rounded, head)


ConfigStore.instance().store(name="sweep_speed_schema", node=SweepSpeedConfig)


@hydra.main(version_base="1.3", config_path=config.CONFIG_PATH, config_name="sweep_speed")
def _app(cfg: DictConfig) -> None:
    with cli.exit_on_bad_input():
        bench = config.validate(cfg, SweepSpeedConfig)
        rows = measure(bench)
        command = " ".join(["python -m dsbench.tools.sweep_speed", *sys.argv[1:]])
        write(rows, bench, command)


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
