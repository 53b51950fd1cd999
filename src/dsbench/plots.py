"""The comparison plots (PNG): one idea per figure, one colour per downsampling strategy.

Colour says the strategy and marker / line style the head, the same in every figure, so a
reader can follow one strategy across them. Takes the comparison table (`analyze.comparison`)
and, for learning curves, per-epoch histories (`runs.histories`). Uses matplotlib's
object API (no pyplot state), so it is safe to call from a sweep's callback.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from dsbench.runs import KEYS

STYLE = {"flatten": ("o", "-"), "gap": ("s", "--"), "allconv": ("^", ":")}  # head → marker, line


def label(row: pd.Series, table: pd.DataFrame) -> str:
    """downsample+head, prefixed by the dataset / model where the table holds several."""
    varying = [k for k in ("dataset", "model") if table[k].nunique() > 1]
    return "/".join([*(str(row[k]) for k in varying), f"{row['downsample']}+{row['head']}"])


def _colours(table: pd.DataFrame) -> dict[str, tuple]:
    from matplotlib import colormaps

    names = sorted(table["downsample"].unique())
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _style(row: pd.Series) -> tuple[str, str]:
    return STYLE.get(str(row["head"]), ("D", "-."))


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, object]:
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _legend(ax: object) -> None:
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)


def _scatter(table: pd.DataFrame, x: str, xlabel: str, title: str) -> Figure:
    """Test accuracy (mean ± std over seeds) against a cost column, one point per group."""
    fig, ax = _figure(title, xlabel, "test accuracy % (mean ± std over seeds)")
    colours = _colours(table)
    for _, row in table.iterrows():
        marker, _ = _style(row)
        std = row["test_error_std"]
        ax.errorbar(
            row[f"{x}_mean"],
            100 * (1 - row["test_error_mean"]),
            yerr=None if pd.isna(std) else 100 * std,
            fmt=marker,
            color=colours[row["downsample"]],
            capsize=3,
            label=label(row, table),
        )
    ax.set_xscale("log")
    for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis(StrMethodFormatter("{x:,.0f}"))  # 20,000 rather than 2×10⁴
    ax.tick_params(axis="x", which="both", labelsize=8)
    _legend(ax)
    return fig


def accuracy_vs_params(table: pd.DataFrame) -> Figure:
    return _scatter(table, "params_total", "parameters (log scale)", "Accuracy vs parameters")


def accuracy_vs_throughput(table: pd.DataFrame) -> Figure:
    return _scatter(
        table,
        "train_images_per_sec",
        "training images / s (log scale; mean over seeds)",
        "Accuracy vs training throughput",
    )


def shifts(table: pd.DataFrame) -> list[int]:
    """The k of every `test_accuracy_shift{k}` in the table, k ≥ 1, ascending."""
    found = (re.fullmatch(r"test_accuracy_shift(\d+)_mean", c) for c in table.columns)
    return sorted(k for k in (int(m[1]) for m in found if m) if k > 0)


def accuracy_vs_shift(table: pd.DataFrame) -> Figure:
    """Accuracy when every test image is shifted by k px, k = 0 (clean) … max shift."""
    ks = shifts(table)
    fig, ax = _figure(
        "Accuracy under small translations",
        "shift of every test image (px, zero fill)",
        "test accuracy % (mean over seeds)",
    )
    colours = _colours(table)
    for _, row in table.iterrows():
        marker, line = _style(row)
        ys = [1 - row["test_error_mean"], *(row[f"test_accuracy_shift{k}_mean"] for k in ks)]
        ax.plot(
            [0, *ks],
            [100 * y for y in ys],
            marker=marker,
            linestyle=line,
            color=colours[row["downsample"]],
            label=label(row, table),
        )
    ax.set_xticks([0, *ks])
    _legend(ax)
    return fig


def learning_curves(table: pd.DataFrame, runs: pd.DataFrame, history: pd.DataFrame) -> Figure:
    """Validation accuracy per epoch, mean over each group's seeds."""
    fig, ax = _figure("Learning curves", "epoch", "validation accuracy % (mean over seeds)")
    colours = _colours(table)
    if history.empty:  # e.g. dataset.val_fraction=0: no validation metric per epoch
        ax.text(
            0.5, 0.5, "no per-epoch validation accuracy logged", ha="center", transform=ax.transAxes
        )
        return fig
    merged = history.merge(runs[["run_id", *KEYS]], on="run_id")
    curves = merged.groupby([*KEYS, "step"])["value"].mean()
    for _, row in table.iterrows():
        key = tuple(row[k] for k in KEYS)
        if key not in curves.droplevel("step").index:
            continue
        curve = curves.loc[key]
        marker, line = _style(row)
        ax.plot(
            curve.index,  # step = epoch, from 1
            100 * curve.to_numpy(),
            marker=marker,
            linestyle=line,
            color=colours[row["downsample"]],
            label=label(row, table),
        )
    ax.xaxis.get_major_locator().set_params(integer=True)
    _legend(ax)
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
