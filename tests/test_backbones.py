"""Backbones are YAML: ResNet-20 and airbench with their papers' exact counts, residual
blocks whose shortcut downsamples as the main path does, APS exactly shift-invariant in a
circular ResNet-20, and a user's backbone added with one YAML and no Python."""

from __future__ import annotations

import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import TINY, all_runs, describe_in_process, dsbench, store_uri
from hydra import compose, initialize_config_module

from dsbench import config
from dsbench.config import (
    DownsampleConfig,
    HeadConfig,
    backbone_head,
    backbone_names,
    model_config,
)
from dsbench.errors import DsbenchError
from dsbench.frameworks.keras_model import build_keras, count_trainable
from dsbench.model.downsample import STRATEGIES
from dsbench.model.layers import Conv, Residual, walk
from dsbench.model.plan import count_params, count_state, flops_per_image, layer_rows, plan_model

CIFAR = (32, 32, 3)
MNIST = (28, 28, 1)
ROOT = Path(__file__).resolve().parents[1]


def plan(backbone: str, downsample: str = "max", head: str | None = None, **model: object):
    return plan_model(
        model_config(backbone, **model),
        DownsampleConfig(downsample),
        HeadConfig(head or backbone_head(backbone)),
        10,
    )


def conv_bn(c_in: int, c_out: int) -> int:
    """A 3×3 conv without bias, then batch norm's γ and β."""
    return 9 * c_in * c_out + 2 * c_out


def test_resnet20_is_he_et_al_with_269_722_parameters() -> None:
    stem = conv_bn(3, 16)  # 464
    stage1 = 6 * conv_bn(16, 16)  # 14,016
    stage2 = conv_bn(16, 32) + 5 * conv_bn(32, 32)  # 51,072 (option A: no shortcut params)
    stage3 = conv_bn(32, 64) + 5 * conv_bn(64, 64)  # 203,520
    dense = 64 * 10 + 10  # 650
    assert (stem, stage1, stage2, stage3) == (464, 14_016, 51_072, 203_520)
    expected = stem + stage1 + stage2 + stage3 + dense
    assert expected == 269_722
    strided = plan("resnet20", "strided")
    assert count_params(strided, CIFAR) == 269_722
    # 271,098 with batch norm's moving mean and variance (2 × the 688 channels normalised).
    assert count_params(strided, CIFAR) + count_state(strided, CIFAR) == 271_098
    model = build_keras(strided, CIFAR)
    assert count_trainable(model) == 269_722 and model.count_params() == 271_098
    # The original network: the first conv of stages 2 and 3 at stride 2, maps 32 → 16 → 8.
    convs = {r.name: r for r in layer_rows(strided, CIFAR) if isinstance(r.spec, Conv)}
    assert [n for n, r in convs.items() if r.spec.stride == 2] == ["block5_conv1", "block8_conv1"]
    assert convs["block5_conv1"].shape == (16, 16, 32) and convs["block8_conv1"].shape == (8, 8, 64)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_resnet20_parameter_free_strategies_keep_the_count(name: str) -> None:
    """A slot's parameters are added once: the shortcut reuses the main path's layers."""
    per_slot = {"conv": 9, "convpool": 9, "lip": 9, "s2d": 4}  # k²·C² + C per slot
    extra = sum(per_slot.get(name, 0) * c * c + c for c in (32, 64) if name in per_slot)
    assert count_params(plan("resnet20", name), CIFAR) == 269_722 + extra


def test_a_downsampling_block_sends_its_shortcut_through_the_slot() -> None:
    rows = [r for r in layer_rows(plan("resnet20", "blur"), CIFAR) if r.block == "block5"]
    shortcut = [(r.name, r.shared, r.shape) for r in rows if r.path == "shortcut"]
    assert shortcut == [
        ("block5_shortcut_pad", False, (32, 32, 32)),  # 16 zero channels appended (option A)
        ("block5_down1_pool", True, (32, 32, 32)),  # the main path's max 2×2, stride 1, same
        ("block5_down2_blurpool", True, (16, 16, 32)),  # and its blur at stride 2
    ]
    main = [r.name for r in rows if r.path == "main"]
    # conv1 at stride 1 → BN → ReLU → slot → conv2 → BN, then the sum and its ReLU.
    assert main == [
        "block5_conv1",
        "block5_bn1",
        "block5_act1",
        "block5_down1_pool",
        "block5_down2_blurpool",
        "block5_conv2",
        "block5_bn2",
    ]
    assert [r.name for r in rows if r.path == "sum"] == ["block5_add", "block5_act"]


def test_shortcut_flops_count_the_shared_layers_again() -> None:
    """The learned conv on the shortcut: its multiply-adds count, its weights do not."""
    conv_slot = plan("resnet20", "conv")
    block = dict(conv_slot)["block5"]
    assert isinstance(block, Residual)
    main = sum(s.flops(x) for _, s, x, _ in walk(block.body, (32, 32, 16)))
    assert block.flops((32, 32, 16)) == main + 2 * 9 * 32 * 32 * 16 * 16


def test_gap_head_without_dropout_is_the_resnet_head() -> None:
    """head=gap (1×1 conv to classes, then the mean) with head.dropout=0 computes GAP →
    dense: the same parameters, and the same outputs with the same weights."""
    linear = build_keras(plan("resnet20", "strided", "linear"), CIFAR)
    gap = plan_model(
        model_config("resnet20"), DownsampleConfig("strided"), HeadConfig("gap", dropout=0.0), 10
    )
    gap_model = build_keras(gap, CIFAR)
    assert gap_model.count_params() == linear.count_params()
    for a, b in zip(gap_model.weights, linear.weights, strict=True):
        b.assign(keras.ops.reshape(a, b.shape))
    x = np.random.default_rng(0).uniform(0, 255, (4, *CIFAR)).astype("float32")
    np.testing.assert_allclose(
        gap_model.predict(x, verbose=0), linear.predict(x, verbose=0), atol=1e-5
    )


def test_airbench_with_max_has_the_reference_count() -> None:
    """airbench94.py's make_net(): whitening conv 2×2 3 → 24 with bias, three ConvGroups
    (conv 3×3 without bias, MaxPool2d(2), BN, GELU, conv, BN, GELU), Linear(256, 10, bias=False);
    its BatchNorm has a weight and a bias (the weight frozen, still a parameter)."""
    whiten = 24 * 3 * 2 * 2 + 24  # 312
    groups = sum(conv_bn(a, b) + conv_bn(b, b) for a, b in ((24, 64), (64, 256), (256, 256)))
    linear = 256 * 10
    assert whiten + groups + linear == 1_972_792
    p = plan("airbench", "max")
    assert count_params(p, CIFAR) == 1_972_792
    shapes = {r.name: r.shape for r in layer_rows(p, CIFAR)}
    # 32 → 31 (2×2 valid) → 15 → 7 → 3, then a global max (MaxPool2d(3) on 3×3).
    assert [shapes[f"block{i}_down"][0] for i in (2, 3, 4)] == [15, 7, 3]
    # conv → pool → BN → GELU: the slot sits right after the conv.
    names = [r.name for r in layer_rows(p, CIFAR)]
    assert names[names.index("block2_conv1") :][:4] == [
        "block2_conv1",
        "block2_down",
        "block2_bn1",
        "block2_act1",
    ]


@pytest.mark.parametrize("backbone", ["resnet20", "airbench"])
@pytest.mark.parametrize("shape", [CIFAR, MNIST], ids=["cifar10", "mnist"])
def test_every_strategy_fits_both_new_backbones(backbone: str, shape: tuple) -> None:
    """Planned without Keras; (the Keras shapes of every row are checked in test_model)."""
    for name in STRATEGIES:
        p = plan(backbone, name)
        rows = layer_rows(p, shape)
        assert rows[-1].shape == (10,), name
        # describe's per-layer FLOPs (shortcuts through the slot included) add up to the total
        assert sum(r.flops for r in rows) == flops_per_image(p, shape) > 0, name


def test_a_residual_block_that_cannot_be_summed_is_refused() -> None:
    model = model_config("resnet20")
    model.blocks[1].convs[0].padding = "valid"  # 32 → 30 on the main path only
    with pytest.raises(DsbenchError, match=r"layer block2: its shortcut gives 32×32×16 but its"):
        layer_rows(plan_model(model, DownsampleConfig(), HeadConfig("linear"), 10), CIFAR)


def test_width_scales_resnet20() -> None:
    half = plan("resnet20", "strided", width=0.5)
    convs = [r.spec.filters for r in layer_rows(half, CIFAR) if isinstance(r.spec, Conv)]
    assert sorted(set(convs)) == [8, 16, 32]  # 16/32/64 × 0.5


def test_the_backbones_are_the_yaml_files() -> None:
    assert backbone_names() == sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
    assert {"convnet", "resnet20", "airbench", "springenberg_c"} <= set(backbone_names())


# --- APS in a circular ResNet-20: the APS paper's claim, exactly ----------------------------


def fashion(data: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    from dsbench.data.idx import read_idx_gz

    x = read_idx_gz(data / "fashion_mnist" / "t10k-images-idx3-ubyte.gz")[:n, ..., None]
    y = read_idx_gz(data / "fashion_mnist" / "t10k-labels-idx1-ubyte.gz")[:n]
    return x, y.astype(int)


def circular_resnet20(downsample: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    p = plan_model(
        model_config("resnet20", padding_mode="circular"),
        DownsampleConfig(downsample),
        HeadConfig("gap", dropout=0.0),
        10,
    )
    return build_keras(p, MNIST)


@pytest.mark.slow
def test_aps_resnet20_with_circular_padding_is_exactly_shift_invariant(shared_data: Path) -> None:
    x, y = fashion(shared_data, 1000)
    every_shift = np.stack(
        [np.roll(x[0], (dy, dx), axis=(0, 1)) for dy in range(28) for dx in range(28)]
    )
    rng = np.random.default_rng(0)
    offsets = rng.integers(0, 28, (len(x), 2))
    rolled = np.stack(
        [np.roll(img, tuple(o), axis=(0, 1)) for img, o in zip(x, offsets, strict=True)]
    )
    models = {name: circular_resnet20(name) for name in ("aps", "max")}
    for trained in (False, True):
        if trained:  # 60 steps: several classes predicted, the BN statistics settled
            for model in models.values():
                model.compile(
                    optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy"
                )
                model.fit(x, y, batch_size=50, epochs=3, verbose=0)
        for name, model in models.items():
            out, out_rolled, all_shifts = (
                model.predict(images, batch_size=250, verbose=0)
                for images in (x, rolled, every_shift)
            )
            same = np.mean(out.argmax(-1) == out_rolled.argmax(-1))
            if name == "aps":
                assert same == 1.0, trained
                assert np.abs(out - out_rolled).max() < 1e-4
                assert np.abs(all_shifts - all_shifts[0]).max() < 1e-4  # all 784 shifts
            else:
                assert np.abs(out - out_rolled).max() > 1e-4  # max pooling: not invariant
        if trained:
            assert len(set(models["aps"].predict(x, verbose=0).argmax(-1))) > 2
            agree = np.mean(
                models["max"].predict(x, verbose=0).argmax(-1)
                == models["max"].predict(rolled, verbose=0).argmax(-1)
            )
            assert agree < 1.0


# --- a user's backbone: one YAML in their own config folder, no Python ---------------------

USER_BACKBONE = """\
# A small residual net with batch norm: conv → two residual blocks, the second downsampling.
name: tinyres
description: "a user's backbone"
norm: batch
blocks:
  - convs: [{filters: 8}]
    slot: null
  - {convs: [{filters: 8}, {filters: 8}], residual: true, slot: null}
  - {convs: [{filters: 16}, {filters: 16}], residual: true, slot: 1}
slot_padding: same
"""


@pytest.fixture(scope="module")
def user_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    conf = tmp_path_factory.mktemp("user_conf")
    (conf / "model").mkdir()
    (conf / "model" / "tinyres.yaml").write_text(textwrap.dedent(USER_BACKBONE))
    return conf


def test_a_user_backbone_is_described(user_conf: Path) -> None:
    """In process, with the user's folder on the search path as --config-dir puts it (the
    command itself: test_a_user_backbone_trains)."""
    search = f"hydra.searchpath=[file://{user_conf}]"
    d = describe_in_process(search, "model=tinyres", "head=linear", "downsample=aps")
    # stem 72 + 16, block 2 × (576 + 16), block 1,152 + 32 + 2,304 + 32, dense 170
    assert d["trainable_params"] == 88 + 2 * 592 + 1_184 + 2_336 + 170
    slot = [x for x in d["layers"] if x["slot"]]
    assert [(x["path"], x["shared"], x["output_shape"]) for x in slot] == [
        ("main", False, [14, 14, 16]),
        ("shortcut", True, [14, 14, 16]),
    ]


@pytest.mark.slow
def test_a_user_backbone_trains(user_conf: Path, tmp_path: Path, shared_data: Path) -> None:
    uri = store_uri(tmp_path)
    out = dsbench(
        "train",
        "--config-dir",  # before the overrides: Hydra's argument parser wants it so
        str(user_conf),
        *TINY,
        "model=tinyres",
        "head=linear",
        "downsample=blur",
        "dataset.train_subset=128",
        f"dataset.archive_dir={shared_data / 'mnist'}",
        f"tracking.uri={uri}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = all_runs(uri)
    assert run.data.tags["model"] == "tinyres"
    assert run.info.status == "FINISHED"
    assert "test_accuracy" in run.data.metrics


def test_the_resnet20_preset_trains_every_strategy_once() -> None:
    """(tests/test_experiments.py checks every job of it as a dry run.)"""
    config.register()
    with initialize_config_module(config.CONFIG_PATH.removeprefix("pkg://"), version_base="1.3"):
        cfg = compose("train", ["experiments=resnet20_strategies"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params["downsample"].split(",") == list(STRATEGIES)
    assert str(params["trainer.seed"]) == "0"
    assert (cfg.model.name, cfg.head.name, cfg.dataset.name) == (
        "resnet20",
        "linear",
        "fashion_mnist",
    )
    assert cfg.trainer.epochs == 1 and cfg.dataset.train_subset == 2000
