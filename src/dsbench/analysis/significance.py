"""Is a strategy's test error really different from max pooling's, or is it seed noise?

For every group of the comparison table, its runs' test error against the max-pooling group
that differs from it only in the strategy (same dataset, model, head and varying params):
the difference of the means (group − max), its 95 % confidence interval and the p-value of
Welch's t-test (unequal variances: scipy.stats.ttest_ind). With 3 seeds the intervals are
wide: a difference is marked only where its interval excludes 0.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

from dsbench.contract import Metric, Tag, metric_column

BASELINE = "max"  # the strategy every other one is compared with
LEVEL = 0.95
COLUMNS = ["vs_max_diff", "vs_max_ci_low", "vs_max_ci_high", "vs_max_p", "vs_max_significant"]


def welch(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    """mean(a) − mean(b), its LEVEL confidence interval and p (Welch); the interval and p
    are NaN where a side has fewer than 2 values (no variance to test against)."""
    diff = float(pd.Series(a).mean() - pd.Series(b).mean()) if a and b else math.nan
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan, math.nan
    result = stats.ttest_ind(a, b, equal_var=False)
    low, high = result.confidence_interval(confidence_level=LEVEL)
    return diff, float(low), float(high), float(result.pvalue)


def versus_baseline(
    done: pd.DataFrame, keys: list[str], metric: str = Metric.TEST_ERROR
) -> pd.DataFrame:
    """One row per group of `done` (grouped by `keys`, which hold `downsample`): COLUMNS in
    the metric's own units. The baseline's own row, and a group with no baseline beside it,
    get NaN; `vs_max_significant` is whether the interval lies wholly on one side of 0."""
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
        diff, low, high, p = welch(a, b) if compared else (math.nan,) * 4
        significant = not math.isnan(low) and (low > 0 or high < 0)
        rows.append({**named, **dict(zip(COLUMNS, (diff, low, high, p, significant), strict=True))})
    return pd.DataFrame(rows, columns=[*keys, *COLUMNS])
