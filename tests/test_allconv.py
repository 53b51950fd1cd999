"""The Springenberg 2015 study: 12 models through describe, the sweep, tags and the lr table."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from helpers import all_runs, dsbench, store_uri
from hydra import compose, initialize_config_module

from dsbench import allconv, config
from dsbench.build.summary import describe
from dsbench.studies import springenberg2015 as springenberg

config.register()

PAPER_PARAMS = {  # ../shared/docs/springenberg2015.md, CIFAR-10 head
    "springenberg_a": {
        "max": 839_242,
        "strided": 839_242,
        "convpool": 1_254_250,
        "conv": 1_254_250,
    },
    "springenberg_b": {
        "max": 885_610,
        "strided": 885_610,
        "convpool": 1_300_618,
        "conv": 1_300_618,
    },
    "springenberg_c": {
        "max": 954_730,
        "strided": 954_730,
        "convpool": 1_369_738,
        "conv": 1_369_738,
    },
}
TWELVE = [(m, d) for m in PAPER_PARAMS for d in PAPER_PARAMS[m]]


def compose_describe(*overrides: str) -> config.DescribeConfig:
    with initialize_config_module(config.CONFIG_PATH.removeprefix("pkg://"), version_base="1.3"):
        return config.validate(
            compose("describe", overrides=list(overrides)), config.DescribeConfig
        )


@pytest.mark.parametrize(("model", "downsample"), TWELVE)
def test_twelve_models_through_describe(model: str, downsample: str) -> None:
    d = describe(compose_describe("dataset=cifar10", f"model={model}", f"downsample={downsample}"))
    assert d["params"] == PAPER_PARAMS[model][downsample]
    assert d["head"] == "allconv"
    spatial = [layer["output_shape"][0] for layer in d["layers"] if len(layer["output_shape"]) == 3]
    assert spatial[0] == 32 and 16 in spatial and 8 in spatial and spatial[-1] == 6


def test_describe_cli_all_cnn_c(tmp_path: Path) -> None:
    out = dsbench(
        "describe",
        "dataset=cifar10",
        "model=springenberg_c",
        "downsample=conv",
        "output=json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["params"] == 1_369_738


def test_fashion_mnist_is_padded_to_the_paper_geometry() -> None:
    d = describe(compose_describe("dataset=fashion_mnist", "model=springenberg_a"))
    shapes = {layer["name"]: layer["output_shape"] for layer in d["layers"]}
    assert shapes["pad"] == [32, 32, 1]
    assert shapes["block1_down"][0] == 16 and shapes["block2_down"][0] == 8


def test_paper_names_and_errors() -> None:
    assert springenberg.variant("springenberg_c", "conv") == "All-CNN-C"
    assert springenberg.variant("springenberg_a", "max") == "Model A"
    assert springenberg.variant("springenberg_b", "avg") == "B+avg"
    assert springenberg.variant("convnet", "max") is None
    assert springenberg.paper_error("cifar10", "springenberg_a", "strided", False) == 13.46
    assert springenberg.paper_error("cifar10", "springenberg_c", "conv", True) == 7.25
    assert springenberg.paper_error("cifar100", "springenberg_c", "conv", False) == 33.71
    assert springenberg.paper_error("fashion_mnist", "springenberg_c", "conv", False) is None


@pytest.mark.slow  # a 48-job sweep through the CLI (test_experiments composes it in process)
def test_reproduce_allconv_dry_run_expands_the_documented_grid(tmp_path: Path) -> None:
    out = dsbench("train", "-m", "experiments=springenberg2015", "dry_run=true", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = [line for line in out.stdout.splitlines() if line.startswith("dry run:")]
    assert len(jobs) == 3 * 4 * 4  # backbones × variants × learning rates, one seed
    assert sum("lr=0.25 " in j for j in jobs) == 12
    assert not (tmp_path / "mlflow.db").exists()  # a dry run writes nothing


@pytest.fixture(scope="module")
def twelve_model_store(cifar10_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The small preset on a generated CIFAR-10 archive: all 12 models, 1 epoch each."""
    folder = tmp_path_factory.mktemp("allconv")
    uri = store_uri(folder)
    out = dsbench(
        "train",
        "-m",
        "experiments=springenberg2015_small",
        "dataset.source=archive",
        f"dataset.archive_dir={cifar10_archive_dir}",
        "dataset.verify_md5=false",  # a generated archive cannot have the official md5
        "dataset.train_subset=null",
        "dataset.test_subset=null",
        "trainer.epochs=1",
        "trainer.batch_size=32",
        "trainer.verbose=0",
        f"tracking.uri={uri}",
        cwd=folder,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return uri


@pytest.mark.slow
def test_every_model_trains_one_epoch_and_logs(twelve_model_store: str) -> None:
    runs = [r for r in all_runs(twelve_model_store) if "variant" in r.data.tags]
    assert len(runs) == 12 and all(r.info.status == "FINISHED" for r in runs)
    by_variant = {r.data.tags["variant"]: r for r in runs}
    assert set(by_variant) == {springenberg.variant(m, d) for m, d in TWELVE}
    all_cnn_c = by_variant["All-CNN-C"]
    assert float(all_cnn_c.data.tags["paper_error"]) == 9.08
    assert all_cnn_c.data.metrics["params_total"] == 1_369_738
    assert all_cnn_c.data.params["dataset.preprocess"] == "gcn_zca"
    assert all_cnn_c.data.params["trainer.optimizer"] == "sgd"


@pytest.mark.slow
def test_allconv_table_from_the_store(twelve_model_store: str, tmp_path: Path) -> None:
    out_file = tmp_path / "table.md"
    allconv.main(
        [
            "--uri",
            twelve_model_store,
            "--experiment",
            "springenberg2015-cifar10",
            "--out",
            str(out_file),
        ]
    )
    text = out_file.read_text()
    assert text.count("| cifar10 |") == 12
    assert "| All-CNN-C | 0.05 |" in text and "| 9.08 |" in text


@pytest.mark.slow
def test_sweep_analysis_puts_ours_beside_the_paper(twelve_model_store: str) -> None:
    """The sweep's end logs paper_vs_ours.md to its parent: the same table as dsbench.allconv."""
    (parent,) = [r for r in all_runs(twelve_model_store) if "dsbench.role" in r.data.tags]
    path = mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id,
        artifact_path="analysis/paper_vs_ours.md",
        tracking_uri=twelve_model_store,
    )
    text = Path(path).read_text()
    assert text.count("| cifar10 |") == 12
    assert "| All-CNN-C | 0.05 |" in text and "| 9.08 |" in text
    assert "- springenberg_c: the order of the variants" in text


def test_lr_is_chosen_on_validation_not_test() -> None:
    """Two lrs: the one with the better val accuracy is reported, even with a worse test error."""
    rows = []
    for lr, val, test in [(0.1, 0.80, 0.30), (0.01, 0.90, 0.40)]:
        for seed, jitter in [(0, 0.0), (1, 0.02)]:
            rows.append(
                {
                    "dataset": "cifar10",
                    "model": "springenberg_c",
                    "downsample": "conv",
                    "params.trainer.lr": str(lr),
                    "metrics.val_accuracy": val,
                    "metrics.test_error": test + jitter,
                    "paper_error": 9.08,
                    "seed": seed,
                }
            )
    table = springenberg.selected(pd.DataFrame(rows))
    (row,) = table.itertuples()
    assert row.lr == 0.01 and row.seeds == 2
    assert row.test_error_mean == pytest.approx(41.0)
    assert row.test_error_std == pytest.approx(pd.Series([40.0, 42.0]).std())
    assert row.delta == pytest.approx(41.0 - 9.08)
