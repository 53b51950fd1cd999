"""Models are backbone × strategy × head: shapes follow the formula, counts are exact."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
from helpers import describe_in_process

from dsbench.config import DownsampleConfig, HeadConfig, backbone_head, backbone_names, model_config
from dsbench.errors import DsbenchError
from dsbench.frameworks.keras_model import build_keras, count_trainable
from dsbench.model.downsample import STRATEGIES
from dsbench.model.geometry import out_size, total_padding, window_out
from dsbench.model.heads import HEADS
from dsbench.model.plan import count_params, layer_rows, plan_model, trace

MNIST = (28, 28, 1)
CIFAR = (32, 32, 3)


@pytest.mark.parametrize(
    ("n", "k", "s", "padding", "expected"),
    [
        (28, 3, 1, "valid", 26),
        (26, 2, 2, "valid", 13),
        (11, 2, 2, "valid", 5),  # floor: the last row is dropped
        (26, 3, 2, "valid", 12),
        (32, 3, 2, "same", 16),
        (16, 3, 2, "same", 8),
        (7, 3, 2, "same", 4),  # ceil(7 / 2)
        (8, 3, 1, "valid", 6),
    ],
)
def test_window_formula(n: int, k: int, s: int, padding: str, expected: int) -> None:
    assert window_out("x", n, k, s, padding) == expected
    # The same number from floor((n − k + 2p)/s) + 1 written out.
    assert (n - k + total_padding(n, k, s, padding)) // s + 1 == expected


def test_out_size_below_one_is_reported_with_the_formula() -> None:
    assert out_size(2, 3, 1) == 0
    with pytest.raises(DsbenchError, match=r"block2_conv1 .*2×2 to 0×0.*floor\(\(2 − 3 \+ 0\)/1\)"):
        window_out("block2_conv1", 2, 3, 1, "valid")


GRID = [
    *((("convnet", d, h), MNIST) for d, h in itertools.product(STRATEGIES, ("flatten", "gap"))),
    # On MNIST shapes, every backbone × strategy goes through describe (test_strategies).
    *(
        ((b, d, backbone_head(b)), CIFAR)
        for b in backbone_names()
        if b != "convnet"
        for d in STRATEGIES
    ),
]


@pytest.mark.parametrize(
    ("combo", "input_shape"), GRID, ids=lambda v: "-".join(v) if isinstance(v[0], str) else ""
)
def test_predicted_shapes_equal_keras(combo: tuple[str, str, str], input_shape: tuple) -> None:
    backbone, downsample, head = combo
    plan = plan_model(model_config(backbone), DownsampleConfig(downsample), HeadConfig(head), 10)
    rows = layer_rows(plan, input_shape)
    outputs: dict = {}
    model = build_keras(plan, input_shape, outputs=outputs)
    assert [row.shape for row in rows] == [tuple(outputs[row.key].shape[1:]) for row in rows]
    assert set(outputs) == {row.key for row in rows}  # no layer left out of the rows
    assert count_params(plan, input_shape) == count_trainable(model)


def test_keras_io_convnet_exactly() -> None:
    plan = plan_model(model_config("convnet"), DownsampleConfig("max"), HeadConfig("flatten"), 10)
    rows = trace(plan, MNIST)
    spatial = [shape[0] for name, _, shape in rows if name.startswith("block")]
    assert spatial == [26, 13, 11, 5]
    assert dict((name, shape) for name, _, shape in rows)["head1_flatten"] == (1600,)
    model = build_keras(plan, MNIST)
    assert model.count_params() == count_trainable(model) == 34_826


def test_only_the_slots_differ_between_strategies() -> None:
    """Same backbone, two strategies: the convs of the blocks are the same layers."""
    convs = {}
    for d in ("max", "avg", "overlap", "conv"):
        plan = plan_model(model_config("convnet"), DownsampleConfig(d), HeadConfig("flatten"), 10)
        convs[d] = [(n, s) for n, s in plan if n.startswith("block") and "_conv" in n]
    assert convs["max"] == convs["avg"] == convs["overlap"] == convs["conv"]


def test_every_registry_entry_has_a_config_file() -> None:
    from pathlib import Path

    conf = Path(__file__).resolve().parents[1] / "conf"
    assert {p.stem for p in (conf / "downsample").glob("*.yaml")} == set(STRATEGIES)
    assert {p.stem for p in (conf / "head").glob("*.yaml")} == set(HEADS)
    assert {p.stem for p in (conf / "model").glob("*.yaml")} == set(backbone_names())


def describe(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dsbench.describe", *overrides],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_describe_json_keras_io_model() -> None:
    out = describe("model=convnet", "downsample=max", "head=flatten", "output=json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["params"] == 34_826
    # conv1 26·26·32·9 + conv2 11·11·64·9·32 + dense 1600·10 multiply-adds, × 2
    assert d["flops"] == 2 * (26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 1600 * 10)
    shapes = {layer["name"]: layer["output_shape"] for layer in d["layers"]}
    assert shapes["block1_conv1"] == [26, 26, 32]
    assert shapes["block1_down"] == [13, 13, 32]
    assert shapes["block2_down"] == [5, 5, 64]
    assert shapes["head1_flatten"] == [1600]
    flops = {layer["name"]: layer["flops"] for layer in d["layers"]}
    assert flops["block2_conv1"] == 2 * 11 * 11 * 64 * 9 * 32  # describe's per-layer FLOPs
    assert sum(flops.values()) == d["flops"]


def test_describe_text_and_springenberg_default_head() -> None:
    d = describe_in_process("dataset=mnist", "model=springenberg_c", "downsample=conv")
    assert d["head"] == "allconv"  # the backbone's config picks the paper's head
    text = describe("downsample=avg")
    assert text.returncode == 0, text.stderr
    assert "params 34,826" in text.stdout and "block2_down" in text.stdout


def test_describe_rejects_geometry_below_one_pixel() -> None:
    out = describe("downsample.window=13", "downsample.stride=13")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "block2_conv1" in lines[0] and "floor((n − k + 2p)/s) + 1" in lines[0]
