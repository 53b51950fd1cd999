"""The Springenberg 2015 study's table: `python -m dsbench.allconv --experiment NAME`.

    python -m dsbench.allconv --experiment springenberg2015-cifar10 [--uri URI] [--out FILE]

lr chosen per model on validation, test error for it, beside the paper's Table 3
(dsbench.studies.springenberg2015). Reads MLflow only (no Keras).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from dsbench import cli
from dsbench.analysis.runs import load_runs
from dsbench.config import default_store_uri
from dsbench.errors import DsbenchError
from dsbench.studies.springenberg2015 import selected, to_markdown


def study_runs(uri: str, experiment: str) -> pd.DataFrame:
    """The study's finished job runs, with the paper's error as a number."""
    found = load_runs(uri, experiment, "attributes.status = 'FINISHED'")
    return found.assign(paper_error=pd.to_numeric(found.get("tags.paper_error"), errors="coerce"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="springenberg2015-cifar10")
    parser.add_argument("--uri", default=default_store_uri())
    parser.add_argument("--out", help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    try:
        text = to_markdown(selected(study_runs(args.uri, args.experiment)))
    except DsbenchError as e:
        cli.fail_on(e)
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
