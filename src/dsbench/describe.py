"""Build a model without training and show its shapes, parameters and FLOPs.

    dsbench describe model=convnet downsample=max head=flatten
    dsbench describe downsample=strided output=json

Predicted shapes and parameters (the floor((n − k + 2p)/s) + 1 formula, dsbench.model) are
checked against Keras' (dsbench.frameworks.summary).
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from dsbench import cli, config
from dsbench.training.backend import select_backend
from dsbench.training.job import make_job

config.register()


@hydra.main(version_base="1.3", config_path=config.CONFIG_PATH, config_name="describe")
def _app(cfg: DictConfig) -> None:
    with cli.exit_on_bad_input():
        # Bad names and geometry stop before Keras is imported; the store is not used.
        job = make_job(cfg, config.DescribeConfig, store=False)
        select_backend(job.cfg.trainer.backend)
        from dsbench.frameworks.summary import as_text, describe

        d = describe(job.cfg)
    print(json.dumps(d) if job.cfg.output == "json" else as_text(d))


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
