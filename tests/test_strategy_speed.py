"""`python -m dsbench.tools.strategy_speed`: every strategy × head timed side by side."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest
from helpers import dsbench

from dsbench.tools.bench import device_name


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
    assert (table.loc["max", "train_vs_max"] == 1.0).all()
    assert (table.loc["max", "inference_vs_max"] == 1.0).all()
    assert (table[["train_images_per_sec", "inference_images_per_sec"]] > 0).all().all()
    # strided conv does fewer FLOPs than a conv followed by a max pool
    assert (table.loc["strided", "mflops"] < table.loc["max", "mflops"]).all()
    assert table["train_rounds"].map(lambda r: len(ast.literal_eval(r))).eq(2).all()
    report = (tmp_path / f"{name}.md").read_text()
    assert "Produced by `python -m dsbench.tools.strategy_speed strategies=[max,strided]" in report
    assert report in out.stdout
    assert "strided+gap round 2: " in out.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("strategies=[avg]", "strategies must include max: every ratio is to max pooling"),
        ("strategies=[max,maxx]", "unknown downsample 'maxx'"),
        ("heads=[dense]", "unknown head 'dense'"),
        ("epochs=1", "epochs must be >= 2: the first epoch is not counted"),
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
