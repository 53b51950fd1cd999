"""What each downsampling costs in time, measured side by side in one process:
`python -m dsbench.tools.strategy_speed` (`make bench-strategies`).

A converged study trains for hours across sessions, and a shared machine's speed moves between
sessions by more than the strategies differ (docs/bench.md), so its img/s columns compare the
runs of one session only. This trains every strategy × head of one model for a few epochs on
random uint8 arrays of the dataset's shape, in `repeats` rounds (every second round in reverse
order, so that no model always runs first or last), through the suite's own `train` with
tracking off (the fast path on a GPU, as `make bench`; `suite` adds overrides), and reports:

    train img/s       steady training rate (median over the epochs after the first)
    inference img/s   prediction rate on the test arrays, timed after a warm-up batch
    vs max            the median over rounds of each round's ratio to max pooling, same head:
                      a slow phase of the machine that lasts a round slows both sides alike

with FLOPs and parameters, to `<out_dir>/strategies-<device>-<backend>.md` and `.csv`.
"""

from __future__ import annotations

import logging
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from dsbench import cli, config
from dsbench.contract import Metric, Tag
from dsbench.errors import DsbenchError
from dsbench.model.downsample import STRATEGIES
from dsbench.model.heads import HEADS
from dsbench.model.plan import lookup
from dsbench.provenance import produced_by
from dsbench.tools.bench import (
    compose_job,
    device_name,
    suite_backend,
    suite_overrides,
    write_report,
)
from dsbench.training.backend import select_backend

log = logging.getLogger(__name__)

REFERENCE = "max"  # every ratio is to max pooling with the same head
Job = tuple[str, str]  # (strategy, head)


@dataclass
class StrategySpeedConfig:
    dataset: str = "mnist"
    model: str = "convnet"
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))
    heads: list[str] = field(default_factory=lambda: ["flatten", "gap"])
    images: int = 4096  # training images per epoch
    test_images: int = 2048  # the inference rate's images
    batch_size: int = 128  # the studies' batch
    epochs: int = 3  # the first holds compilation and warm-up and is not counted
    repeats: int = 3  # rounds over every strategy × head
    suite: list[str] = field(default_factory=list)  # overrides of every run (e.g. backend)
    out_dir: str = "results/bench"

    def __post_init__(self) -> None:
        for name in self.strategies:
            lookup(STRATEGIES, "downsample", name)
        for name in self.heads:
            lookup(HEADS, "head", name)
        for key in ("strategies", "heads"):
            names = getattr(self, key)
            if len(set(names)) < len(names):
                raise DsbenchError(f"{key} must not repeat a name, got {names}")
        if REFERENCE not in self.strategies:
            raise DsbenchError(
                f"strategies must include {REFERENCE}: every ratio is to {REFERENCE} pooling, "
                f"got {self.strategies}"
            )
        for key in ("images", "test_images", "batch_size", "repeats"):
            if getattr(self, key) < 1:
                raise DsbenchError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.epochs < 2:
            raise DsbenchError("epochs must be >= 2: the first epoch is not counted")


def job_overrides(bench: StrategySpeedConfig, strategy: str, head: str) -> list[str]:
    return [
        f"dataset={bench.dataset}",
        f"model={bench.model}",
        f"downsample={strategy}",
        f"head={head}",
        "dataset.source=synthetic",
        "dataset.val_fraction=0",
        f"dataset.train_subset={bench.images}",
        f"dataset.test_subset={bench.test_images}",
        "evaluation.shifts=[]",
        "evaluation.consistency_shift=0",
        f"trainer.batch_size={bench.batch_size}",
        f"trainer.epochs={bench.epochs}",
        "trainer.verbose=0",
        "tracking.enabled=false",
        *suite_overrides(bench.suite),
    ]


def measure(bench: StrategySpeedConfig) -> list[dict[str, Any]]:
    """One row per strategy × head, its `rounds` the per-round measurements."""
    from dsbench.training.run import train

    jobs = [(s, h) for h in bench.heads for s in bench.strategies]
    composed = {job: compose_job(job_overrides(bench, *job)) for job in jobs}  # bad config: now
    measured: dict[Job, list[dict[str, float]]] = {job: [] for job in jobs}
    for round_, job in schedule(jobs, bench.repeats):
        final = train(composed[job])
        measured[job].append(final)
        log.info(
            "%s+%s round %d: %.0f training img/s, %.0f inference img/s",
            *job,
            round_,
            final[Metric.STEADY_IMAGES_PER_SEC],
            final[Metric.INFERENCE_IMAGES_PER_SEC],
        )
    return rows_from(measured)


def schedule(jobs: list[Job], repeats: int) -> list[tuple[int, Job]]:
    """(round from 1, job) in the order they train: every second round reversed, so no job
    always runs first or last, next to the same neighbours."""
    return [
        (round_ + 1, job)
        for round_ in range(repeats)
        for job in (jobs if round_ % 2 == 0 else jobs[::-1])
    ]


def rows_from(measured: dict[Job, list[dict[str, float]]]) -> list[dict[str, Any]]:
    """The table's rows from each job's per-round `train` results, in the jobs' order."""

    def rate(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    def vs_max(key: str, mine: list[dict[str, float]], ref: list[dict[str, float]]) -> float:
        return statistics.median(a[key] / b[key] for a, b in zip(mine, ref, strict=True))

    steady, inference = Metric.STEADY_IMAGES_PER_SEC, Metric.INFERENCE_IMAGES_PER_SEC
    rows = []
    for strategy, head in measured:
        mine, ref = measured[strategy, head], measured[REFERENCE, head]
        rows.append(
            {
                Tag.DOWNSAMPLE: strategy,
                Tag.HEAD: head,
                # the steady rate (the epochs after the first), under the per-epoch metric's name
                Metric.TRAIN_IMAGES_PER_SEC: rate(mine, steady),
                "train_vs_max": vs_max(steady, mine, ref),
                inference: rate(mine, inference),
                "inference_vs_max": vs_max(inference, mine, ref),
                "mflops": mine[0][Metric.FLOPS_PER_IMAGE] / 1e6,
                "params": int(mine[0][Metric.PARAMS_TOTAL]),
                "train_rounds": [round(r[steady]) for r in mine],
            }
        )
    return rows


def write(rows: list[dict[str, Any]], bench: StrategySpeedConfig, command: str) -> Path:
    import keras

    name = f"strategies-{device_name()}-{keras.backend.backend()}"
    rounded = {
        Metric.TRAIN_IMAGES_PER_SEC: 0,
        "train_vs_max": 2,
        Metric.INFERENCE_IMAGES_PER_SEC: 0,
        "inference_vs_max": 2,
        "mflops": 2,
    }
    head = [
        f"# What each downsampling costs in time: {bench.model} on {bench.dataset}-shaped "
        f"images, {name.removeprefix('strategies-')}",
        "",
        produced_by(f"`{command}`", "keras", keras.backend.backend()),
        f"Every strategy × head trained {bench.epochs} epochs of {bench.images:,} random "
        f"images (batch {bench.batch_size}; the first epoch not counted) in each of "
        f"{bench.repeats} rounds, every second round in reverse order; inference on "
        f"{bench.test_images:,} images after a warm-up batch. `vs max`: the median over "
        "rounds of the round's ratio to max pooling with the same head (> 1: faster). "
        "`train_rounds`: each round's training img/s.",
    ]
    return write_report(Path(bench.out_dir), name, rows, rounded, head)


ConfigStore.instance().store(name="strategy_speed_schema", node=StrategySpeedConfig)


@hydra.main(version_base="1.3", config_path=config.CONFIG_PATH, config_name="strategy_speed")
def _app(cfg: DictConfig) -> None:
    with cli.exit_on_bad_input():
        bench = config.validate(cfg, StrategySpeedConfig)
        select_backend(suite_backend(bench.suite))
        rows = measure(bench)
        command = " ".join(["python -m dsbench.tools.strategy_speed", *sys.argv[1:]])
        write(rows, bench, command)


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
