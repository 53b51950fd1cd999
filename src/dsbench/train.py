"""One training run: `python -m dsbench.train [overrides]` (also `dsbench-train`).

    python -m dsbench.train downsample=avg head=gap trainer.epochs=3
    python -m dsbench.train -m experiments=mnist_downsampling     # a sweep

The Hydra app: check the config, skip a job that already FINISHED (resume), train
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
from dsbench.errors import DsbenchError
from dsbench.tracking.resume import finished_run
from dsbench.tracking.runs import in_sweep, record_failure, run_name
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
        preflight(checked)  # names and geometry, before the store is read
        if checked.tracking.enabled and checked.tracking.resume:
            done = finished_run(checked)
            if done is not None:
                print(
                    f"dsbench: skipped {run_name(checked)}: already FINISHED as run "
                    f"{done.info.run_id} (tracking.resume=false trains it again)",
                    file=sys.stderr,
                    flush=True,
                )
                return done.data.metrics.get("test_accuracy", float("nan"))
        if not in_sweep():
            return train(checked, output_dir)["test_accuracy"]
        try:
            return train(checked, output_dir)["test_accuracy"]
        except DsbenchError:
            raise
        except Exception as e:
            # Its run is marked FAILED with the reason (one is made if it had none yet), so
            # the sweep counts it and the analysis lists it; the sweep goes on.
            record_failure(checked, e)
            log.error("job failed (%s: %s); the sweep goes on", type(e).__name__, e)
            return float("nan")


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
