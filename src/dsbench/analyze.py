"""A study's runs as tables, plots and a dashboard: `dsbench analyze experiments=<study>`.

    dsbench analyze experiments=mnist_downsampling          # as it was trained
    dsbench analyze experiments=mnist_downsampling dataset=fashion_mnist
    dsbench analyze tracking.experiment=my-runs sweep_run=latest
    dsbench analyze experiments=mnist_downsampling "filter='tags.head = \"gap\"'"

The study is named as `dsbench train` named it; bare, the experiment of ad-hoc runs.
Keys: filter (an MLflow filter), sweep_run ("": every run; latest; or a parent run id), out_dir
(results/<experiment> by default), log_to_sweep (also log the tables to the sweep's parent
run). Writes comparison.{md,csv,tex,html}, plots/ and dashboard.html (dsbench.analysis.report).
Imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from dsbench import cli, config

config.register()


@hydra.main(version_base="1.3", config_path=config.CONFIG_PATH, config_name="analyze")
def _app(cfg: DictConfig) -> None:
    from dsbench.analysis.report import analyze

    with cli.exit_on_bad_input():
        checked = config.validate(cfg, config.AnalyzeConfig)
        out = Path(checked.out)
        table = analyze(
            checked.tracking.experiment,
            checked.tracking.uri,
            out,
            checked.filter,
            checked.sweep_run,
            checked.log_to_sweep,
        )
        print(f"{len(table)} groups → {out}/comparison.{{md,csv,tex,html}}, plots/, dashboard.html")


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
