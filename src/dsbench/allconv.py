"""The Springenberg 2015 study's table: `python -m dsbench.allconv --experiment NAME`.

    python -m dsbench.allconv --experiment springenberg2015-cifar10 [--uri URI] [--out FILE]
    python -m dsbench.allconv --experiment E --seeds 1,2 -- experiments=... [overrides] | sh

lr chosen per model on validation, test error for it, beside the paper's Table 3
(dsbench.studies.springenberg2015). Reads MLflow only (no Keras). With --seeds it prints,
instead, the commands that train more seeds of each model at its chosen lr: the second
stage of the protocol (the grid with one seed, then the chosen lr with more).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from dsbench import cli
from dsbench.analysis.load import load_runs
from dsbench.config import default_store_uri
from dsbench.errors import DsbenchError
from dsbench.studies import springenberg2015 as study


def study_runs(uri: str, experiment: str) -> pd.DataFrame:
    """The study's FINISHED and diverged runs (`study_frame`)."""
    found = study.study_frame(load_runs(uri, experiment))
    if found.empty:
        raise DsbenchError(f"experiment {experiment!r} at {uri} has no Springenberg 2015 runs")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="springenberg2015-cifar10")
    parser.add_argument("--uri", default=default_store_uri())
    parser.add_argument("--out", help="also write the Markdown table to this file")
    parser.add_argument("--seeds", help="print the commands that train these seeds (e.g. 1,2)")
    parser.add_argument("overrides", nargs="*", help="with --seeds, after --: the grid's own")
    args = parser.parse_args(argv)
    try:
        if args.seeds is None and args.overrides:
            raise DsbenchError("train overrides after -- go with --seeds (the commands it prints)")
        if args.seeds is not None:
            study.check_second_stage(args.seeds, args.overrides)
            if args.out:
                raise DsbenchError("--out writes the table; --seeds prints commands: use one")
        runs = study_runs(args.uri, args.experiment)
        if args.seeds is not None:
            table = study.selected(runs)
            lines = study.seed_commands(
                table, args.experiment, args.uri, args.seeds, args.overrides
            )
            print("\n".join(lines))
            return
        text = study.report(runs)
    except DsbenchError as e:
        cli.fail_on(e)
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
