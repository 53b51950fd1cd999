"""Is a strategy's test error really different from max pooling's, or is it seed noise?

For every group of the comparison table, its runs' test error against the max-pooling group
that differs from it only in the strategy (same dataset, model, head and varying params):
the difference of the means (group − max), its 95 % confidence interval and the p-value of
Welch's t-test (unequal variances: scipy.stats.ttest_ind). A table makes many such tests, so
each p is also Holm-adjusted over all of them (Holm 1979: the family-wise error stays below
ALPHA); a difference is marked significant on the adjusted p. `detectable` says how small a
difference the table could find at its seed count; `sampling_error` how much a test error
moves by the test set's sampling alone.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd
from scipy import stats

from dsbench.contract import Metric, Tag, metric_column

BASELINE = "max"  # the strategy every other one is compared with
LEVEL = 0.95
ALPHA = 1 - LEVEL  # family-wise, over the comparisons of one table (Holm)
POWER = 0.8  # of `detectable`
COLUMNS = [
    "vs_max_diff",
    "vs_max_ci_low",
    "vs_max_ci_high",
    "vs_max_p",
    "vs_max_p_holm",
    "vs_max_significant",
    "vs_max_se",  # the standard error of the difference (Welch)
    "vs_max_df",  # and its Welch-Satterthwaite degrees of freedom
]


class Welch(NamedTuple):
    diff: float  # mean(a) − mean(b)
    low: float  # its LEVEL confidence interval
    high: float
    p: float
    se: float  # standard error of the difference
    df: float  # Welch-Satterthwaite degrees of freedom


def welch(a: list[float], b: list[float]) -> Welch:
    """mean(a) − mean(b) with Welch's interval, p, standard error and degrees of freedom;
    all but the difference NaN where a side has fewer than 2 values (no variance)."""
    diff = float(pd.Series(a).mean() - pd.Series(b).mean()) if a and b else math.nan
    if len(a) < 2 or len(b) < 2:
        return Welch(diff, *(math.nan,) * 5)
    result = stats.ttest_ind(a, b, equal_var=False)
    low, high = result.confidence_interval(confidence_level=LEVEL)
    va, vb = pd.Series(a).var() / len(a), pd.Series(b).var() / len(b)
    se = math.sqrt(va + vb)
    df = float(result.df)
    return Welch(diff, float(low), float(high), float(result.pvalue), se, df)


def holm(p: pd.Series) -> pd.Series:
    """Holm's step-down adjusted p-values of a family (NaN entries are not part of it):
    the i-th smallest of m is multiplied by m − i + 1 (i from 1), made non-decreasing in
    that order, and capped at 1."""
    tested = p.dropna().sort_values(kind="stable")
    m = len(tested)
    steps = pd.Series([(m - i) * v for i, v in enumerate(tested)], index=tested.index)
    adjusted = steps.cummax().clip(upper=1.0)
    return adjusted.reindex(p.index)


def detectable(se: float, df: float, comparisons: int) -> tuple[float, float]:
    """The smallest true difference a Welch test with this standard error and degrees of
    freedom finds with probability POWER: at ALPHA (two-sided), and at ALPHA / comparisons
    (Holm's first, strictest step). (t_{1−α/2} + t_{POWER}) · se."""

    def at(alpha: float) -> float:
        return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(POWER, df)) * se)

    if math.isnan(se) or math.isnan(df) or comparisons < 1:
        return math.nan, math.nan
    return at(ALPHA), at(ALPHA / comparisons)


def sampling_error(error: float, images: int) -> float:
    """The binomial standard error of a test error measured on `images` test images: how
    far it moves by which images happen to be in the test set, whatever the seed."""
    return math.sqrt(error * (1 - error) / images)


def versus_baseline(
    done: pd.DataFrame, keys: list[str], metric: str = Metric.TEST_ERROR
) -> pd.DataFrame:
    """One row per group of `done` (grouped by `keys`, which hold `downsample`): COLUMNS in
    the metric's own units. The baseline's own row, and a group with no baseline beside it,
    get NaN; `vs_max_p_holm` is adjusted over every comparison of the frame, and
    `vs_max_significant` is whether it is below ALPHA."""
    values = {
        key: list(group[metric_column(metric)].dropna())
        for key, group in done.groupby(keys, dropna=False, sort=False)
    }
    rows = []
    for key, a in values.items():
        named = dict(zip(keys, key, strict=True))
        reference = tuple(BASELINE if k == Tag.DOWNSAMPLE else named[k] for k in keys)
        b = values.get(reference, [])
        compared = named[Tag.DOWNSAMPLE] != BASELINE and b
        w = welch(a, b) if compared else Welch(*(math.nan,) * 6)
        rows.append(
            {
                **named,
                "vs_max_diff": w.diff,
                "vs_max_ci_low": w.low,
                "vs_max_ci_high": w.high,
                "vs_max_p": w.p,
                "vs_max_se": w.se,
                "vs_max_df": w.df,
            }
        )
    out = pd.DataFrame(rows, columns=[*keys, *COLUMNS])
    out["vs_max_p_holm"] = holm(out["vs_max_p"])
    out["vs_max_significant"] = out["vs_max_p_holm"] < ALPHA
    return out
