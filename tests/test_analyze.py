"""The comparison table, built from a store of real short runs, equals what MLflow holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from helpers import TINY, dsbench, store_uri

from dsbench.analyze import analyze


@pytest.fixture(scope="module")
def two_seed_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("analyze")
    uri = store_uri(folder)
    out = dsbench(
        "train",
        "-m",
        *TINY,
        f"dataset.archive_dir={shared_data / 'mnist'}",
        "downsample=max,blur",
        "trainer.seed=0,1",
        "tracking.experiment=study",
        f"tracking.uri={uri}",
        cwd=folder,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return uri


def test_table_numbers_equal_mlflow(two_seed_store: str, tmp_path: Path) -> None:
    table = analyze("study", two_seed_store, tmp_path)
    assert sorted(table["downsample"]) == ["blur", "max"]
    runs = mlflow.search_runs(experiment_names=["study"], filter_string="tags.downsample = 'blur'")
    for metric in ("test_error", "shift_consistency", "train_images_per_sec"):
        values = runs[f"metrics.{metric}"]
        row = table[table["downsample"] == "blur"].iloc[0]
        assert row[f"{metric}_mean"] == pytest.approx(values.mean())
        assert row[f"{metric}_std"] == pytest.approx(values.std())
    assert (table["seeds"] == 2).all()
    csv = pd.read_csv(tmp_path / "comparison.csv")
    assert list(csv["downsample"]) == list(table["downsample"])
    text = (tmp_path / "comparison.md").read_text()
    assert "| mnist | convnet | blur | flatten | 2 |" in text
    assert "All runs finished." in text and "Produced by" in text


def test_analyze_cli_and_unknown_experiment(two_seed_store: str, tmp_path: Path) -> None:
    ok = dsbench(
        "analyze",
        "experiment=study",
        f"tracking.uri={two_seed_store}",
        f"out_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "comparison.md").exists()
    bad = dsbench("analyze", "experiment=nope", f"tracking.uri={two_seed_store}", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"dsbench: error: no MLflow experiment 'nope' at {two_seed_store}"
    ]


def test_analysis_imports_neither_tensorflow_nor_keras() -> None:
    code = (
        "import sys, dsbench.analyze, dsbench.allconv; "
        "bad = [m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules]; "
        "assert not bad, bad"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
