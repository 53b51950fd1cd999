"""The study protocol: what a table can support (docs/protocol.md).

The still-improving rule on hand-made histories, Holm's adjustment and the detectable
difference against hand computations, the capacity class of every registered strategy,
the one-cycle schedule, and study presets that refuse uncommitted code.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy import stats

from dsbench.analysis.load import fill_still_improving
from dsbench.analysis.significance import detectable, holm, sampling_error
from dsbench.analysis.tables import comparison, matched, to_markdown
from dsbench.config import TrackingConfig, TrainConfig, TrainerConfig
from dsbench.contract import Metric, Tag, metric_column, tag_column
from dsbench.errors import DsbenchError
from dsbench.model import downsample
from dsbench.model.downsample import (
    CAPACITY_CLASSES,
    EXTRA,
    FEWER_FLOPS,
    FREE,
    LEARNED,
    STRATEGIES,
    capacity_class,
)
from dsbench.training.job import check_committed
from dsbench.training.plateau import MIN_RISE, WINDOW, still_improving

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([0.90, 0.95, 0.98, 0.980, 0.980, 0.980, 0.980, 0.980], False),  # flat for 5 epochs
        ([0.90, 0.95, 0.97, 0.975, 0.978, 0.979, 0.980, 0.981], True),  # +0.6 pp over the 5
        ([0.97, 0.980, 0.9805, 0.9806, 0.9808, 0.9809, 0.9809], False),  # +0.09 pp: noise
        ([0.97, 0.980, 0.979, 0.979, 0.979, 0.979, 0.9812], True),  # a late rise of 0.12 pp
        ([0.99, 0.95, 0.96, 0.97, 0.98, 0.985], False),  # below the earlier best: no rise
        ([0.5, 0.6, 0.7], True),  # WINDOW epochs or fewer: nothing shows it stopped
        ([0.5, 0.6, 0.7, 0.8, 0.9], True),
        ([], None),  # no validation split: unknown
        ([math.nan, math.nan], None),
    ],
)
def test_the_still_improving_rule(history: list[float], expected: bool | None) -> None:
    assert WINDOW == 5 and MIN_RISE == 0.001  # the rule the docs state
    assert still_improving(history) is expected


def test_runs_logged_before_the_rule_get_it_from_their_curves() -> None:
    runs = pd.DataFrame(
        {"run_id": ["a", "b", "c"], metric_column(Metric.STILL_IMPROVING): [0.0, None, None]}
    )
    rising = [0.9 + 0.01 * i for i in range(8)]
    history = pd.DataFrame(
        [("b", i + 1, v) for i, v in enumerate(rising)], columns=["run_id", "step", "value"]
    )
    filled = fill_still_improving(runs, history)[metric_column(Metric.STILL_IMPROVING)]
    assert filled[0] == 0.0  # logged: kept
    assert filled[1] == 1.0  # from its curve
    assert math.isnan(filled[2])  # no curve: unknown


def test_holm_by_hand() -> None:
    """p = 0.01, 0.04, 0.03, NaN, 0.20: sorted 0.01, 0.03, 0.04, 0.20 (m = 4) → ×4, ×3, ×2,
    ×1 = 0.04, 0.09, 0.08, 0.20 → non-decreasing: 0.04, 0.09, 0.09, 0.20."""
    p = pd.Series([0.01, 0.04, 0.03, math.nan, 0.20])
    adjusted = holm(p)
    assert list(adjusted[[0, 2, 1, 4]]) == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert math.isnan(adjusted[3])
    assert holm(pd.Series([0.5, 0.6]))[1] == 1.0  # capped


def test_detectable_difference_by_hand() -> None:
    """With se = 0.1 pp and df = 4: (t(0.975, 4) + t(0.8, 4)) · se = (2.776 + 0.941) · 0.1."""
    raw, adjusted = detectable(0.001, 4.0, 10)
    assert raw == pytest.approx((2.7764 + 0.9410) * 0.001, rel=1e-3)
    assert adjusted == pytest.approx((stats.t.ppf(1 - 0.005 / 2, 4) + 0.9410) * 0.001, rel=1e-3)
    assert adjusted > raw


def test_the_sampling_error_of_a_test_error() -> None:
    """1 % on 10,000 images: √(0.01 · 0.99 / 10,000) = 0.000995, ±0.1 pp."""
    assert sampling_error(0.01, 10_000) == pytest.approx(0.000995, rel=1e-3)


# Every registered strategy's class: a new strategy fails here until it has a row.
CLASSES = {
    "max": FREE,
    "avg": FREE,
    "overlap": FREE,
    "strided": FEWER_FLOPS,
    "conv": LEARNED,
    "convpool": EXTRA,
    "blur": FREE,
    "lp": FREE,
    "mixed": LEARNED,
    "s2d": LEARNED,
    "softpool": FREE,
    "lip": LEARNED,
    "stochastic": FREE,
    "aps": FREE,
    "wavelet": LEARNED,
}


def test_every_strategy_has_its_capacity_class() -> None:
    assert {name: s.capacity for name, s in STRATEGIES.items()} == CLASSES
    assert set(CLASSES.values()) <= set(CAPACITY_CLASSES)


def test_a_strategy_without_a_class_is_refused() -> None:
    with pytest.raises(TypeError, match="capacity"):
        downsample.strategy("nameless", "no class")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="capacity 'big' is none of"):
        downsample.strategy("nameless", "a wrong class", capacity="big")
    assert "nameless" not in STRATEGIES


def test_a_learned_strategy_that_adds_nothing_is_parameter_free() -> None:
    assert capacity_class("mixed", adds_params=False) == FREE  # fixed α
    assert capacity_class("mixed", adds_params=True) == LEARNED
    assert capacity_class("convpool", adds_params=True) == EXTRA
    assert capacity_class("strided", adds_params=True) == FEWER_FLOPS  # its head, not its slot
    assert capacity_class("mixed") == LEARNED  # no max pooling beside it: as declared


def runs_frame() -> pd.DataFrame:
    """conv, convpool, mixed (fixed α) and max, 3 seeds, one head; hand-made numbers."""
    rows = []
    specs = {  # strategy: (params, MFLOPs, errors, still improving, commit)
        "max": (100.0, 4.0, [0.020, 0.021, 0.022], [0, 0, 0], "abc"),
        "conv": (220.0, 8.0, [0.018, 0.019, 0.017], [1, 0, 0], "abc"),
        "convpool": (240.0, 26.0, [0.015, 0.016, 0.014], [1, 1, 0], "abc-dirty"),
        "mixed": (100.0, 4.0, [0.021, 0.020, 0.022], [0, 0, 0], "abc"),
    }
    for name, (params, mflops, errors, flags, commit) in specs.items():
        for seed, (error, flag) in enumerate(zip(errors, flags, strict=True)):
            rows.append(
                {
                    "run_id": f"{name}{seed}",
                    "status": "FINISHED",
                    Tag.DATASET: "mnist",
                    Tag.MODEL: "convnet",
                    Tag.DOWNSAMPLE: name,
                    Tag.HEAD: "gap",
                    "params.trainer.seed": str(seed),
                    metric_column(Metric.TEST_ERROR): error,
                    metric_column(Metric.PARAMS_TOTAL): params,
                    metric_column(Metric.FLOPS_PER_IMAGE): mflops * 1e6,
                    metric_column(Metric.STILL_IMPROVING): float(flag),
                    tag_column(Tag.GIT_COMMIT): commit,
                }
            )
    return pd.DataFrame(rows)


def test_the_table_shows_what_it_can_support() -> None:
    table = comparison(runs_frame()).set_index(Tag.DOWNSAMPLE)
    assert table.loc["convpool", "capacity"] == EXTRA
    assert table.loc["conv", "capacity"] == LEARNED
    assert table.loc["mixed", "capacity"] == FREE  # no parameter over max's
    assert table.loc["convpool", "params_vs_max"] == pytest.approx(2.4)
    assert table.loc["convpool", "flops_vs_max"] == pytest.approx(6.5)
    assert table.loc["convpool", "still_improving"] == 2
    assert table.loc["convpool", "dirty"] == 3
    p = table["vs_max_p"].dropna()
    assert len(p) == 3 and (table["vs_max_p_holm"].dropna() >= p).all()
    text = to_markdown(table.reset_index())
    convpool = next(line for line in text.splitlines() if "| convpool |" in line)
    assert "| extra capacity |" in convpool and "| 2/3 |" in convpool
    assert "| 2.40 |" in convpool and "| 6.50 |" in convpool
    assert "uncommitted" in text.splitlines()[0]


def test_the_matched_comparison_is_convpool_against_conv() -> None:
    (row,) = matched(runs_frame()).to_dict("records")
    assert row[Tag.HEAD] == "gap"
    assert row["diff"] == pytest.approx(0.015 - 0.018)


def test_one_cycle_rises_then_anneals_to_zero() -> None:
    from dsbench.training.fit import learning_rate

    trainer = TrainerConfig(lr=0.1, epochs=10, schedule="cosine", warmup_epochs=2)
    lr = learning_rate(trainer, steps_per_epoch=10)
    at = [float(lr(step)) for step in (0, 10, 20, 60, 100)]
    assert at[0] == pytest.approx(0.0)
    assert at[1] == pytest.approx(0.05)  # halfway up
    assert at[2] == pytest.approx(0.1)  # the peak, then cosine
    assert at[3] == pytest.approx(0.05, rel=1e-3)  # halfway down: 0.1 · (1 + cos(π/2)) / 2
    assert at[4] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(DsbenchError, match=r"warmup_epochs=2 needs trainer\.schedule=cosine"):
        TrainerConfig(warmup_epochs=2)


def test_a_study_refuses_uncommitted_code() -> None:
    study = TrainConfig(tracking=TrackingConfig(allow_dirty=False))
    with pytest.raises(DsbenchError, match=r"uncommitted changes .*tracking\.allow_dirty=true"):
        check_committed(study, "0123456789abcdef-dirty")
    check_committed(study, "0123456789abcdef")
    check_committed(study, "unknown")  # an installed wheel: no checkout to tell
    check_committed(TrainConfig(), "0123456789abcdef-dirty")  # ad-hoc runs may


STUDIES = ("mnist_downsampling", "mnist_shift", "mnist_converged")  # results, 5 seeds
TWO_STAGE = ("springenberg2015",)  # one seed per lr, then seeds at the chosen lr


@pytest.mark.parametrize("study", [*STUDIES, *TWO_STAGE])
def test_study_presets_run_from_a_commit_with_five_seeds(study: str) -> None:
    preset = yaml.safe_load((ROOT / "experiments" / f"{study}.yaml").read_text())
    assert preset["tracking"]["allow_dirty"] is False
    if study in STUDIES:
        assert preset["hydra"]["sweeper"]["params"]["trainer.seed"] == "0,1,2,3,4"


def test_the_protocol_page_lists_every_strategy_by_its_class() -> None:
    """docs/protocol.md's table is generated (`make docs`); a new strategy fails here
    until it is rerun."""
    from dsbench.tools.docs import PROTOCOL, capacity_table, with_capacity_table

    page = PROTOCOL.read_text()
    assert capacity_table() in page and with_capacity_table(page) == page
    for name in STRATEGIES:
        assert f"`{name}`" in capacity_table()
