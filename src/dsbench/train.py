"""One training run, or a sweep of them: `dsbench train [overrides]` (also dsbench-train).

    dsbench train downsample=avg head=gap trainer.epochs=3
    dsbench train -m experiments=mnist_downsampling                   # a study's sweep
    dsbench train experiments=mnist_downsampling dry_run=true -m      # its jobs, untrained

Checks the job once (training.job), skips it if it FINISHED or diverged before, trains it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dsbench import cli, config
from dsbench.contract import Metric
from dsbench.errors import DsbenchError, ExternalError, stop_requested
from dsbench.tracking.recorder import in_sweep
from dsbench.tracking.resume import finished_run, reuse, skipped
from dsbench.tracking.sweep import job_failed
from dsbench.training.job import Job, dry_run_line, make_job, unused_archive_dir
from dsbench.training.run import result_line, train
from dsbench.training.sweep_progress import SweepProgress

config.register()


@hydra.main(version_base="1.3", config_path=config.CONFIG_PATH, config_name="train")
def _app(cfg: DictConfig) -> float:
    cli.end_with_the_command()  # a job in a worker of the sweep: stop when the sweep stops
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    with cli.exit_on_bad_input():  # bad input: one line, exit 2; in a sweep, the sweep stops
        try:
            job = make_job(cfg)  # config, geometry, sizes and the store: checked once
        except ExternalError as e:  # the store: not the input; a sweep goes on
            if not in_sweep():
                raise
            return job_failed(None, e)
        if note := unused_archive_dir(job, HydraConfig.get().overrides.task):
            print(note, flush=True)  # given but not needed: said, never silently ignored
        if job.cfg.dry_run:
            print(dry_run_line(job), flush=True)
            cli.discard_output_dir()  # a dry run writes nothing
            return 0.0
        if not in_sweep():
            return _run(job, output_dir)
        try:
            return _run(job, output_dir)
        except DsbenchError as e:
            if not isinstance(e, ExternalError):
                raise
            return job_failed(job.cfg, e)  # a download, the store: not the input
        except Exception as e:
            if stop_requested():  # stopped, not failed: its run ended KILLED
                raise KeyboardInterrupt from e
            return job_failed(job.cfg, e)


def _run(job: Job, output_dir: Path) -> float:
    """Skip the job if it FINISHED or diverged before (resume), else train it."""
    cfg = job.cfg
    if cfg.tracking.enabled and cfg.tracking.resume and (done := finished_run(cfg)) is not None:
        print(skipped(cfg, done, reuse(cfg, done)), file=sys.stderr, flush=True)
        SweepProgress.reused = True  # its time is no estimate of a job's
        return done.data.metrics.get(Metric.TEST_ACCURACY, float("nan"))
    final = train(job, output_dir)
    print(result_line(job.name, final), flush=True)
    return final[Metric.TEST_ACCURACY]


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
