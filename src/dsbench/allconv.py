"""The Springenberg 2015 study's table: lr chosen per model on validation, test error for it.

    python -m dsbench.allconv --experiment springenberg2015-cifar10 [--uri URI] [--out FILE]

For each model (backbone × downsample) the learning rate with the best mean final
`val_accuracy` over seeds is chosen; the table reports that lr's test error (mean ± std
over seeds, n), the paper's Table 3 error and the difference, and whether the order of the
four variants within each backbone matches the paper's. Reads MLflow only (no Keras).
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd

from dsbench import cli, runs
from dsbench.errors import DsbenchError
from dsbench.springenberg import variant


def selected(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, downsample): the lr with the best validation accuracy."""
    runs = runs.assign(lr=runs["params.trainer.lr"].astype(float))
    keys = ["dataset", "model", "downsample"]
    by_lr = runs.groupby([*keys, "lr"]).agg(
        val_accuracy=("metrics.val_accuracy", "mean"),
        test_error_mean=("metrics.test_error", "mean"),
        test_error_std=("metrics.test_error", "std"),
        seeds=("metrics.test_error", "size"),
        paper_error=("paper_error", "first"),
    )
    best = by_lr.reset_index().sort_values("val_accuracy", ascending=False)
    table = best.groupby(keys, as_index=False).first()
    table["variant"] = [
        variant(m, d) for m, d in zip(table["model"], table["downsample"], strict=True)
    ]
    for col in ("test_error_mean", "test_error_std"):
        table[col] = 100 * table[col]
    table["delta"] = table["test_error_mean"] - table["paper_error"]
    return table


def order_matches(table: pd.DataFrame) -> dict[str, bool | None]:
    """Per backbone: do our errors rank the variants as the paper's do? None: no paper numbers."""
    out: dict[str, bool | None] = {}
    for model, group in table.groupby("model"):
        g = group.dropna(subset=["paper_error"])
        if len(g) < 2:
            out[model] = None
            continue
        ours = list(g.sort_values("test_error_mean")["downsample"])
        paper = list(g.sort_values("paper_error")["downsample"])
        out[model] = ours == paper
    return out


def to_markdown(table: pd.DataFrame) -> str:
    def err(row: pd.Series) -> str:
        std = "" if row.seeds < 2 else f" ± {row.test_error_std:.2f}"
        return f"{row.test_error_mean:.2f}{std} (n={row.seeds})"

    lines = [
        "| dataset | variant | lr (best val) | test error % (ours) | paper % | delta |",
        "|---|---|---|---|---|---|",
    ]
    for _, row in table.sort_values(["dataset", "model", "downsample"]).iterrows():
        paper = "" if pd.isna(row.paper_error) else f"{row.paper_error:.2f}"
        delta = "" if pd.isna(row.delta) else f"{row.delta:+.2f}"
        lines.append(
            f"| {row.dataset} | {row.variant} | {row.lr:g} | {err(row)} | {paper} | {delta} |"
        )
    orders = order_matches(table)
    lines.append("")
    for model, ok in orders.items():
        verdict = {True: "matches", False: "differs from", None: "cannot be compared with"}[ok]
        lines.append(f"- {model}: the order of the variants {verdict} the paper's")
    return "\n".join(lines) + "\n"


def load_runs(uri: str, experiment: str) -> pd.DataFrame:
    """The study's finished job runs, with the paper's error as a number."""
    found = runs.load_runs(uri, experiment, "attributes.status = 'FINISHED'")
    return found.assign(paper_error=pd.to_numeric(found.get("tags.paper_error"), errors="coerce"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="springenberg2015-cifar10")
    parser.add_argument(
        "--uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    parser.add_argument("--out", help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    try:
        text = to_markdown(selected(load_runs(args.uri, args.experiment)))
    except DsbenchError as e:
        cli.fail(str(e))
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
