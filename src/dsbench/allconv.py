"""`dsbench springenberg2015 [overrides] [out=FILE] [seeds=1,2]`: the Springenberg 2015
study's table.

    dsbench springenberg2015 experiments=springenberg2015            # CIFAR-10's runs
    dsbench springenberg2015 experiments=springenberg2015_fashion out=table.md
    dsbench springenberg2015 experiments=springenberg2015_fashion dataset.source=archive \\
        seeds=1,2 | sh                                               # the second stage

The overrides are the grid's own, as `dsbench train` took them: they name the study's
experiment and store (`tracking.experiment`, `tracking.uri`) the same way. Keys of this
command: out (also write the Markdown table there), seeds (instead of the table, print the
commands that train these seeds of each model at its chosen lr, with the same overrides:
the protocol's second stage, after the grid with one seed).

lr chosen per model on validation, test error for it, beside the paper's Table 3
(dsbench.studies.springenberg2015). Reads MLflow only (no Keras).
"""

from __future__ import annotations

import sys

import pandas as pd
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from dsbench import cli
from dsbench.analysis.report import load_study
from dsbench.config import compose_train, key_values, own_keys
from dsbench.errors import DsbenchError
from dsbench.studies import springenberg2015 as study

KEYS = ("out", "seeds")  # this command's own; every other key=value is a training override
DEFAULT_STUDY = "experiments=springenberg2015"


def study_runs(uri: str, experiment: str) -> pd.DataFrame:
    """The study's FINISHED and diverged runs (`study_frame`)."""
    runs, _ = load_study(uri, experiment)  # with still_improving, from the curves if need be
    found = study.study_frame(runs)
    if found.empty:
        raise DsbenchError(f"experiment {experiment!r} at {uri} has no Springenberg 2015 runs")
    return found


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    own, overrides = own_keys(args, KEYS)
    try:
        options = key_values(own, dict.fromkeys(KEYS), "springenberg2015")
        if options["seeds"] is not None:
            study.check_second_stage(options["seeds"], overrides)
            if options["out"]:
                raise DsbenchError("out= writes the table; seeds= prints commands: use one")
        if not any(o.startswith("experiments=") for o in overrides):
            overrides = [DEFAULT_STUDY, *overrides]
        tracking = compose_train(overrides).tracking
        runs = study_runs(tracking.uri, tracking.experiment)
        if options["seeds"] is not None:
            lines = study.seed_commands(study.selected(runs), options["seeds"], overrides)
            print("\n".join(lines))
            return
        text = study.report(runs)
    except DsbenchError as e:
        cli.fail_on(e)
    except (HydraException, OmegaConfBaseException) as e:
        cli.fail(cli.config_error_line(e))
    sys.stdout.write(text)
    if options["out"]:
        with open(options["out"], "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
