"""A study's runs as tables, plots and a dashboard: `python -m dsbench.analyze experiment=<name>`.

Writes comparison.{md,csv,tex,html}, plots/ and dashboard.html into `out_dir`
(results/<experiment> by default) and logs them to the sweep's parent run
(dsbench.analysis.report). Imports neither TensorFlow nor Keras.
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
        out = Path(checked.out_dir)
        table = analyze(
            checked.experiment,
            checked.tracking.uri,
            out,
            checked.filter,
            checked.sweep,
            checked.log_to_sweep,
        )
        print(f"{len(table)} groups → {out}/comparison.{{md,csv,tex,html}}, plots/, dashboard.html")


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
