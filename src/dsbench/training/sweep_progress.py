"""A sweep's progress on the terminal: `[k/N] <run name>` as each job starts, with the time
elapsed since the sweep started and an estimate of the time left.

The estimate: the mean time of the jobs that trained so far (reused ones do not count),
times the jobs not finished yet, divided by the jobs that run at once (the launcher's
n_jobs). Jobs run in worker processes (the default launcher), so they share what they know
through files in the sweep's folder: the sweep's start and size, and one file per finished
job with its time.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dsbench.cli import remove_empty_parents
from dsbench.config import validate
from dsbench.tracking.recorder import run_name
from dsbench.training.run import duration
from dsbench.training.sweep_check import sweep_jobs

PROGRESS = ".progress"  # in a sweep's folder: sweep.json and done/<job number>.json


def estimate_left(durations: list[float], finished: int, total: int, at_once: int) -> float:
    """Seconds left: the jobs' mean time × the jobs not finished ÷ the jobs at once."""
    if not durations:
        return float("nan")
    return sum(durations) / len(durations) * (total - finished) / max(at_once, 1)


def progress_line(k: int, name: str, folder: Path) -> str:
    """`[k/N] name  (12 min 03 s elapsed, ~40 min 10 s left)` from the sweep's files."""
    sweep = json.loads((folder / "sweep.json").read_text())
    total = sweep["size"]
    done = [json.loads(p.read_text()) for p in sorted((folder / "done").glob("*.json"))]
    trained = [d["seconds"] for d in done if not d["reused"]]
    elapsed = time.time() - sweep["start"]
    where = f"[{k}/{total}]" if total else f"[{k}]"
    timing = f"{duration(elapsed)} elapsed"
    if total:
        left = estimate_left(trained, len(done), total, sweep["at_once"])
        timing += ", time left after the first job" if left != left else f", ~{duration(left)} left"
    return f"{where} {name}  ({timing})"


class SweepProgress(Callback):
    """Hydra callback: the sweep's size and start (main process), each job's line and time
    (the job's process)."""

    started: float = 0.0
    reused: bool = False  # set by the training app when the job's run FINISHED before

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        jobs = sweep_jobs(config)
        folder = Path(config.hydra.sweep.dir) / PROGRESS
        (folder / "done").mkdir(parents=True, exist_ok=True)
        at_once = config.hydra.launcher.get("n_jobs") or 1
        sweep = {"start": time.time(), "size": len(jobs) if jobs else None, "at_once": at_once}
        (folder / "sweep.json").write_text(json.dumps(sweep))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(config.hydra.sweep.dir)
        if config.get("dry_run"):  # a dry run writes nothing: its sweep folder goes too
            size = json.loads((folder / PROGRESS / "sweep.json").read_text())["size"]
            shutil.rmtree(folder, ignore_errors=True)
            remove_empty_parents(folder)
            estimate = config.sweep.get("estimate") or "not measured (the study states none)"
            print(
                f"{size or 'the'} jobs checked (dry run): nothing trained or written; the "
                f"study's time where it was measured: {estimate}",
                flush=True,
            )
        else:
            shutil.rmtree(folder / PROGRESS, ignore_errors=True)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get()
        if hydra.mode.name != "MULTIRUN":
            return
        SweepProgress.started, SweepProgress.reused = time.time(), False
        folder = Path(hydra.sweep.dir) / PROGRESS
        if not (folder / "sweep.json").is_file():
            return
        job = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        try:
            name = run_name(validate(job))
        except Exception:  # bad input: the job reports it
            name = " ".join(hydra.overrides.task)
        print(progress_line(hydra.job.num + 1, name, folder), flush=True)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get()
        folder = Path(hydra.sweep.dir) / PROGRESS / "done"
        if hydra.mode.name != "MULTIRUN" or not folder.is_dir():
            return
        seconds = time.time() - SweepProgress.started
        record = {"seconds": seconds, "reused": SweepProgress.reused}
        (folder / f"{hydra.job.num}.json").write_text(json.dumps(record))
