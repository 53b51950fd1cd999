"""One training run: `python -m dsbench.train [overrides]` (also `dsbench-train`).

    python -m dsbench.train downsample=avg head=gap trainer.epochs=3
    python -m dsbench.train -m experiments=mnist_downsampling     # a sweep

The Hydra app: check the config, skip a job that already FINISHED or diverged (resume), train
(dsbench.training.run), and in a sweep record a failed job and go on.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dsbench import cli, config
from dsbench.errors import DsbenchError, ExternalError
from dsbench.tracking.resume import finished_run, skipped
from dsbench.tracking.runs import in_sweep, record_failure
from dsbench.tracking.store import bound_retries, check_store
from dsbench.tracking.sweep import state as sweep_state
from dsbench.training.run import dry_run, preflight, train

log = logging.getLogger(__name__)
config.register()


@hydra.main(version_base="1.3", config_path=config.CONFIG_PATH, config_name="train")
def _app(cfg: DictConfig) -> float:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    with cli.exit_on_bad_input():  # bad input: one line, exit 2; in a sweep, the sweep stops
        checked = config.validate(cfg)
        if checked.dry_run:
            dry_run(checked)
            return 0.0
        preflight(checked)  # names, geometry and sizes, before the store is read
        if not in_sweep():
            return _job(checked, output_dir)
        try:
            return _job(checked, output_dir)
        except DsbenchError as e:
            if not isinstance(e, ExternalError):
                raise
            failure: Exception = e  # a download, the store: not the input; the sweep goes on
        except Exception as e:
            failure = e
        # Its run is marked FAILED with the reason (one is made if it had none yet), so the
        # sweep counts it and the analysis lists it; the sweep goes on.
        record_failure(checked, failure)
        sweep_state.job_failures += 1  # counted here too: a sweep may have no store
        log.error("job failed (%s: %s); the sweep goes on", type(failure).__name__, failure)
        return float("nan")


def _job(checked: config.TrainConfig, output_dir: Path) -> float:
    """Skip the job if it FINISHED or diverged before (resume), else train it."""
    if checked.tracking.enabled:
        bound_retries(checked.tracking.retry_seconds)
        check_store(checked.tracking.uri)  # a store that is down: seconds, not minutes
        if checked.tracking.resume and (done := finished_run(checked)) is not None:
            print(skipped(checked, done), file=sys.stderr, flush=True)
            return done.data.metrics.get("test_accuracy", float("nan"))
    return train(checked, output_dir)["test_accuracy"]


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
