"""Build a model without training and show its shapes, parameters and FLOPs.

    python -m dsbench.describe model=convnet downsample=max head=flatten
    python -m dsbench.describe downsample=strided output=json

Predicted shapes and parameters (the floor((n − k + 2p)/s) + 1 formula, dsbench.model) are
checked against Keras' (dsbench.build.summary).
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from dsbench import cli, config
from dsbench.training.backend import select_backend
from dsbench.training.run import preflight

config.register()


@hydra.main(version_base="1.3", config_path=config.CONFIG_PATH, config_name="describe")
def _app(cfg: DictConfig) -> None:
    with cli.exit_on_bad_input():
        checked = config.validate(cfg, config.DescribeConfig)
        preflight(checked)  # bad names and geometry stop before Keras is imported
        select_backend(checked.trainer.backend)
        from dsbench.build.summary import as_text, describe

        d = describe(checked)
    print(json.dumps(d) if checked.output == "json" else as_text(d))


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
