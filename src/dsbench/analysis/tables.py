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
from dsbench.analysis.significance import (
    ALPHA,
    BASELINE,
    LEVEL,
    POWER,
    detectable,
    sampling_error,
    versus_baseline,
    welch,
)
from dsbench.contract import DIRTY, RUN_NAME, Metric, Tag, metric_column, tag_column
from dsbench.data.registry import get_info
from dsbench.errors import DsbenchError
from dsbench.model.downsample import capacity_class
from dsbench.provenance import short_commit
from dsbench.training.plateau import RULE

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
COUNTS = {  # column → (unit, title)
    "seeds": ("finished runs in the group", "seeds"),
    Metric.STILL_IMPROVING: (
        "of the seeds, runs still improving at the end (training.plateau)",
        "still improving",
    ),
    "plateau_known": ("of the seeds, runs with a validation split to tell", "(in still improving)"),
    "dirty": ("of the seeds, runs from code with uncommitted changes", "uncommitted"),
}
RATIOS = {  # column → (unit, title)
    "params_vs_max": ("params ÷ max pooling's in the same backbone and head", "params ×max"),
    "flops_vs_max": ("FLOPs ÷ max pooling's in the same backbone and head", "FLOPs ×max"),
}


def column_units(table: pd.DataFrame) -> pd.DataFrame:
    """comparison.csv's data dictionary: each column, its unit, and how the other formats
    show it (comparison.columns.csv)."""
    rows = []
    shown = columns([c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")])
    for column in table.columns:
        metric, _, stat = column.rpartition("_")
        if column in table_keys(table):
            unit, shown_as = "name", column.removeprefix("params.")
        elif column in COUNTS:
            unit, shown_as = COUNTS[column]
        elif column == "capacity":
            unit, shown_as = "what the strategy adds over max pooling (docs/protocol.md)", "class"
        elif column in RATIOS:
            unit, shown_as = RATIOS[column]
        elif stat in ("mean", "std") and (metric in UNITS or SHIFT.fullmatch(metric)):
            unit = UNITS.get(metric, "fraction of the test set (0-1)")
            title, scale, _ = shown.get(metric, (f"accuracy, {metric} (not shown)", 1, False))
            shown_as = f"{title} ({stat}, ×{scale:g})" if scale != 1 else f"{title} ({stat})"
        elif column == "vs_max_p":
            unit, shown_as = "p-value of Welch's t-test", "p"
        elif column == "vs_max_p_holm":
            unit, shown_as = "Holm-adjusted over the table's comparisons", "p Holm"
        elif column == "vs_max_significant":
            unit, shown_as = "true or false: p Holm < 0.05", "* after the interval"
        elif column == "vs_max_df":
            unit, shown_as = "Welch-Satterthwaite degrees of freedom", "(not shown)"
        else:  # vs_max_diff, vs_max_ci_low, vs_max_ci_high, vs_max_se
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
    runs_of = done.groupby(keys, dropna=False)
    table["seeds"] = runs_of.size()
    improving = metric_column(Metric.STILL_IMPROVING)
    if improving in done:
        table[Metric.STILL_IMPROVING] = runs_of[improving].sum(min_count=1)
        table["plateau_known"] = runs_of[improving].count()
    commit = tag_column(Tag.GIT_COMMIT)
    if commit in done:
        table["dirty"] = runs_of[commit].agg(lambda c: int(c.str.endswith(DIRTY).sum()))
    table = table.reset_index().merge(versus_baseline(done, keys), on=keys, how="left")
    table = with_capacity(table, keys)
    return table.sort_values(f"{Metric.TEST_ERROR}_mean", kind="stable").reset_index(drop=True)


def with_capacity(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Each row's params and FLOPs as a multiple of max pooling's row with the same other
    keys, and its capacity class (dsbench.model.downsample): a learned strategy that added
    no parameters here (mixed with a fixed α) is parameter-free."""
    others = [k for k in keys if k != Tag.DOWNSAMPLE]
    base = table[table[Tag.DOWNSAMPLE] == BASELINE].set_index(others) if others else None
    ratios: dict[str, list[float]] = {"params_vs_max": [], "flops_vs_max": []}
    classes = []
    for _, row in table.iterrows():
        at = tuple(row[k] for k in others)
        found = base is not None and at in base.index
        for column, metric in (
            ("params_vs_max", Metric.PARAMS_TOTAL),
            ("flops_vs_max", Metric.FLOPS_PER_IMAGE),
        ):
            mean = f"{metric}_mean"
            ok = found and mean in table
            ratios[column].append(row[mean] / base.loc[at, mean] if ok else float("nan"))
        adds = None if not found else bool(ratios["params_vs_max"][-1] > 1)
        classes.append(capacity_class(row[Tag.DOWNSAMPLE], adds))
    return table.assign(capacity=classes, **ratios)


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
    if "capacity" in table:
        out["class"] = table["capacity"].map(markup.text)
    out["seeds"] = table["seeds"].astype(int).astype(str)
    if Metric.STILL_IMPROVING in table:
        out[markup.text("still improving")] = [
            "–" if not known else f"{int(k)}/{int(known)}"
            for k, known in zip(
                table[Metric.STILL_IMPROVING].fillna(0), table["plateau_known"], strict=True
            )
        ]
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
            versus, p, holm = versus_columns(table, markup)
            out[markup.text(VERSUS_TITLE)], out["p"], out["p Holm"] = versus, p, holm
        ratio = {Metric.PARAMS_TOTAL: "params_vs_max", Metric.FLOPS_PER_IMAGE: "flops_vs_max"}
        if ratio.get(m) in table:
            column = ratio[m]
            out[markup.text(RATIOS[column][1])] = [
                "–" if pd.isna(r) else f"{r:.2f}" for r in table[column]
            ]
    if "dirty" in table and table["dirty"].sum() > 0:  # else the legend says all were clean
        out["uncommitted"] = table["dirty"].astype(int).astype(str)
    return out


VERSUS_TITLE = f"vs {BASELINE}, pp [{100 * LEVEL:.0f} % CI]"


def _p(p: float) -> str:
    return "–" if pd.isna(p) else "< 0.001" if p < 0.001 else f"{p:.3f}"


def versus_columns(table: pd.DataFrame, markup: Markup) -> tuple[list[str], list[str], list[str]]:
    """The difference from max pooling in percentage points with its interval, * where the
    Holm-adjusted p is below 0.05, p and the adjusted p; "reference" on max's own rows, –
    where there is nothing."""
    cells, ps, holms = [], [], []
    for _, row in table.iterrows():
        if row[Tag.DOWNSAMPLE] == BASELINE:
            cells.append("reference")
            ps.append("")
            holms.append("")
            continue
        if pd.isna(row["vs_max_diff"]):
            cells.append("–")
            ps.append("–")
            holms.append("–")
            continue
        cell = f"{100 * row['vs_max_diff']:+.2f}"
        if not pd.isna(row["vs_max_ci_low"]):
            low, high = (f"{100 * row[c]:+.2f}" for c in ("vs_max_ci_low", "vs_max_ci_high"))
            cell += f" [{low}, {high}]" + ("*" if row["vs_max_significant"] else "")
        cells.append(markup.escape(cell))
        ps.append(_p(row["vs_max_p"]))
        holms.append(_p(row.get("vs_max_p_holm", float("nan"))))
    return cells, ps, holms


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


PLATEAU_UNKNOWN = "Whether the runs reached a plateau is not known (no validation split)."


def reading(table: pd.DataFrame, runs: pd.DataFrame) -> str:
    """What the table can support, under it: the plateau, the smallest difference it could
    detect, the test set's own sampling error, and which code the runs came from."""
    return " ".join(
        [_plateau(table), _detectable(table), _sampling(table, runs), provenance_line(runs)]
    )


def _plateau(table: pd.DataFrame) -> str:
    if Metric.STILL_IMPROVING not in table or not table["plateau_known"].sum():
        return PLATEAU_UNKNOWN
    flagged = table[table[Metric.STILL_IMPROVING] > 0]
    runs = int(table[Metric.STILL_IMPROVING].sum())
    known = int(table["plateau_known"].sum())
    if not runs:
        return f"None of the {known} runs was still improving at its end ({RULE})."
    return (
        f"Still improving: {runs} of {known} runs, in {len(flagged)} of {len(table)} rows "
        f"({RULE}); such a row is not at its plateau, and its ranking may change with more "
        "training."
    )


def _detectable(table: pd.DataFrame) -> str:
    tested = table.dropna(subset=["vs_max_se"]) if "vs_max_se" in table else table.iloc[0:0]
    if tested.empty:
        return "No comparison here has 2 seeds on both sides: nothing is tested."
    m = len(tested)
    raw, adjusted = detectable(tested["vs_max_se"].median(), tested["vs_max_df"].median(), m)
    seeds = int(table["seeds"].median())
    return (
        f"The smallest difference from max pooling this table finds with "
        f"{100 * POWER:.0f} % power, at the median row's standard error ({seeds} seeds): "
        f"{100 * raw:.2f} pp at p < {ALPHA:g}, {100 * adjusted:.2f} pp at Holm's first step "
        f"over its {m} comparisons."
    )


def _sampling(table: pd.DataFrame, runs: pd.DataFrame) -> str:
    subset = pd.to_numeric(runs.get("params.dataset.test_subset"), errors="coerce")
    datasets = set(runs[Tag.DATASET])
    if subset is not None and subset.notna().any():
        images = int(subset.max())
    elif len(datasets) == 1:
        images = get_info(datasets.pop()).sizes[1]
    else:
        return ""
    best = float(table[f"{Metric.TEST_ERROR}_mean"].min())
    return (
        f"A test error of {100 * best:.2f} % on {images:,} test images has a sampling error "
        f"of ±{100 * sampling_error(best, images):.2f} pp (binomial): the test set's own, "
        "which no number of seeds removes."
    )


def improving_line(runs: pd.DataFrame) -> str:
    """How many of `runs` were still improving at their end (training.plateau)."""
    column = metric_column(Metric.STILL_IMPROVING)
    known = runs[column].dropna() if column in runs else pd.Series(dtype=float)
    if known.empty:
        return PLATEAU_UNKNOWN
    return f"Still improving at the end: {int(known.sum())} of {len(known)} runs ({RULE})."


def provenance_line(runs: pd.DataFrame) -> str:
    """Which commits the runs came from, and how many had uncommitted changes."""
    column = tag_column(Tag.GIT_COMMIT)
    if column not in runs or runs[column].isna().all():
        return "Which code the runs came from was not recorded."
    commits = runs[column].dropna()
    dirty = int(commits.str.endswith(DIRTY).sum())
    shown = ", ".join(sorted({short_commit(c) for c in commits}))
    if not dirty:
        return f"All {len(commits)} runs came from committed code ({shown})."
    return (
        f"{dirty} of {len(commits)} runs came from code with uncommitted changes ({shown}): "
        "nobody can rerun exactly what they ran."
    )


def matched(runs: pd.DataFrame) -> pd.DataFrame:
    """convpool against conv, each head: the same extra 3×3 conv, used as the downsampling
    (conv, stride 2) or beside it (convpool, stride 1 then max pooling). Capacity matched,
    only the downsampling differs: Welch on test error, one row per group of the other keys."""
    done = runs[runs["status"] == "FINISHED"]
    column = metric_column(Metric.TEST_ERROR)
    keys = [k for k in group_keys(done) if k != Tag.DOWNSAMPLE]
    rows = []
    for key, group in done.groupby(keys, dropna=False, sort=True):
        a = list(group.loc[group[Tag.DOWNSAMPLE] == "convpool", column].dropna())
        b = list(group.loc[group[Tag.DOWNSAMPLE] == "conv", column].dropna())
        if a and b:
            w = welch(a, b)
            rows.append(
                {**dict(zip(keys, key, strict=True)), "seeds": f"{len(a)}/{len(b)}", **w._asdict()}
            )
    return pd.DataFrame(rows)


def matched_markdown(runs: pd.DataFrame) -> str:
    """`matched` as a Markdown section; "" without both strategies."""
    table = matched(runs)
    if table.empty:
        return ""
    keys = [c for c in table.columns if c in table_keys(table) and table[c].nunique() > 1] or [
        Tag.HEAD
    ]
    lines = [
        "## convpool vs conv: the same extra conv, different downsampling\n",
        "Both add the same 3×3 conv of the block's width; conv downsamples with it (stride 2), "
        "convpool keeps it at stride 1 and max-pools after it. Their difference is the "
        "downsampling at matched capacity (convpool − conv, pp, 95 % interval, Welch; these "
        "tests are not in the table's Holm family).\n",
        "| " + " | ".join([*keys, "seeds", "convpool − conv, pp [95 % CI]", "p"]) + " |",
        "|" + "---|" * (len(keys) + 3),
    ]
    for _, row in table.iterrows():
        interval = (
            "" if pd.isna(row["low"]) else f" [{100 * row['low']:+.2f}, {100 * row['high']:+.2f}]"
        )
        cells = [
            *(str(row[k]) for k in keys),
            row["seeds"],
            f"{100 * row['diff']:+.2f}{interval}",
            _p(row["p"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
