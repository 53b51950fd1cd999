"""A study's runs as comparison tables and plots: `python -m dsbench.analyze experiment=<name>`.

Reads the runs with MLflow's search API into pandas (`runs.py`), groups them by dataset ×
model × downsample × head and writes, per group, the mean ± std over seeds and the seed count
of the test error, the shift metrics and the costs, into `<out_dir>/`:

    comparison.md / .csv / .tex / .html   the table (best of each column in bold)
    paper_vs_ours.md                      Springenberg 2015 runs only: ours beside Table 3
    plots/*.png                           accuracy vs params / throughput / shift, learning curves
    dashboard.html                        all of the above in one self-contained page

and logs them under `analysis/` to the sweep's parent run, where the MLflow UI shows them.
Failed or unfinished runs are listed, not dropped. Imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import html
import logging
import os
import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import hydra
import pandas as pd
from omegaconf import DictConfig

from dsbench import allconv, cli, config, dashboard, plots
from dsbench.errors import DsbenchError
from dsbench.runs import group_keys, histories, load_runs, resolve_sweep, table_keys

log = logging.getLogger(__name__)

# metric → (column title, scale, lower is better); mean ± std over seeds for each.
COLUMNS = {
    "test_error": ("test error %", 100, True),
    "shift_consistency": ("shift consistency %", 100, False),
    "test_accuracy_shift1": ("acc. shift 1 px %", 100, False),
    "test_accuracy_shift2": ("acc. shift 2 px %", 100, False),
    "test_accuracy_shift4": ("acc. shift 4 px %", 100, False),
    "params_total": ("params", 1, True),
    "flops_per_image": ("MFLOPs", 1e-6, True),
    "train_images_per_sec": ("train img/s", 1, False),
    "inference_images_per_sec": ("infer img/s", 1, False),
    "epoch_seconds": ("epoch s", 1, True),
}
CURVE_METRIC = "val_accuracy"  # the learning curves' per-epoch metric


def comparison(runs: pd.DataFrame) -> pd.DataFrame:
    """mean, std and n per group of FINISHED runs; sorted by mean test error.

    Every `test_accuracy_shift{k}` is aggregated too (the shift plot uses them all).
    """
    done = runs[runs["status"] == "FINISHED"]
    if done.empty or "metrics.test_error" not in done:
        raise DsbenchError(
            f"none of the {len(runs)} runs finished with a test error; "
            f"statuses: {', '.join(sorted(set(runs['status'])))}"
        )
    shift_metrics = sorted(
        c.removeprefix("metrics.")
        for c in done.columns
        if c.startswith("metrics.test_accuracy_shift") and c.removeprefix("metrics.") not in COLUMNS
    )
    metrics = [m for m in [*COLUMNS, *shift_metrics] if f"metrics.{m}" in done]
    keys = group_keys(done)
    grouped = done.groupby(keys, dropna=False)[[f"metrics.{m}" for m in metrics]]
    table = grouped.agg(["mean", "std"])
    table.columns = [f"{m.removeprefix('metrics.')}_{stat}" for m, stat in table.columns]
    table["seeds"] = done.groupby(keys, dropna=False).size()
    return table.sort_values("test_error_mean").reset_index()


class Markup(NamedTuple):
    """How one output format writes bold, ± and escaped text."""

    bold: str  # a format string with {}
    pm: str
    escape: Callable[[str], str]

    def text(self, value: object) -> str:
        return self.escape(str(value))


def _latex_escape(s: str) -> str:
    return s.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%")


MARKDOWN = Markup("**{}**", " ± ", str)
HTML = Markup("<b>{}</b>", " ± ", html.escape)
LATEX = Markup(r"\textbf{{{}}}", r" $\pm$ ", _latex_escape)


def display(table: pd.DataFrame, markup: Markup) -> pd.DataFrame:
    """The table as text cells: mean ± std (std only with 2+ seeds), the best in bold."""
    metrics = [m for m in COLUMNS if f"{m}_mean" in table]
    best = {
        m: table[f"{m}_mean"].min() if COLUMNS[m][2] else table[f"{m}_mean"].max() for m in metrics
    }
    keys = table_keys(table)
    out = pd.DataFrame(
        {markup.text(k.removeprefix("params.")): table[k].map(markup.text) for k in keys}
    )
    out["seeds"] = table["seeds"].astype(int).astype(str)
    for m in metrics:
        title, scale, _ = COLUMNS[m]
        cells = []
        for mean_raw, std_raw in zip(table[f"{m}_mean"], table[f"{m}_std"], strict=True):
            if pd.isna(mean_raw):  # not logged by this group's runs
                cells.append("–")
                continue
            mean, std = mean_raw * scale, std_raw * scale
            digits = 0 if abs(mean) >= 1000 else 2
            cell = f"{mean:,.{digits}f}" + (
                "" if pd.isna(std) or std == 0 else f"{markup.pm}{std:,.{digits}f}"
            )
            is_best = len(table) > 1 and mean_raw == best[m]  # one row: nothing to compare
            cells.append(markup.bold.format(cell) if is_best else cell)
        out[markup.text(title)] = cells
    return out


def to_markdown(table: pd.DataFrame) -> str:
    cells = display(table, MARKDOWN)
    lines = ["| " + " | ".join(cells.columns) + " |", "|" + "---|" * len(cells.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame) -> str:
    return display(table, LATEX).to_latex(index=False, escape=False)


def to_html(table: pd.DataFrame) -> str:
    return display(table, HTML).to_html(index=False, escape=False, border=0, classes="comparison")


def not_finished(runs: pd.DataFrame) -> list[str]:
    """One line per run that did not finish: name, status and failure reason."""
    lines = []
    for _, r in runs[runs["status"] != "FINISHED"].iterrows():
        reason = r.get("tags.failure_reason")
        lines.append(
            f"{r['tags.mlflow.runName']}: {r['status']}"
            + (f" ({reason})" if isinstance(reason, str) else "")
        )
    return lines


def provenance(experiment: str, uri: str, command: str) -> str:
    import mlflow

    from dsbench.tracking import git_commit

    return (
        f"Produced by {command} from MLflow experiment `{experiment}` ({uri}) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node() or 'unknown host'} "
        f"({platform.machine()}, {os.cpu_count()} CPUs), dsbench {_short(git_commit())}, "
        f"mlflow {mlflow.__version__}, pandas {pd.__version__}."
    )


def _short(commit: str) -> str:
    """abc123…-dirty → abc123456789-dirty: short, but keeping the dirty marker."""
    sha, dirty, _ = commit.partition("-dirty")
    return sha[:12] + dirty


def paper_table(runs: pd.DataFrame) -> str | None:
    """Springenberg 2015 runs: ours vs Table 3 (lr chosen on validation), else None."""
    done = runs[runs["status"] == "FINISHED"]
    if "tags.variant" not in done or done["tags.variant"].isna().all():
        return None
    if "metrics.val_accuracy" not in done:  # the lr is chosen on validation accuracy
        return "No validation accuracy was logged (dataset.val_fraction=0): no lr to choose.\n"
    study = done[done["tags.variant"].notna()]
    study = study.assign(paper_error=pd.to_numeric(study.get("tags.paper_error"), errors="coerce"))
    return allconv.to_markdown(allconv.selected(study))


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
    `python -m dsbench.analyze` command line).
    """
    runs = load_runs(uri, experiment, filter_string, sweep)
    table = comparison(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = not_finished(runs)
    command = command or "`python -m dsbench.analyze " + " ".join(sys.argv[1:]) + "`"
    origin = provenance(experiment, uri, command)
    heading = f"# {experiment}: comparison by strategy\n"
    legend = (
        "Mean ± std over seeds (std shown from 2 seeds on, omitted where the seeds agree); "
        "best of each column in bold.\n"
    )
    failures = (
        "Runs that did not finish (not in the table):\n\n" + "".join(f"- {m}\n" for m in missing)
        if missing
        else "All runs finished.\n"
    )
    files = [out_dir / f"comparison.{ext}" for ext in ("md", "csv", "tex", "html")]
    (out_dir / "comparison.md").write_text(
        "\n".join([heading, legend, to_markdown(table), failures, origin + "\n"])
    )
    table.to_csv(out_dir / "comparison.csv", index=False)
    (out_dir / "comparison.tex").write_text(f"% {origin}\n" + to_latex(table))
    table_html = to_html(table)
    (out_dir / "comparison.html").write_text(table_html)

    paper = paper_table(runs)
    if paper is not None:
        files.append(out_dir / "paper_vs_ours.md")
        files[-1].write_text(
            f"# {experiment}: ours vs Springenberg et al. 2015\n\n{paper}\n{origin}\n"
        )

    finished = list(runs.loc[runs["status"] == "FINISHED", "run_id"])
    history = histories(uri, finished, CURVE_METRIC)
    figures = plots.write_all(table, runs, history, out_dir / "plots")
    page = dashboard.render(
        experiment=experiment,
        description=_description(uri, experiment),
        table_html=table_html,
        legend=legend,
        figures=figures,
        not_finished=missing,
        paper_markdown=paper,
        counts={"runs": len(runs), "finished": len(finished), "groups": len(table)},
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
    return (found.tags.get("mlflow.note.content") or "") if found else ""


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


@hydra.main(version_base="1.3", config_path=config.CONF_DIR, config_name="analyze")
def _app(cfg: DictConfig) -> None:
    with cli.exit_on_bad_input():
        out = Path(cfg.out_dir)
        table = analyze(
            cfg.experiment, cfg.tracking.uri, out, cfg.filter, str(cfg.sweep), cfg.log_to_sweep
        )
        print(f"{len(table)} groups → {out}/comparison.{{md,csv,tex,html}}, plots/, dashboard.html")


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
