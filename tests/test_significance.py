"""The comparison with max pooling is Welch's test, computed as scipy computes it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dsbench.analysis.significance import versus_baseline, welch
from dsbench.analysis.tables import comparison, to_markdown
from dsbench.contract import Metric, metric_column

KEYS = ["dataset", "model", "downsample", "head"]
# Hand-made test errors: blur clearly below max, avg overlapping it, one seed of s2d.
ERRORS = {
    ("max", "flatten"): [0.020, 0.022, 0.021],
    ("blur", "flatten"): [0.012, 0.013, 0.011],
    ("avg", "flatten"): [0.019, 0.025, 0.021],
    ("s2d", "flatten"): [0.015],
    ("max", "gap"): [0.100, 0.120, 0.110, 0.090],
    ("conv", "gap"): [0.040, 0.030, 0.050],
}


def frame() -> pd.DataFrame:
    rows = [
        {
            "dataset": "mnist",
            "model": "convnet",
            "downsample": d,
            "head": h,
            "status": "FINISHED",
            "params.trainer.seed": str(seed),
            metric_column(Metric.TEST_ERROR): error,
        }
        for (d, h), errors in ERRORS.items()
        for seed, error in enumerate(errors)
    ]
    return pd.DataFrame(rows)


def test_welch_is_scipys() -> None:
    a, b = ERRORS[("blur", "flatten")], ERRORS[("max", "flatten")]
    diff, low, high, p, se, df = welch(a, b)
    expected = stats.ttest_ind(a, b, equal_var=False)
    ci = expected.confidence_interval(confidence_level=0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert p == pytest.approx(expected.pvalue)
    # Welch–Satterthwaite by hand: the interval is diff ± t(0.975, df) · se.
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    by_hand = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    assert (se, df) == pytest.approx((math.sqrt(va + vb), by_hand))
    half = stats.t.ppf(0.975, df) * se
    assert (low, high) == pytest.approx((diff - half, diff + half))


def test_every_strategy_against_max_with_the_same_head() -> None:
    table = versus_baseline(frame(), KEYS).set_index(["downsample", "head"])
    blur = table.loc[("blur", "flatten")]
    assert blur.vs_max_diff == pytest.approx(0.012 - 0.021)
    assert blur.vs_max_ci_high < 0 and blur.vs_max_significant
    avg = table.loc[("avg", "flatten")]
    assert avg.vs_max_ci_low < 0 < avg.vs_max_ci_high and not avg.vs_max_significant
    conv = table.loc[("conv", "gap")]  # against max with the gap head, not flatten
    assert conv.vs_max_diff == pytest.approx(0.04 - 0.105)
    s2d = table.loc[("s2d", "flatten")]  # one seed: a difference, but no interval
    assert s2d.vs_max_diff == pytest.approx(0.015 - 0.021)
    assert math.isnan(s2d.vs_max_ci_low) and math.isnan(s2d.vs_max_p)
    assert not s2d.vs_max_significant
    assert math.isnan(table.loc[("max", "flatten")].vs_max_diff)


def test_the_table_carries_and_marks_them() -> None:
    table = comparison(frame())
    assert {"vs_max_diff", "vs_max_ci_low", "vs_max_ci_high", "vs_max_p"} <= set(table.columns)
    text = to_markdown(table)
    blur = next(line for line in text.splitlines() if "| blur |" in line)
    assert "-0.90 [-" in blur and "*" in blur  # percentage points, marked
    avg = next(line for line in text.splitlines() if "| avg |" in line)
    assert "*" not in avg.split("|")[-3]
    baseline = next(line for line in text.splitlines() if "| max | flatten |" in line)
    assert "reference" in baseline


def test_a_constant_column_has_no_best() -> None:
    """Every group with the same parameter count: no row of that column is bold; the test
    error, which differs, has its one best row bold."""
    runs = frame().assign(**{metric_column(Metric.PARAMS_TOTAL): 34_826.0})
    text = to_markdown(comparison(runs))
    assert "**34,826**" not in text and "34,826" in text
    assert text.count("**") == 2  # the lowest test error only


def test_every_csv_column_has_its_unit() -> None:
    """comparison.columns.csv: the CSV's values are fractions where the tables show %."""
    from dsbench.analysis.tables import column_units

    table = comparison(frame())
    units = column_units(table).set_index("column")
    assert list(units.index) == list(table.columns)
    assert units.loc["test_error_mean", "unit"] == "fraction of the test set (0-1)"
    assert units.loc["test_error_mean", "in the tables"] == "test error % (mean, ×100)"
    assert units.loc["vs_max_diff", "unit"].startswith("difference of test error fractions")
    assert units.loc["seeds", "unit"] == "finished runs in the group"
