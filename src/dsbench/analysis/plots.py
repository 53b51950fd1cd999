"""The comparison plots (PNG): one idea per figure, one colour per downsampling strategy.

Each figure has one panel per head (its own y range: a head that learns slowly does not
squash the others), colour says the strategy, the same in every figure, so a reader can
follow one strategy across them. Takes the comparison table (`tables.comparison`) and, for
learning curves, per-epoch histories (`runs.histories`). Uses matplotlib's object API (no
pyplot state), so it is safe to call from a sweep's callback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from dsbench.analysis.load import KEYS, table_keys
from dsbench.analysis.tables import SHIFT
from dsbench.contract import Metric, Tag, shifted_accuracy

STRATEGY = Tag.DOWNSAMPLE  # the column each figure colours by
ERROR_MEAN, ERROR_STD = f"{Metric.TEST_ERROR}_mean", f"{Metric.TEST_ERROR}_std"  # table columns


def label(row: pd.Series, table: pd.DataFrame) -> str:
    """The strategy, with the dataset / model before it where the table holds several, any
    varying param (e.g. `trainer.lr=0.05`) after it, and "(1 seed)" where a group has no
    spread to show."""
    varying = [k for k in (Tag.DATASET, Tag.MODEL) if table[k].nunique() > 1]
    params = [f"{p.removeprefix('params.')}={row[p]}" for p in table_keys(table)[len(KEYS) :]]
    one_seed = ["(1 seed)"] if row["seeds"] == 1 else []
    return " ".join(
        ["/".join([*(str(row[k]) for k in varying), str(row[STRATEGY])]), *params, *one_seed]
    )


def _colours(table: pd.DataFrame) -> dict[str, tuple]:
    from matplotlib import colormaps

    names = sorted(table[STRATEGY].unique())
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _panels(
    table: pd.DataFrame, title: str, xlabel: str, ylabel: str
) -> tuple[Figure, Iterator[tuple[Any, pd.DataFrame]]]:
    """A figure with one panel per head; yields (axes, that head's rows)."""
    heads = list(dict.fromkeys(table[Tag.HEAD]))  # in table order: the best head first
    fig = Figure(figsize=(5.2 * len(heads) + 2, 5.2), layout="constrained")
    fig.suptitle(title)
    axes = fig.subplots(1, len(heads), squeeze=False)[0]
    for ax, head in zip(axes, heads, strict=True):
        ax.set_title(f"head: {head}", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(ylabel)

    def rows() -> Iterator[tuple[Any, pd.DataFrame]]:
        for ax, head in zip(axes, heads, strict=True):
            yield ax, table[table[Tag.HEAD] == head]

    return fig, rows()


def _legend(fig: Figure) -> None:
    """One legend for all panels, each strategy once."""
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(name, handle)
    fig.legend(
        handles.values(), handles.keys(), loc="outside right center", fontsize=8, frameon=False
    )


def _scatter(table: pd.DataFrame, x: str, xlabel: str, title: str) -> Figure:
    """Test accuracy (mean ± std over seeds) against a cost column, one point per group."""
    fig, panels = _panels(table, title, xlabel, "test accuracy % (mean ± std over seeds)")
    colours = _colours(table)
    for ax, rows in panels:
        for _, row in rows.iterrows():
            std = row[ERROR_STD]
            ax.errorbar(
                row[f"{x}_mean"],
                100 * (1 - row[ERROR_MEAN]),
                yerr=None if pd.isna(std) else 100 * std,
                fmt="o",
                mfc="none" if row["seeds"] == 1 else None,  # hollow: one seed, no error bar
                color=colours[row[STRATEGY]],
                capsize=3,
                label=label(row, table),
            )
        ax.set_xscale("log")
        for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
            axis(StrMethodFormatter("{x:,.0f}"))  # 20,000 rather than 2×10⁴
        ax.tick_params(axis="x", which="both", labelsize=7)
    _legend(fig)
    return fig


def accuracy_vs_params(table: pd.DataFrame) -> Figure:
    return _scatter(table, Metric.PARAMS_TOTAL, "parameters (log scale)", "Accuracy vs parameters")


def accuracy_vs_throughput(table: pd.DataFrame) -> Figure:
    return _scatter(
        table,
        Metric.STEADY_IMAGES_PER_SEC,
        "training images / s, steady (log scale; mean over seeds)",
        "Accuracy vs training throughput",
    )


def shifts(table: pd.DataFrame) -> list[int]:
    """The k of every `test_accuracy_shift{k}` in the table, k ≥ 1, ascending."""
    found = (SHIFT.fullmatch(c.removesuffix("_mean")) for c in table.columns if c.endswith("_mean"))
    return sorted(k for k in (int(m[1]) for m in found if m) if k > 0)


def accuracy_vs_shift(table: pd.DataFrame) -> Figure:
    """Accuracy when every test image is shifted by k px, k = 0 (clean) … max shift."""
    ks = shifts(table)
    fig, panels = _panels(
        table,
        "Accuracy under small translations",
        "shift of every test image (px, zero fill)",
        "test accuracy % (mean over seeds)",
    )
    colours = _colours(table)
    for ax, rows in panels:
        for _, row in rows.iterrows():
            ys = [1 - row[ERROR_MEAN], *(row[f"{shifted_accuracy(k)}_mean"] for k in ks)]
            ax.plot(
                [0, *ks],
                [100 * y for y in ys],
                marker="o",
                color=colours[row[STRATEGY]],
                label=label(row, table),
            )
        ax.set_xticks([0, *ks])
    _legend(fig)
    return fig


def learning_curves(table: pd.DataFrame, runs: pd.DataFrame, history: pd.DataFrame) -> Figure:
    """Validation accuracy per epoch: one line per group (the mean over its seeds) and a
    band of ± one std, so a store of thousands of runs draws as many lines as groups."""
    fig, panels = _panels(
        table, "Learning curves", "epoch", "validation accuracy % (mean ± std over seeds)"
    )
    colours = _colours(table)
    if history.empty:  # e.g. dataset.val_fraction=0: no validation metric per epoch
        fig.text(0.5, 0.5, "no per-epoch validation accuracy logged", ha="center")
        return fig
    keys = table_keys(table)
    merged = history.merge(runs[["run_id", *keys]], on="run_id")
    curves = merged.groupby([*keys, "step"], dropna=False)["value"].agg(["mean", "std"])
    groups = set(curves.droplevel("step").index)
    for ax, rows in panels:
        for _, row in rows.iterrows():
            key = tuple(row[k] for k in keys)
            if key not in groups:
                continue
            curve = curves.loc[key]
            steps, mean, std = curve.index, 100 * curve["mean"], 100 * curve["std"].fillna(0)
            colour = colours[row[STRATEGY]]
            ax.plot(steps, mean, marker="o", markersize=3, color=colour, label=label(row, table))
            ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
        ax.xaxis.get_major_locator().set_params(integer=True)
    _legend(fig)
    return fig


def write_all(
    table: pd.DataFrame,
    runs: pd.DataFrame,
    history: pd.DataFrame,
    out_dir: Path,
) -> list[Path]:
    """Every figure as `<out_dir>/<name>.png`; returns the paths."""
    figures = {
        "accuracy_vs_params": accuracy_vs_params(table),
        "accuracy_vs_throughput": accuracy_vs_throughput(table),
        "learning_curves": learning_curves(table, runs, history),
        "accuracy_vs_shift": accuracy_vs_shift(table),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths
