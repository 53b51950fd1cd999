"""A study's runs as one comparison table: grouped, mean ± std and n, in four formats.

Groups are dataset × model × downsample × head (and any param that varies inside one, see
`dsbench.analysis.load.group_keys`); each metric is the mean ± std over the group's seeds.
pandas only.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import NamedTuple

import pandas as pd

from dsbench.analysis.load import group_keys, table_keys
from dsbench.analysis.significance import BASELINE, LEVEL, versus_baseline
from dsbench.contract import RUN_NAME, Metric, Tag, metric_column, tag_column
from dsbench.errors import DsbenchError

Column = tuple[str, float, bool]  # title, scale, lower is better
# metric → column; mean ± std over seeds for each. Between the accuracy and the cost
# columns come the accuracies under every shift the runs evaluated (`shift_columns`).
ACCURACY: dict[str, Column] = {
    Metric.TEST_ERROR: ("test error %", 100, True),
    Metric.SHIFT_CONSISTENCY: ("shift consistency, zero fill %", 100, False),
    Metric.CIRCULAR_SHIFT_CONSISTENCY: ("circular-shift consistency %", 100, False),
}
COST: dict[str, Column] = {
    Metric.PARAMS_TOTAL: ("params", 1, True),
    Metric.FLOPS_PER_IMAGE: ("MFLOPs", 1e-6, True),
    # The epochs after the first (which holds compilation), and inference after a warm-up.
    Metric.STEADY_IMAGES_PER_SEC: ("train img/s", 1, False),
    Metric.INFERENCE_IMAGES_PER_SEC: ("infer img/s", 1, False),
    Metric.TOTAL_TRAIN_SECONDS: ("train s", 1, True),  # every epoch, compilation included
    Metric.STOPPED_EPOCH: ("epochs", 1, True),  # trained, early stopping or not
}
SHIFT = re.compile(re.escape(Metric.SHIFTED_ACCURACY_PREFIX) + r"(\d+)")


def shift_columns(names: list[str]) -> dict[str, Column]:
    """A column for each `test_accuracy_shift{k}`, k ≥ 1, among `names`, by k."""
    found = sorted((int(m[1]), m[0]) for m in map(SHIFT.fullmatch, names) if m and int(m[1]) > 0)
    return {name: (f"acc. shift {k} px %", 100, False) for k, name in found}


def columns(names: list[str]) -> dict[str, Column]:
    """The table's columns, in order, for the metrics among `names`."""
    every = {**ACCURACY, **shift_columns(names), **COST}
    return {m: c for m, c in every.items() if m in names}


# What a metric's values are in comparison.csv (as logged: fractions, not %), where the
# Markdown, LaTeX and HTML tables scale them (ACCURACY, COST: their titles).
UNITS = {
    Metric.TEST_ERROR: "fraction of the test set (0-1)",
    Metric.SHIFT_CONSISTENCY: "fraction of the test images (0-1)",
    Metric.CIRCULAR_SHIFT_CONSISTENCY: "fraction of the test images (0-1)",
    Metric.PARAMS_TOTAL: "parameters",
    Metric.FLOPS_PER_IMAGE: "FLOPs per image (multiply-adds × 2)",
    Metric.STEADY_IMAGES_PER_SEC: "training images per second",
    Metric.INFERENCE_IMAGES_PER_SEC: "test images per second",
    Metric.TOTAL_TRAIN_SECONDS: "seconds",
    Metric.STOPPED_EPOCH: "epochs",
}
DIFFERENCE_UNIT = "difference of test error fractions (×100: percentage points)"


def column_units(table: pd.DataFrame) -> pd.DataFrame:
    """comparison.csv's data dictionary: each column, its unit, and how the other formats
    show it (comparison.columns.csv)."""
    rows = []
    shown = columns([c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")])
    for column in table.columns:
        metric, _, stat = column.rpartition("_")
        if column in table_keys(table):
            unit, shown_as = "name", column.removeprefix("params.")
        elif column == "seeds":
            unit, shown_as = "finished runs in the group", "seeds"
        elif stat in ("mean", "std") and (metric in UNITS or SHIFT.fullmatch(metric)):
            unit = UNITS.get(metric, "fraction of the test set (0-1)")
            title, scale, _ = shown.get(metric, (f"accuracy, {metric} (not shown)", 1, False))
            shown_as = f"{title} ({stat}, ×{scale:g})" if scale != 1 else f"{title} ({stat})"
        elif column == "vs_max_p":
            unit, shown_as = "p-value of Welch's t-test", "p"
        elif column == "vs_max_significant":
            unit, shown_as = "true or false", "* after the interval"
        else:  # vs_max_diff, vs_max_ci_low, vs_max_ci_high
            unit, shown_as = DIFFERENCE_UNIT, VERSUS_TITLE
        rows.append({"column": column, "unit": unit, "in the tables": shown_as})
    return pd.DataFrame(rows)


def comparison(runs: pd.DataFrame) -> pd.DataFrame:
    """mean, std and n per group of FINISHED runs; sorted by mean test error.

    Every `test_accuracy_shift{k}` is aggregated, k = 0 (clean) too: the shift plot uses
    them all, the table shows k ≥ 1.
    """
    done = runs[runs["status"] == "FINISHED"]
    if done.empty or metric_column(Metric.TEST_ERROR) not in done:
        raise DsbenchError(
            f"none of the {len(runs)} runs finished with a test error; "
            f"statuses: {', '.join(sorted(set(runs['status'])))}"
        )
    prefix = metric_column("")
    logged = [c.removeprefix(prefix) for c in done.columns if c.startswith(prefix)]
    shown = columns(logged)
    metrics = [*shown, *sorted(m for m in logged if SHIFT.fullmatch(m) and m not in shown)]
    keys = group_keys(done)
    grouped = done.groupby(keys, dropna=False)[[metric_column(m) for m in metrics]]
    table = grouped.agg(["mean", "std"])
    table.columns = [f"{m.removeprefix(prefix)}_{stat}" for m, stat in table.columns]
    table["seeds"] = done.groupby(keys, dropna=False).size()
    table = table.reset_index().merge(versus_baseline(done, keys), on=keys, how="left")
    return table.sort_values(f"{Metric.TEST_ERROR}_mean", kind="stable").reset_index(drop=True)


class Markup(NamedTuple):
    """How one output format writes bold, ± and escaped text."""

    bold: str  # a format string with {}
    pm: str
    escape: Callable[[str], str]

    def text(self, value: object) -> str:
        return self.escape(str(value))


def _latex_escape(s: str) -> str:
    return s.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%")


MARKDOWN = Markup("**{}**", " ± ", str)
HTML = Markup("<b>{}</b>", " ± ", html.escape)
LATEX = Markup(r"\textbf{{{}}}", r" $\pm$ ", _latex_escape)


def display(table: pd.DataFrame, markup: Markup) -> pd.DataFrame:
    """The table as text cells: mean ± std (std only with 2+ seeds), the best in bold (where
    the column differs between rows: a constant column has no best)."""
    shown = columns([c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")])
    best = {
        m: table[f"{m}_mean"].min() if lower else table[f"{m}_mean"].max()
        for m, (_, _, lower) in shown.items()
    }
    keys = table_keys(table)
    out = pd.DataFrame(
        {markup.text(k.removeprefix("params.")): table[k].map(markup.text) for k in keys}
    )
    out["seeds"] = table["seeds"].astype(int).astype(str)
    for m, (title, scale, _) in shown.items():
        cells = []
        for mean_raw, std_raw in zip(table[f"{m}_mean"], table[f"{m}_std"], strict=True):
            if pd.isna(mean_raw):  # not logged by this group's runs
                cells.append("–")
                continue
            mean, std = mean_raw * scale, std_raw * scale
            digits = 0 if abs(mean) >= 1000 else 2
            cell = f"{mean:,.{digits}f}" + (
                "" if pd.isna(std) or std == 0 else f"{markup.pm}{std:,.{digits}f}"
            )
            varies = table[f"{m}_mean"].nunique() > 1  # one row, or all equal: nothing to compare
            is_best = varies and mean_raw == best[m]
            cells.append(markup.bold.format(cell) if is_best else cell)
        out[markup.text(title)] = cells
        if m == Metric.TEST_ERROR and "vs_max_diff" in table:
            out[markup.text(VERSUS_TITLE)], out["p"] = versus_columns(table, markup)
    return out


VERSUS_TITLE = f"vs {BASELINE}, pp [{100 * LEVEL:.0f} % CI]"


def versus_columns(table: pd.DataFrame, markup: Markup) -> tuple[list[str], list[str]]:
    """The difference from max pooling in percentage points with its interval, * where the
    interval excludes 0, and p; "reference" on max's own rows, – where there is nothing."""
    cells, ps = [], []
    for _, row in table.iterrows():
        if row[Tag.DOWNSAMPLE] == BASELINE:
            cells.append("reference")
            ps.append("")
            continue
        if pd.isna(row["vs_max_diff"]):
            cells.append("–")
            ps.append("–")
            continue
        cell = f"{100 * row['vs_max_diff']:+.2f}"
        if not pd.isna(row["vs_max_ci_low"]):
            low, high = (f"{100 * row[c]:+.2f}" for c in ("vs_max_ci_low", "vs_max_ci_high"))
            cell += f" [{low}, {high}]" + ("*" if row["vs_max_significant"] else "")
        cells.append(markup.escape(cell))
        p = row["vs_max_p"]
        ps.append("–" if pd.isna(p) else "< 0.001" if p < 0.001 else f"{p:.3f}")
    return cells, ps


def to_markdown(table: pd.DataFrame) -> str:
    cells = display(table, MARKDOWN)
    lines = ["| " + " | ".join(cells.columns) + " |", "|" + "---|" * len(cells.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame) -> str:
    return display(table, LATEX).to_latex(index=False, escape=False)


def to_html(table: pd.DataFrame) -> str:
    return display(table, HTML).to_html(index=False, escape=False, border=0, classes="comparison")


def not_finished(runs: pd.DataFrame) -> list[str]:
    """One line per run that did not finish: name, status and failure reason."""
    lines = []
    for _, r in runs[runs["status"] != "FINISHED"].iterrows():
        reason = r.get(tag_column(Tag.FAILURE_REASON))
        lines.append(
            f"{r[tag_column(RUN_NAME)]}: {r['status']}"
            + (f" ({reason})" if isinstance(reason, str) else "")
        )
    return lines


def terminal_summary(table: pd.DataFrame) -> str:
    """A comparison table in a few aligned lines for the terminal: the keys that vary,
    test error (mean ± std, %) and seeds, best first."""
    keys = [k for k in table_keys(table) if table[k].nunique(dropna=False) > 1] or ["downsample"]
    names = [k.removeprefix("params.") for k in keys]
    rows = [[*names, "test error", "n"]]
    for _, row in table.iterrows():
        mean, std = 100 * row[f"{Metric.TEST_ERROR}_mean"], 100 * row[f"{Metric.TEST_ERROR}_std"]
        error = f"{mean:.2f} %" if std != std else f"{mean:.2f} ± {std:.2f} %"
        rows.append([*(str(row[k]) for k in keys), error, str(int(row["seeds"]))])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
