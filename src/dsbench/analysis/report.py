"""A study's tables, plots and dashboard, written to a folder and logged to its sweep run.

    comparison.md / .csv / .tex / .html   the table (best of each column in bold)
    <study>.report_file                   a study's own table, for its runs (dsbench.hooks)
    plots/*.png                           accuracy vs params / throughput / shift, learning curves
    dashboard.html                        all of the above in one self-contained page

Failed or unfinished runs are listed, not dropped. Imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd

from dsbench.analysis import dashboard, plots
from dsbench.analysis.load import fill_still_improving, histories, load_runs, resolve_sweep
from dsbench.analysis.tables import (
    column_units,
    comparison,
    matched_markdown,
    not_finished,
    reading,
    to_html,
    to_latex,
    to_markdown,
)
from dsbench.contract import DESCRIPTION, Metric, Tag, tag_column
from dsbench.hooks import Study, studies
from dsbench.provenance import produced_by

log = logging.getLogger(__name__)

CURVE_METRIC = Metric.VAL_ACCURACY  # the learning curves' per-epoch metric


def provenance(experiment: str, uri: str, command: str) -> str:
    return produced_by(
        f"{command} from MLflow experiment `{experiment}` ({uri})", "mlflow", "pandas"
    )


def sharing(runs: pd.DataFrame) -> str:
    """How the runs shared the machine, which their img/s depend on (tags threads and
    jobs_at_once; runs from before they were recorded say nothing)."""
    columns = [tag_column(Tag.JOBS_AT_ONCE), tag_column(Tag.THREADS)]
    both = runs[columns].dropna() if set(columns) <= set(runs.columns) else runs.iloc[0:0]
    if both.empty:
        return "how the runs shared the machine was not recorded."
    layouts = sorted({f"{j} job(s) at once × {t} thread(s)" for j, t in both.to_numpy()})
    return (
        f"measured as the runs ran, {', '.join(layouts)}: jobs side by side share the cores, "
        "so compare speeds within this table, and a strategy's own cost with "
        "`make bench-strategies` (one job alone)."
    )


def study_reports(
    uri: str, experiment: str, runs: pd.DataFrame, filter_string: str, sweep: str
) -> list[tuple[Study, str]]:
    """Each study's report of these runs (dsbench.hooks), for the studies they hold.

    A study may choose over its whole grid (Springenberg's lr): a sweep of more seeds (its
    second stage) is then reported with the rest of the experiment's runs, not alone.
    """
    reports = []
    for study in studies():
        grid = runs
        if sweep and study.owns_runs(runs):
            grid = load_runs(uri, experiment, filter_string)
        text = study.report(grid)
        if text is not None:
            reports.append((study, text))
    return reports


def load_study(
    uri: str, experiment: str, filter_string: str = "", sweep: str = ""
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs (`load_runs`) and their learning curves (CURVE_METRIC, finished runs);
    runs logged before `still_improving` existed get it from their curves."""
    runs = load_runs(uri, experiment, filter_string, sweep)
    finished = list(runs.loc[runs["status"] == "FINISHED", "run_id"])
    history = histories(uri, finished, CURVE_METRIC)
    return fill_still_improving(runs, history), history


def analyze(
    experiment: str,
    uri: str,
    out_dir: Path,
    filter_string: str = "",
    sweep: str = "",
    log_to_sweep: bool = True,
    command: str = "",
) -> pd.DataFrame:
    """Write every table, plot and the dashboard; log them to the sweep's parent run.

    `command` says what produced them, for the provenance line (default: this process's
    `dsbench analyze` command line).
    """
    runs, history = load_study(uri, experiment, filter_string, sweep)
    table = comparison(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = not_finished(runs)
    command = command or "`dsbench analyze " + " ".join(sys.argv[1:]) + "`"
    origin = provenance(experiment, uri, command)
    heading = f"# {experiment}: comparison by strategy\n"
    legend = (
        "Mean ± std over seeds (std shown from 2 seeds on, omitted where the seeds agree); "
        "best of each column in bold. vs max: the difference of the mean test error from max "
        "pooling with the same head, in percentage points, with its 95 % interval and p from "
        "Welch's t-test; p Holm: adjusted over all the table's comparisons; * where p Holm "
        "< 0.05 (no * is no evidence of no difference). Class: what the strategy adds over "
        "max pooling (params ×max, FLOPs ×max); only the parameter-free rows differ from max "
        "pooling in the downsampling alone. Train img/s: the epochs after the first; infer "
        f"img/s: after a warm-up batch; {sharing(runs)}\n\n{reading(table, runs)}\n"
    )
    failures = (
        "Runs that did not finish (not in the table):\n\n" + "".join(f"- {m}\n" for m in missing)
        if missing
        else "All runs finished.\n"
    )
    files = [out_dir / f"comparison.{ext}" for ext in ("md", "csv", "tex", "html")]
    (out_dir / "comparison.md").write_text(
        "\n".join(
            [heading, legend, to_markdown(table), matched_markdown(runs), failures, origin + "\n"]
        )
    )
    table.to_csv(out_dir / "comparison.csv", index=False)
    files.append(out_dir / "comparison.columns.csv")  # its units (fractions, not %)
    column_units(table).to_csv(files[-1], index=False)
    (out_dir / "comparison.tex").write_text(f"% {origin}\n" + to_latex(table))
    table_html = to_html(table)
    (out_dir / "comparison.html").write_text(table_html)

    reports = study_reports(uri, experiment, runs, filter_string, sweep)
    for study, text in reports:
        files.append(out_dir / study.report_file)
        files[-1].write_text(f"# {experiment}: ours vs {study.title}\n\n{text}\n{origin}\n")

    figures = plots.write_all(table, runs, history, out_dir / "plots")
    page = dashboard.render(
        experiment=experiment,
        description=_description(uri, experiment),
        table_html=table_html,
        legend=legend,
        figures=figures,
        not_finished=missing,
        study_reports=[(f"Ours vs {study.title}", text) for study, text in reports],
        counts={
            "runs": len(runs),
            "finished": int((runs["status"] == "FINISHED").sum()),
            "groups": len(table),
        },
        provenance=origin,
    )
    files.append(out_dir / "dashboard.html")
    files[-1].write_text(page)

    parent = resolve_sweep(uri, experiment, sweep) or _only_sweep(runs, filter_string)
    if log_to_sweep and parent:
        _log_to_run(uri, parent, files, figures)
    return table


def _description(uri: str, experiment: str) -> str:
    from mlflow import MlflowClient

    found = MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
    return (found.tags.get(DESCRIPTION) or "") if found else ""


def _only_sweep(runs: pd.DataFrame, filter_string: str) -> str | None:
    """The sweep whose runs are exactly these (unfiltered, all from one sweep), else None:
    a table of other runs must not replace what a sweep's run holds."""
    sweeps = set(runs["sweep_id"])
    if filter_string or len(sweeps) != 1 or None in sweeps:
        return None
    return str(sweeps.pop())


def _log_to_run(uri: str, run_id: str, files: list[Path], figures: list[Path]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for path in files:
        client.log_artifact(run_id, str(path), "analysis")
    for path in figures:
        client.log_artifact(run_id, str(path), "analysis/plots")
    log.info("analysis logged to sweep run %s under analysis/", run_id)
