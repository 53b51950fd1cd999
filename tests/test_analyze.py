"""Tables, plots and dashboard from a store of real short runs equal what MLflow holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import STUDY_DESCRIPTION
from helpers import dsbench
from mlflow import MlflowClient

from dsbench.analysis.report import analyze
from dsbench.analysis.tables import comparison, to_markdown
from dsbench.contract import DESCRIPTION, Metric, Tag, metric_column, tag_column
from dsbench.tracking.sweep import SWEEP_FILTER

PNG = b"\x89PNG\r\n\x1a\n"
PLOTS = {"accuracy_vs_params", "accuracy_vs_throughput", "learning_curves", "accuracy_vs_shift"}


@pytest.fixture(scope="module")
def report(study_store: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    out = tmp_path_factory.mktemp("report")
    return analyze("study", study_store, out, log_to_sweep=False), out


@pytest.mark.slow
def test_table_numbers_equal_mlflow(study_store: str, report: tuple[pd.DataFrame, Path]) -> None:
    table, out = report
    assert sorted(table["downsample"]) == ["blur", "max"]
    mlflow.set_tracking_uri(study_store)
    runs = mlflow.search_runs(
        experiment_names=["study"], filter_string=f"{tag_column(Tag.DOWNSAMPLE)} = 'blur'"
    )
    row = table[table["downsample"] == "blur"].iloc[0]
    for metric in (
        Metric.TEST_ERROR,
        Metric.SHIFT_CONSISTENCY,
        Metric.STEADY_IMAGES_PER_SEC,
        Metric.TOTAL_TRAIN_SECONDS,
        Metric.INFERENCE_IMAGES_PER_SEC,
    ):
        values = runs[metric_column(metric)]
        assert row[f"{metric}_mean"] == pytest.approx(values.mean())
        assert row[f"{metric}_std"] == pytest.approx(values.std())
    assert (table["seeds"] == 2).all()
    csv = pd.read_csv(out / "comparison.csv")
    assert list(csv["downsample"]) == list(table["downsample"])
    assert csv["test_error_mean"].tolist() == pytest.approx(table["test_error_mean"].tolist())
    text = (out / "comparison.md").read_text()
    err = 100 * row["test_error_mean"]
    row_text = f"| mnist | convnet | blur | flatten | parameter-free | 2 | 2/2 | {err:.2f}"
    assert row_text in text.replace("**", "")  # 2 seeds, both too short to show a plateau
    assert "All runs finished." in text and "Produced by" in text
    assert "| p Holm |" in text and "Still improving: 4 of 4 runs" in text


@pytest.mark.slow
def test_latex_and_html_tables(report: tuple[pd.DataFrame, Path]) -> None:
    table, out = report
    tex = (out / "comparison.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\bottomrule" in tex
    assert r"test error \%" in tex and r"$\pm$" in tex and r"\textbf{" in tex
    html = (out / "comparison.html").read_text()
    assert html.count("<tr") == len(table) + 1  # header + one row per group
    assert "<b>" in html and "shift consistency %" in html


@pytest.mark.slow
def test_plots_are_pngs(report: tuple[pd.DataFrame, Path]) -> None:
    _, out = report
    written = {p.stem: p for p in (out / "plots").glob("*.png")}
    assert set(written) == PLOTS
    for path in written.values():
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000


@pytest.mark.slow
def test_dashboard_is_self_contained(report: tuple[pd.DataFrame, Path]) -> None:
    _, out = report
    page = (out / "dashboard.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(PLOTS)
    assert "study: which downsampling, at what cost" in page and STUDY_DESCRIPTION in page
    assert "<script" not in page and 'src="http' not in page
    assert "`" not in page  # Markdown code spans are <code> here


@pytest.mark.slow
def test_sweep_end_logs_the_analysis_to_its_parent_run(study_store: str) -> None:
    client = MlflowClient(tracking_uri=study_store)
    experiment = client.get_experiment_by_name("study")
    assert experiment.tags[DESCRIPTION] == STUDY_DESCRIPTION
    (parent,) = client.search_runs([experiment.experiment_id], filter_string=SWEEP_FILTER)
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "analysis")}
    expected = {f"analysis/comparison.{e}" for e in ("md", "csv", "tex", "html")}
    assert logged >= expected | {"analysis/dashboard.html", "analysis/plots"}
    pngs = {a.path for a in client.list_artifacts(parent.info.run_id, "analysis/plots")}
    assert pngs == {f"analysis/plots/{p}.png" for p in PLOTS}
    table = client.download_artifacts(parent.info.run_id, "analysis/comparison.md")
    text = Path(table).read_text()
    assert "Produced by the end of the sweep `dsbench train -m " in text
    assert "| mnist | convnet | blur | flatten | parameter-free | 2 |" in text


@pytest.mark.slow
def test_analyze_cli_sweep_filter_and_bad_input(study_store: str, tmp_path: Path) -> None:
    ok = dsbench(
        "analyze",
        "tracking.experiment=study",
        "sweep_run=latest",
        "log_to_sweep=false",  # keep the sweep's own analysis for the test above
        f"tracking.uri={study_store}",
        f"out_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert "2 groups" in ok.stdout and (tmp_path / "dashboard.html").exists()
    for args, error in [
        (
            ["tracking.experiment=nope"],
            f"no MLflow experiment 'nope' at {study_store}; it has: Default, ",
        ),
        (["tracking.experiment=stuyd"], "(did you mean study?); it has: Default, study"),
        (
            ["tracking.experiment=study", "sweep_run=abc"],
            "sweep 'abc' is not a sweep run of experiment 'study'",
        ),
    ]:
        bad = dsbench("analyze", *args, f"tracking.uri={study_store}", cwd=tmp_path)
        assert bad.returncode == 2
        (line,) = bad.stderr.strip().splitlines()
        assert line.startswith("dsbench: error: ") and error in line


def test_analysis_imports_neither_tensorflow_nor_keras() -> None:
    code = (
        "import sys, dsbench.analyze, dsbench.allconv, dsbench.analysis.report, "
        "dsbench.analysis.sweep_report; "
        "bad = [m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules]; "
        "assert not bad, bad"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_runs_that_differ_in_a_param_are_not_averaged() -> None:
    """Two lrs of one model are two rows (a learning-rate grid), seeds of one lr are one."""
    rows = [
        {
            "dataset": "cifar10",
            "model": "springenberg_c",
            "downsample": "conv",
            "head": "allconv",
            "status": "FINISHED",
            "params.trainer.lr": lr,
            "params.trainer.seed": seed,
            metric_column(Metric.TEST_ERROR): error,
        }
        for lr, seed, error in [("0.1", "0", 0.2), ("0.1", "1", 0.4), ("0.01", "0", 0.9)]
    ]
    table = comparison(pd.DataFrame(rows))
    assert list(table["params.trainer.lr"]) == ["0.1", "0.01"]
    assert list(table["seeds"]) == [2, 1]
    assert table["test_error_mean"].tolist() == pytest.approx([0.3, 0.9])
    assert "| trainer.lr |" in to_markdown(table)
