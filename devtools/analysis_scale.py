"""Analysis at scale: `python -m devtools.analysis_scale` (make bench-analysis).

Fills tracking stores with runs shaped like the suite's (its own tags, its ~50 params, 7
metrics per epoch, the final metrics, one sweep parent), through MLflow's client
(`log_batch`), then times the whole `dsbench analyze` (tables in four formats,
plots, dashboard) on each, in a fresh process, with its peak RSS:

    sqlite            the store file itself, at every size
    server            the same sqlite file behind `mlflow ui` (HTTP), where sizes= allow
    postgresql        the same runs in PostgreSQL (a cluster of its own on 127.0.0.1)

It also times the two ways of reading the learning curves (one `get_metric_history` call
per run; the bulk read `dsbench.analysis.load.histories` makes) and the resume lookup of one
config hash, and writes `results/bench/analysis-scale.md` with the command, machine, date
and versions, and the learning-curve plot of the largest store beside it.

The filled stores are kept in `cache_dir` (outside the work tree) and reused by later rounds;
a store whose fill did not complete is filled again.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dsbench import contract
from dsbench.config import DownsampleConfig, HeadConfig, TrainConfig, TrainerConfig, flatten
from dsbench.contract import PARENT_RUN, SWEEP_ROLE, Metric, Tag, shifted_accuracy, tag_column
from dsbench.model.downsample import STRATEGIES
from dsbench.provenance import produced_by
from dsbench.tracking.recorder import job_tags, run_name

EXPERIMENT = "scale"
FILLED = "dsbench.filled"  # experiment tag: the number of runs, set once the fill completed
HEADS = ("flatten", "gap")
FINAL_METRICS = (
    *contract.FINAL_METRICS,
    Metric.STILL_IMPROVING,
    *(shifted_accuracy(k) for k in range(5)),
)


def job(i: int, epochs: int) -> TrainConfig:
    """Run i of the grid: every strategy × head, then the next seed."""
    groups = [(d, h) for d in STRATEGIES for h in HEADS]
    downsample, head = groups[i % len(groups)]
    return TrainConfig(
        downsample=DownsampleConfig(downsample),
        head=HeadConfig(head),
        trainer=TrainerConfig(seed=i // len(groups), epochs=epochs),
    )


def run_metrics(i: int, cfg: TrainConfig, rng: np.random.Generator) -> list[Any]:
    """Plausible numbers: a validation curve rising to a group's plateau, and noise."""
    from mlflow import entities

    now = int(time.time() * 1000)
    group = list(STRATEGIES).index(cfg.downsample.name) * len(HEADS) + HEADS.index(cfg.head.name)
    plateau = 0.90 + 0.003 * group  # below 0.99 for the 30 groups: an error stays in (0, 1)
    epochs = cfg.trainer.epochs
    metrics = []
    for epoch in range(1, epochs + 1):
        acc = plateau - (plateau - 0.1) * math.exp(-epoch / 4) + rng.normal(0, 0.005)
        values = {
            Metric.LOSS: 2.3 * (1 - acc) + 0.05,
            Metric.ACCURACY: acc + 0.01,
            Metric.VAL_LOSS: 2.3 * (1 - acc) + 0.1,
            Metric.VAL_ACCURACY: acc,
            Metric.LR: 1e-3,
            Metric.EPOCH_SECONDS: 20 + rng.normal(0, 1),
            Metric.TRAIN_IMAGES_PER_SEC: 2700 + rng.normal(0, 50),
        }
        metrics += [entities.Metric(k, float(v), now, epoch) for k, v in values.items()]
    finals = {name: float(rng.uniform(0, 1)) for name in FINAL_METRICS}
    finals[Metric.TEST_ERROR] = 1 - plateau + rng.normal(0, 0.003)
    finals[Metric.STILL_IMPROVING] = float(rng.uniform(0, 1) < 0.2)
    metrics += [entities.Metric(k, v, now, 0) for k, v in finals.items()]
    return metrics


def split_inputs() -> list[Any]:
    """The training, validation and test splits of MNIST as a real run logs them (MLflow
    dataset inputs with a digest and the split's description as profile)."""
    from mlflow.entities import DatasetInput, InputTag

    from dsbench.data.splits import CONTEXTS, SplitRecord
    from dsbench.tracking.logged import split_dataset

    inputs = []
    for i, context in enumerate(CONTEXTS):
        record = SplitRecord(context, 1000, f"{i:016x}", {"dataset": "mnist", "split": context})
        dataset = split_dataset(record, "https://storage.googleapis.com/cvdf-datasets/mnist/")
        tag = InputTag("mlflow.data.context", context)
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), [tag]))
    return inputs


def fill(uri: str, runs: int, epochs: int, workers: int) -> None:
    """`runs` FINISHED job runs of one sweep in experiment EXPERIMENT, unless already there."""
    from mlflow import MlflowClient
    from mlflow.entities import Param, RunTag

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(EXPERIMENT)
    active = found is not None and found.lifecycle_stage == "active"
    if active and found.tags.get(FILLED) == str(runs):
        return
    if found is not None:  # an interrupted fill: set aside (renamed, then deleted), start again
        if found.lifecycle_stage == "deleted":  # set aside by a fill that stopped there
            client.restore_experiment(found.experiment_id)
        client.rename_experiment(found.experiment_id, f"{EXPERIMENT}-interrupted-{time.time():.0f}")
        client.delete_experiment(found.experiment_id)
    experiment = client.create_experiment(EXPERIMENT)
    splits = split_inputs()
    parent = client.create_run(experiment, run_name="sweep scale", tags={Tag.ROLE: SWEEP_ROLE})
    parent_id = parent.info.run_id

    def one(i: int) -> None:
        cfg = job(i, epochs)
        where = {Tag.DEVICE: "CPU:0", Tag.GIT_COMMIT: "scale", Tag.DATA_SOURCE: "archive"}
        tags = {**job_tags(cfg), **where, PARENT_RUN: parent_id}
        run = client.create_run(experiment, run_name=run_name(cfg), tags=tags)
        params = [Param(k, str(v)) for k, v in flatten(cfg).items()]
        metrics = run_metrics(i, cfg, np.random.default_rng(i))
        client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=[RunTag("x", "y")])
        # Its three splits as inputs, as a real run logs them (the same three for every run).
        client.log_inputs(run.info.run_id, datasets=splits)
        client.set_terminated(run.info.run_id, "FINISHED")

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for done, _ in enumerate(pool.map(one, range(runs)), start=1):
            if done % 1000 == 0:
                rate = done / (time.perf_counter() - started)
                print(f"  {uri}: {done:,}/{runs:,} runs ({rate:.0f}/s)", flush=True)
    client.set_terminated(parent_id, "FINISHED")
    client.set_experiment_tag(experiment, FILLED, str(runs))


def analyze_once(uri: str, out_dir: Path) -> tuple[float, float]:
    """The whole `dsbench analyze` in a fresh process: (seconds, peak RSS MiB)."""
    command = [
        sys.executable,
        "-m",
        "dsbench",
        "analyze",
        f"tracking.experiment={EXPERIMENT}",
        f"tracking.uri={uri}",
        f"out_dir={out_dir}",
        "log_to_sweep=false",
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KiB


def timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def history_reads(uri: str, ids: list[str], per_run: bool) -> dict[str, float]:
    """Seconds to read the val_accuracy history of the runs `ids`: in bulk, and (`per_run`)
    with one call per run."""
    from mlflow import MlflowClient

    from dsbench.analysis.load import histories

    client = MlflowClient(tracking_uri=uri)
    one_by_one = (
        timed(lambda: [client.get_metric_history(r, Metric.VAL_ACCURACY) for r in ids])
        if per_run
        else math.nan
    )
    return {"per_run": one_by_one, "bulk": timed(lambda: histories(uri, ids, Metric.VAL_ACCURACY))}


def job_ids(uri: str) -> list[str]:
    """The job runs of a SQL store's EXPERIMENT (not its sweep parent)."""
    from dsbench.analysis.load import search

    runs = search(uri, EXPERIMENT)
    return list(runs.loc[runs[tag_column(Tag.DOWNSAMPLE)].notna(), "run_id"])


def resume_lookup(uri: str) -> float:
    """Seconds of the resume lookup (dsbench.tracking.resume.finished_run) of one job."""
    from dsbench.tracking.resume import finished_run

    cfg = job(7, 50)
    cfg.tracking.uri, cfg.tracking.experiment = uri, EXPERIMENT
    finished_run(cfg)  # the first call opens the store
    return timed(lambda: finished_run(cfg))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,10000", help="runs per store")
    parser.add_argument("--server-sizes", default="1000,10000")
    parser.add_argument("--postgres-sizes", default="1000,10000")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--cache-dir", type=Path, default=Path("/var/tmp/dsbench/analysis-scale"))
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    server_sizes = [int(s) for s in args.server_sizes.split(",") if s]
    pg_sizes = [int(s) for s in args.postgres_sizes.split(",") if s]
    cache = args.cache_dir / f"epochs{args.epochs}"
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dsbench-analysis-scale-"))
    rows: list[dict[str, Any]] = []

    def measure(store: str, runs: int, uri: str, ids: list[str], smallest: int) -> None:
        seconds, rss = analyze_once(uri, work / f"{store}-{runs}")
        # One call per run: minutes at 10,000 runs over HTTP; measured at the smallest size.
        reads = history_reads(uri, ids, per_run=runs == smallest)
        rows.append(
            {
                "store": store,
                "runs": runs,
                "analyze_s": seconds,
                "peak_rss_mib": rss,
                "history_per_run_s": reads["per_run"],
                "history_bulk_s": reads["bulk"],
                "resume_lookup_ms": 1000 * resume_lookup(uri),
            }
        )
        print(
            f"{store} {runs:,} runs: analyze {seconds:.1f} s, peak RSS {rss:,.0f} MiB", flush=True
        )

    from devtools.mlflow_ui import mlflow_ui

    for runs in sizes:
        uri = f"sqlite:///{cache / f'sqlite-{runs}.db'}"
        fill(uri, runs, args.epochs, workers=1)  # sqlite writes one at a time anyway
        ids = job_ids(uri)
        measure("sqlite", runs, uri, ids, min(sizes))
        if runs in server_sizes:
            with mlflow_ui(uri, work / "server.log") as base:
                measure("server", runs, base, ids, min(server_sizes))  # the same file, over HTTP
    if pg_sizes:
        from devtools.postgres import postgres

        databases = tuple(f"scale_{n}" for n in pg_sizes)
        with postgres(databases, folder=cache / "postgres") as base:
            for runs in pg_sizes:
                uri = f"{base}/scale_{runs}"
                fill(uri, runs, args.epochs, workers=4)
                measure("postgresql", runs, uri, job_ids(uri), min(pg_sizes))

    largest = max(sizes)
    plot = args.out / "analysis-scale-learning-curves.png"
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(work / f"sqlite-{largest}" / "plots" / "learning_curves.png", plot)
    command = "`python -m devtools.analysis_scale " + " ".join(sys.argv[1:]) + "`"
    write(rows, args.out / "analysis-scale.md", command, args.epochs, plot.name)
    shutil.rmtree(work, ignore_errors=True)


def write(rows: list[dict[str, Any]], path: Path, command: str, epochs: int, plot: str) -> None:
    import pandas as pd

    table = pd.DataFrame(rows)
    first = table.groupby("store")["analyze_s"].transform("first")
    runs0 = table.groupby("store")["runs"].transform("first")
    table["growth"] = table["analyze_s"] / first
    table["runs_ratio"] = table["runs"] / runs0
    shown = table.assign(
        analyze_s=table["analyze_s"].round(1),
        peak_rss_mib=table["peak_rss_mib"].round(0).astype(int),
        history_per_run_s=table["history_per_run_s"]
        .round(2)
        .astype(object)
        .where(table["history_per_run_s"].notna(), "–"),
        history_bulk_s=table["history_bulk_s"].round(2),
        resume_lookup_ms=table["resume_lookup_ms"].round(1),
        growth=table["growth"].round(2),
        runs_ratio=table["runs_ratio"].round(0).astype(int),
    )
    text = "\n".join(
        [
            "# Analysis at scale: `dsbench analyze` on 1,000 to 10,000 runs",
            "",
            produced_by(command, "mlflow", "pandas", "matplotlib", "sqlalchemy"),
            "",
            "`sqlite`: the store file; `server`: the same file behind `mlflow ui` (HTTP, on "
            "127.0.0.1); `postgresql`: the same runs in PostgreSQL on 127.0.0.1. "
            f"Each store holds one experiment of N FINISHED job runs shaped like the suite's "
            f"({len(STRATEGIES)} strategies × {len(HEADS)} heads × "
            f"N/{len(STRATEGIES) * len(HEADS)} seeds; the suite's tags and params; 7 metrics "
            f"per epoch over {epochs} epochs; the final metrics) under one sweep parent, filled "
            "with MLflow's client (`log_batch`). `analyze_s`: wall time of the whole "
            "`dsbench analyze` in a fresh process (tables in four formats, four "
            "plots, the dashboard; `log_to_sweep=false`), start-up included; `peak_rss_mib`: "
            "its peak resident memory. `growth`: analyze_s over the same store's smallest "
            "size (`runs_ratio` times more runs). `history_*_s`: reading every run's "
            "val_accuracy history with one `get_metric_history` call per run, and in bulk "
            "(`dsbench.analysis.load.histories`: one SQL query per 100 runs, or the tracking "
            "server's bulk-history endpoint); one call per run is measured at each store's "
            "smallest size only (–: not measured). `resume_lookup_ms`: one job's resume lookup "
            "(the `config_hash` tag search).",
            "",
            shown.to_markdown(index=False),
            "",
            f"The learning-curve plot of the largest sqlite store: [{plot}]({plot}).",
            "",
        ]
    )
    path.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
