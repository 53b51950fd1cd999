"""A study's runs as a comparison table: `python -m dsbench.analyze experiment=<name>`.

Reads the runs with MLflow's search API into pandas, groups them by dataset × model ×
downsample × head and writes, per group, the mean ± std over seeds and the seed count of the
test error, the shift metrics and the costs, to `<out_dir>/comparison.md` and `.csv`.
Failed or unfinished runs are listed, not dropped. Imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import hydra
import pandas as pd
from omegaconf import DictConfig

from dsbench import cli, config
from dsbench.errors import DsbenchError

KEYS = ["dataset", "model", "downsample", "head"]
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
    "epoch_seconds": ("epoch s", 1, True),
}


def load_runs(uri: str, experiment: str, filter_string: str = "") -> pd.DataFrame:
    """Every job run of the experiment (not the sweeps' parent runs), any status."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        raise DsbenchError(f"no MLflow experiment {experiment!r} at {uri}")
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string=filter_string)
    if runs.empty or "tags.downsample" not in runs:
        matching = f" matching {filter_string!r}" if filter_string else ""
        raise DsbenchError(f"experiment {experiment!r} at {uri} has no training runs{matching}")
    return runs[runs["tags.downsample"].notna()].rename(
        columns={f"tags.{k}": k for k in KEYS} | {"tags.seed": "seed"}
    )


def comparison(runs: pd.DataFrame) -> pd.DataFrame:
    """mean, std and n per group of FINISHED runs; sorted by mean test error."""
    done = runs[runs["status"] == "FINISHED"]
    metrics = [m for m in COLUMNS if f"metrics.{m}" in done]
    grouped = done.groupby(KEYS)[[f"metrics.{m}" for m in metrics]]
    table = grouped.agg(["mean", "std"])
    table.columns = [f"{m.removeprefix('metrics.')}_{stat}" for m, stat in table.columns]
    table["seeds"] = done.groupby(KEYS).size()
    return table.sort_values("test_error_mean").reset_index()


def to_markdown(table: pd.DataFrame) -> str:
    """Mean ± std (std only with 2+ seeds); the best value of each column in bold."""
    metrics = [m for m in COLUMNS if f"{m}_mean" in table]
    header = [*KEYS, "seeds", *(COLUMNS[m][0] for m in metrics)]
    best = {
        m: table[f"{m}_mean"].min() if COLUMNS[m][2] else table[f"{m}_mean"].max() for m in metrics
    }
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [str(row[k]) for k in KEYS] + [str(int(row["seeds"]))]
        for m in metrics:
            scale = COLUMNS[m][1]
            mean, std = row[f"{m}_mean"] * scale, row[f"{m}_std"] * scale
            digits = 0 if abs(mean) >= 1000 else 2
            cell = f"{mean:,.{digits}f}" + ("" if pd.isna(std) else f" ± {std:,.{digits}f}")
            cells.append(f"**{cell}**" if row[f"{m}_mean"] == best[m] else cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def not_finished(runs: pd.DataFrame) -> str:
    bad = runs[runs["status"] != "FINISHED"]
    if bad.empty:
        return "All runs finished.\n"
    lines = ["Runs that did not finish (not in the table):", ""]
    for _, r in bad.iterrows():
        reason = r.get("tags.failure_reason")
        lines.append(
            f"- {r['tags.mlflow.runName']}: {r['status']}"
            + (f" ({reason})" if isinstance(reason, str) else "")
        )
    return "\n".join(lines) + "\n"


def provenance(experiment: str, uri: str) -> str:
    import mlflow

    from dsbench.tracking import git_commit

    command = "python -m dsbench.analyze " + " ".join(sys.argv[1:])
    return (
        f"Produced by `{command}` from MLflow experiment `{experiment}` ({uri}) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node() or 'unknown host'} "
        f"({platform.machine()}, {os.cpu_count()} CPUs), dsbench {_short(git_commit())}, "
        f"mlflow {mlflow.__version__}, pandas {pd.__version__}.\n"
    )


def _short(commit: str) -> str:
    """abc123…-dirty → abc123456789-dirty: short, but keeping the dirty marker."""
    sha, dirty, _ = commit.partition("-dirty")
    return sha[:12] + dirty


def analyze(experiment: str, uri: str, out_dir: Path, filter_string: str = "") -> pd.DataFrame:
    runs = load_runs(uri, experiment, filter_string)
    table = comparison(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "comparison.csv", index=False)
    text = "\n".join(
        [
            f"# {experiment}: comparison by strategy\n",
            "Mean ± std over seeds (std shown from 2 seeds on); best of each column in bold.\n",
            to_markdown(table),
            not_finished(runs),
            provenance(experiment, uri),
        ]
    )
    (out_dir / "comparison.md").write_text(text)
    return table


@hydra.main(version_base="1.3", config_path=config.CONF_DIR, config_name="analyze")
def _app(cfg: DictConfig) -> None:
    with cli.exit_on_bad_input():
        out = Path(cfg.out_dir)
        table = analyze(cfg.experiment, cfg.tracking.uri, out, cfg.filter)
        print(f"{len(table)} groups → {out / 'comparison.md'}, {out / 'comparison.csv'}")


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
