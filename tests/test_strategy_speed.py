"""`python -m dsbench.tools.strategy_speed`: every strategy × head timed side by side."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest
from helpers import dsbench

from dsbench.contract import Metric
from dsbench.tools.bench import device_name
from dsbench.tools.strategy_speed import rows_from, schedule


@pytest.mark.slow
def test_strategy_speed_times_each_strategy_against_max_in_the_same_rounds(
    tmp_path: Path,
) -> None:
    out = dsbench(
        "tools.strategy_speed",
        "strategies=[max,strided]",
        "heads=[flatten,gap]",
        "images=256",
        "test_images=256",
        "epochs=2",
        "repeats=2",
        f"out_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    name = f"strategies-{device_name()}-tensorflow"
    table = pd.read_csv(tmp_path / f"{name}.csv").set_index(["downsample", "head"])
    assert list(table.index) == [
        ("max", "flatten"),
        ("strided", "flatten"),
        ("max", "gap"),
        ("strided", "gap"),
    ]
    assert (table[[Metric.TRAIN_IMAGES_PER_SEC, Metric.INFERENCE_IMAGES_PER_SEC]] > 0).all().all()
    assert (table[["train_vs_max", "inference_vs_max"]] > 0).all().all()
    # strided conv does fewer FLOPs than a conv followed by a max pool
    assert (table.loc["strided", "mflops"] < table.loc["max", "mflops"]).all()
    assert table["train_rounds"].map(lambda r: len(ast.literal_eval(r))).eq(2).all()
    report = (tmp_path / f"{name}.md").read_text()
    assert "Produced by `python -m dsbench.tools.strategy_speed strategies=[max,strided]" in report
    assert report in out.stdout
    order = [
        line.split(" round ")[0].split()[-1]
        for line in out.stdout.splitlines()
        if " training img/s, " in line
    ]
    forward = ["max+flatten", "strided+flatten", "max+gap", "strided+gap"]
    assert order == forward + forward[::-1]


def test_every_second_round_runs_in_reverse_order() -> None:
    jobs = [("max", "flatten"), ("avg", "flatten"), ("max", "gap")]
    assert schedule(jobs, 3) == [
        *((1, j) for j in jobs),
        *((2, j) for j in jobs[::-1]),
        *((3, j) for j in jobs),
    ]


def rounds(*rates: tuple[float, float]) -> list[dict[str, float]]:
    """`train`'s results for one job, one (training, inference) img/s pair per round."""
    return [
        {
            Metric.STEADY_IMAGES_PER_SEC: train,
            Metric.INFERENCE_IMAGES_PER_SEC: infer,
            Metric.FLOPS_PER_IMAGE: 4.88e6,
            Metric.PARAMS_TOTAL: 34826.0,
        }
        for train, infer in rates
    ]


def test_vs_max_is_the_median_of_each_rounds_ratio_not_a_ratio_of_medians() -> None:
    """Round 2 ran in a slow phase of the machine: both max and avg at half speed. The ratio
    per round is 0.5, 0.5, 0.8, so the median is 0.5; the medians' ratio would be 0.6."""
    rows = rows_from(
        {
            ("max", "flatten"): rounds((1000, 4000), (500, 2000), (1000, 4000)),
            ("avg", "flatten"): rounds((500, 1000), (250, 2000), (800, 4000)),
        }
    )
    avg = rows[1]
    assert (avg["downsample"], avg["head"]) == ("avg", "flatten")
    assert avg[Metric.TRAIN_IMAGES_PER_SEC] == 500
    assert avg["train_vs_max"] == 0.5
    assert avg["inference_vs_max"] == 1.0
    assert avg["train_rounds"] == [500, 250, 800]
    assert rows[0]["train_vs_max"] == 1.0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("strategies=[avg]", "strategies must include max: every ratio is to max pooling"),
        ("strategies=[max,maxx]", "unknown downsample 'maxx'"),
        ("heads=[dense]", "unknown head 'dense'"),
        ("epochs=1", "epochs must be >= 2: the first epoch is not counted"),
        ("heads=[gap,gap]", "heads must not repeat a name, got ['gap', 'gap']"),
    ],
)
def test_strategy_speed_rejects_bad_input_in_one_line(
    tmp_path: Path, override: str, message: str
) -> None:
    out = dsbench("tools.strategy_speed", override, f"out_dir={tmp_path}", cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("dsbench: error: ") and message in last, last
    assert list(tmp_path.iterdir()) == []  # nothing written
