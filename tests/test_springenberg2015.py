"""The Springenberg 2015 study: 12 models through describe, the sweep, tags and the lr table."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from helpers import all_runs, dsbench, store_uri, train
from hydra import compose, initialize_config_module

from dsbench import allconv, config
from dsbench.contract import Metric, Tag, metric_column, tag_column
from dsbench.errors import DsbenchError
from dsbench.frameworks.summary import describe
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
    assert not (tmp_path / "outputs").exists()  # not even Hydra's 48 job folders
    end = "48 jobs checked (dry run): nothing trained or written; the study's time where it "
    assert end + "was measured: not measured" in out.stdout


def small_preset(archive_dir: Path) -> list[str]:
    """The small preset's overrides on a generated CIFAR-10 archive, 1 epoch."""
    return [
        "experiments=springenberg2015_small",
        "dataset.source=archive",
        f"dataset.archive_dir={archive_dir}",
        "dataset.verify_md5=false",  # a generated archive cannot have the official md5
        "dataset.train_subset=null",
        "dataset.test_subset=null",
        "trainer.epochs=1",
        "trainer.batch_size=32",
        "trainer.verbose=0",
    ]


@pytest.fixture(scope="module")
def twelve_model_store(cifar10_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The small preset on a generated CIFAR-10 archive: all 12 models, 1 epoch each."""
    folder = tmp_path_factory.mktemp("springenberg2015")
    return train(folder, *small_preset(cifar10_archive_dir), data=None, sweep=True, tiny=False).uri


@pytest.mark.slow
def test_every_model_trains_one_epoch_and_logs(twelve_model_store: str) -> None:
    runs = [r for r in all_runs(twelve_model_store) if springenberg.VARIANT_TAG in r.data.tags]
    assert len(runs) == 12 and all(r.info.status == "FINISHED" for r in runs)
    by_variant = {r.data.tags[springenberg.VARIANT_TAG]: r for r in runs}
    assert set(by_variant) == {springenberg.variant(m, d) for m, d in TWELVE}
    all_cnn_c = by_variant["All-CNN-C"]
    assert float(all_cnn_c.data.tags[springenberg.PAPER_ERROR_TAG]) == 9.08
    assert all_cnn_c.data.metrics[Metric.PARAMS_TOTAL] == 1_369_738
    assert all_cnn_c.data.params["dataset.preprocess"] == "gcn_zca"
    assert all_cnn_c.data.params["trainer.optimizer"] == "sgd"


def main_table(text: str) -> str:
    """The paper-vs-ours table of a report (the lr grid below it has a row per model too)."""
    return next(part for part in text.split("\n\n") if part.startswith("| dataset | variant"))


@pytest.mark.slow
def test_allconv_table_from_the_store(twelve_model_store: str, tmp_path: Path) -> None:
    out_file = tmp_path / "table.md"
    allconv.main(
        [f"tracking.uri={twelve_model_store}", "experiments=springenberg2015", f"out={out_file}"]
    )
    text = out_file.read_text()
    assert main_table(text).count("| cifar10 |") == 12
    assert "| All-CNN-C | 0.05 |" in text and "| 9.08 |" in text


@pytest.mark.slow
def test_sweep_analysis_puts_ours_beside_the_paper(twelve_model_store: str) -> None:
    """The sweep's end logs paper_vs_ours.md to its parent: the same table as dsbench.allconv."""
    (parent,) = [r for r in all_runs(twelve_model_store) if Tag.ROLE in r.data.tags]
    path = mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id,
        artifact_path="analysis/paper_vs_ours.md",
        tracking_uri=twelve_model_store,
    )
    text = Path(path).read_text()
    assert main_table(text).count("| cifar10 |") == 12
    assert "| All-CNN-C | 0.05 |" in text and "| 9.08 |" in text
    assert (
        "- **C** (cifar10): ours " in text and "paper (CIFAR-10) All-CNN-C < ConvPool-CNN-C" in text
    )


@pytest.mark.slow
def test_second_stage_trains_a_seed_at_the_chosen_lr(
    twelve_model_store: str, cifar10_archive_dir: Path, tmp_path: Path
) -> None:
    """`dsbench springenberg2015 <the grid's overrides> seeds=1` prints one command per
    model; run through sh, the one for All-CNN-C adds seed 1 at its lr, and the table reports
    n=2."""
    shutil.copy(twelve_model_store.removeprefix("sqlite:///"), tmp_path / "mlflow.db")
    uri = store_uri(tmp_path)
    args = [f"tracking.uri={uri}", *small_preset(cifar10_archive_dir)]
    out = dsbench("allconv", *args, "seeds=1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    commands = out.stdout.splitlines()
    assert len(commands) == 12 and all(f"tracking.uri={uri}" in c for c in commands)
    (all_cnn_c,) = [c for c in commands if "model=springenberg_c downsample=conv " in c]
    run = subprocess.run(all_cnn_c, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    table = dsbench("allconv", *args, cwd=tmp_path).stdout
    # A 1-epoch smoke run on random labels may end at chance: "(n=2, 2 at chance)".
    assert "| All-CNN-C | 0.05 |" in table and re.search(
        r"\(n=2(, [12] at chance)?\) \| 9\.08 \|", table
    )
    assert len(re.findall(r"\(n=1(, 1 at chance)?\)", main_table(table))) == 11


def run_row(
    model: str,
    downsample: str,
    lr: float,
    seed: int,
    val: float,
    test: float | None,
    dataset: str = "fashion_mnist",
    loss: float | None = None,
    **params: str,
) -> dict[str, object]:
    """One run as dsbench.analysis.load.load_runs gives it (params and tags as strings);
    test None: it diverged (Keras still logged that epoch's val accuracy); loss: the final
    training loss."""
    done = test is not None
    paper = springenberg.paper_error(dataset, model, downsample, False)
    return {
        "dataset": dataset,
        "model": model,
        "downsample": downsample,
        "seed": str(seed),
        "status": "FINISHED" if done else "FAILED",
        tag_column(springenberg.VARIANT_TAG): springenberg.variant(model, downsample),
        tag_column(springenberg.PAPER_ERROR_TAG): None if paper is None else str(paper),
        tag_column(Tag.CONFIG_HASH): f"{dataset}/{model}/{downsample}/{lr}/{seed}",
        tag_column(Tag.FAILURE_REASON): None if done else "Diverged: loss became nan in epoch 2",
        "params.trainer.lr": str(lr),
        "params.trainer.seed": str(seed),
        "params.trainer.epochs": "5",
        **{f"params.{k}": v for k, v in params.items()},
        metric_column(Metric.VAL_ACCURACY): val,
        metric_column(Metric.TEST_ERROR): test,
        metric_column(Metric.LOSS): loss,
    }


def study(*rows: dict[str, object]) -> pd.DataFrame:
    return springenberg.study_frame(pd.DataFrame(rows))


def test_lr_is_chosen_on_validation_not_test() -> None:
    """Two lrs: the one with the better val accuracy is reported, even with a worse test error."""
    rows = [
        run_row("springenberg_c", "conv", lr, seed, val, test + jitter, dataset="cifar10")
        for lr, val, test in [(0.1, 0.80, 0.30), (0.01, 0.90, 0.40)]
        for seed, jitter in [(0, 0.0), (1, 0.02)]
    ]
    (row,) = springenberg.selected(study(*rows)).itertuples()
    assert row.lr == 0.01 and row.seeds == 2
    assert row.test_error_mean == pytest.approx(41.0)
    assert row.test_error_std == pytest.approx(pd.Series([40.0, 42.0]).std())
    assert row.delta == pytest.approx(41.0 - 9.08)


def test_seeds_added_at_the_chosen_lr_do_not_move_the_choice() -> None:
    """The grid (seed 0 at every lr) picks lr 0.1; seed 1, run only at 0.1 and worse on
    validation, is reported there and does not hand the choice to 0.01. lr 0.25 diverged
    with the best val accuracy of all: it is not chosen."""
    runs = study(
        run_row("springenberg_c", "conv", 0.1, 0, 0.90, 0.10),
        run_row("springenberg_c", "conv", 0.01, 0, 0.85, 0.14),
        run_row("springenberg_c", "conv", 0.1, 1, 0.70, 0.12),
        run_row("springenberg_c", "conv", 0.25, 0, 0.99, None),
    )
    (row,) = springenberg.selected(runs).itertuples()
    assert row.lr == 0.1 and row.val_accuracy == 0.90 and row.seeds == 2
    assert row.test_error_mean == pytest.approx(11.0) and row.diverged_at_lr == 0


def test_a_second_stage_seed_that_diverges_is_shown_not_hidden() -> None:
    runs = study(
        run_row("springenberg_c", "max", 0.1, 0, 0.90, 0.10),
        run_row("springenberg_c", "max", 0.01, 0, 0.85, 0.14),
        run_row("springenberg_c", "max", 0.1, 1, 0.10, None),
    )
    assert "| fashion_mnist | Model C | 0.1 | 90.00 | 10.00 (n=1, 1 diverged) |" in (
        springenberg.report(runs)
    )


def test_a_model_whose_every_lr_diverged_has_no_result() -> None:
    runs = study(*(run_row("springenberg_a", "strided", lr, 0, 0.1, None) for lr in (0.25, 0.1)))
    table = springenberg.selected(runs)
    (row,) = table.itertuples()
    assert pd.isna(row.lr) and row.seeds == 0
    text = springenberg.report(runs)
    assert "| Strided-CNN-A | every lr diverged |" in text
    assert "Runs that diverged (loss NaN or infinite): 2." in text
    assert "- Strided-CNN-A, lr 0.1, seed 0: loss became nan in epoch 2" in text
    assert springenberg.seed_commands(table, "1", ["a=b"]) == [
        "# Strided-CNN-A: every lr diverged; no lr to train more seeds at"
    ]


def test_a_model_without_a_seed_at_every_lr_still_has_its_row() -> None:
    runs = study(
        run_row("springenberg_b", "conv", 0.1, 0, 0.9, 0.1),
        run_row("springenberg_b", "conv", 0.01, 1, 0.9, 0.1),
        run_row("springenberg_b", "max", 0.1, 0, 0.9, 0.1),
    )
    table = springenberg.selected(runs).set_index("downsample")
    assert table.at["conv", "note"] == "no seed ran at every lr" and pd.isna(table.at["conv", "lr"])
    assert table.at["max", "lr"] == 0.1


def test_a_config_trained_twice_counts_once() -> None:
    twice = run_row("springenberg_c", "conv", 0.25, 0, 0.1, None)
    runs = study(twice, twice, run_row("springenberg_c", "conv", 0.1, 0, 0.9, 0.1))
    assert int(runs["diverged"].sum()) == 1
    assert "Runs that diverged (loss NaN or infinite): 1." in springenberg.report(runs)


def test_runs_of_one_model_trained_differently_are_refused() -> None:
    """A second stage with other overrides than the grid's would be averaged in as a seed."""
    with pytest.raises(
        DsbenchError, match=r"All-CNN-C \(fashion_mnist\) differ in trainer\.epochs"
    ):
        study(
            run_row("springenberg_c", "conv", 0.1, 0, 0.9, 0.1),
            {**run_row("springenberg_c", "conv", 0.1, 1, 0.9, 0.1), "params.trainer.epochs": "7"},
        )


def test_no_validation_accuracy_is_refused() -> None:
    with pytest.raises(DsbenchError, match="no validation accuracy"):
        study(run_row("springenberg_c", "conv", 0.1, 0, None, 0.1))


def four_variants(errors: dict[str, float], seeds: int = 2) -> pd.DataFrame:
    jitters = [-0.002, 0.002][:seeds] if seeds > 1 else [0.0]
    return study(
        *(
            run_row("springenberg_b", d, 0.05, seed, 0.9, e + jitter)
            for d, e in errors.items()
            for seed, jitter in enumerate(jitters)
        )
    )


def verdict_line(text: str) -> str:
    return next(x for x in text.splitlines() if x.startswith("- **B** (fashion_mnist): "))


def test_verdict_says_whether_the_papers_claims_hold_and_by_how_much() -> None:
    holds = verdict_line(
        springenberg.report(
            four_variants({"conv": 0.091, "convpool": 0.093, "max": 0.102, "strided": 0.110})
        )
    )
    assert (
        "ours All-CNN-B 9.10 < ConvPool-CNN-B 9.30 < Model B 10.20 < Strided-CNN-B 11.00" in holds
    )
    assert "Strided-CNN worst: yes (+0.80 pp)" in holds
    assert "both better than the base model: yes (+0.90 pp)" in holds
    assert "the paper's order: yes" in holds and "(seed std up to 0.28 pp)" in holds
    fails = verdict_line(
        springenberg.report(
            four_variants({"conv": 0.120, "convpool": 0.093, "max": 0.102, "strided": 0.095}, 1)
        )
    )
    assert "Strided-CNN worst: no (-2.50 pp)" in fails
    assert "both better than the base model: no (-1.80 pp)" in fails
    assert "the paper's order: no" in fails and "n=1: no seed spread" in fails


def test_grid_table_shows_every_lr_and_the_divergences() -> None:
    runs = study(
        run_row("springenberg_c", "max", 0.25, 0, 0.1, None),
        run_row("springenberg_c", "max", 0.05, 0, 0.8812, 0.12),
    )
    text = springenberg.report(runs)
    assert "| dataset | variant | lr 0.25 | lr 0.05 |" in text
    assert "| fashion_mnist | Model C | diverged | 88.12 |" in text


def test_a_run_that_ended_at_chance_is_named_in_the_grid_and_the_list() -> None:
    """lr 0.25 finished with the training loss at ln 10 (every ReLU dead, not NaN): it stays
    a result and is not chosen, but the grid cell and the list say it ended at chance. lr
    0.1's loss of 2.29 is near chance but not at it; CIFAR-100's chance is ln 100, not ln 10;
    a run at ln 10 with 35 % on validation learned something; an unknown dataset is not judged."""
    ln10 = math.log(10)
    runs = study(
        run_row("springenberg_a", "max", 0.25, 0, 0.1113, 0.90, loss=ln10 + 0.0003),
        run_row("springenberg_a", "max", 0.1, 0, 0.20, 0.80, loss=2.29),
        run_row("springenberg_a", "max", 0.05, 0, 0.85, 0.16, loss=0.41),
        run_row("springenberg_c", "conv", 0.05, 0, 0.40, 0.62, dataset="cifar100", loss=ln10),
        run_row("springenberg_c", "conv", 0.01, 0, 0.01, 0.99, dataset="cifar100", loss=4.6052),
        run_row("springenberg_b", "strided", 0.25, 0, 0.10, 0.90, loss=ln10),
        run_row("springenberg_b", "max", 0.25, 0, 0.35, 0.66, loss=ln10),  # learned: not chance
        run_row("springenberg_b", "conv", 0.25, 0, 0.10, 0.90, dataset="svhn", loss=ln10),
    )
    assert list(runs["collapsed"]) == [True, False, False, False, True, True, False, False]
    text = springenberg.report(runs)
    assert "| fashion_mnist | Model A | 11.13 (1 at chance) | 20.00 | 85.00 |" in text
    assert "| fashion_mnist | Model A | 0.05 | 85.00 | 16.00 (n=1) |" in text
    assert "| cifar100 | All-CNN-C | 0.05 | 40.00 | 62.00 (n=1) |" in text
    assert "| fashion_mnist | Strided-CNN-B | 0.25 | 10.00 | 90.00 (n=1, 1 at chance) |" in text
    assert "Runs that ended at chance (finished, but the final training loss is within" in text
    assert "ln K, the loss of an output that ignores the image): 3." in text
    assert "- Model A, lr 0.25, seed 0: training loss 2.3029, val accuracy 11.13 %" in text
    assert "- All-CNN-C, lr 0.01, seed 0: training loss 4.6052, val accuracy 1.00 %" in text


def test_seed_commands_train_the_chosen_lr_in_the_same_experiment_and_store() -> None:
    runs = study(
        run_row("springenberg_c", "conv", 0.1, 0, 0.90, 0.10),
        run_row("springenberg_c", "conv", 0.01, 0, 0.85, 0.14),
    )
    table = springenberg.selected(runs)
    grid = ["experiments=springenberg2015_fashion", "tracking.uri=sqlite:////tmp/a b.db"]
    (line,) = springenberg.seed_commands(table, "1,2", grid)
    assert shlex.split(line) == [
        sys.executable,
        *("-m", "dsbench", "train", "-m", "experiments=springenberg2015_fashion"),
        "tracking.uri=sqlite:////tmp/a b.db",
        *("dataset=fashion_mnist", "model=springenberg_c", "downsample=conv"),
        *("trainer.lr=0.1", "trainer.seed=1,2"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["seeds=one", "experiments=springenberg2015"], "seeds= takes seeds separated by"),
        (["seeds=", "experiments=springenberg2015"], "seeds= takes seeds separated by commas"),
        (["seeds=1"], "seeds= needs the grid's own overrides, e.g. experiments="),
        (["seeds=1", "out=t.md", "experiments=x"], "out= writes the table; seeds= prints"),
        (["trainer.sed=1"], "unknown key 'trainer.sed' (did you mean trainer.seed?)"),
        (["--experiment", "x"], "'--experiment' is not key=value; dsbench springenberg2015 takes"),
    ],
)
def test_allconv_bad_arguments_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = dsbench("allconv", f"tracking.uri={store_uri(tmp_path)}", *args, cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "mlflow.db").exists()
