"""Sweeps beyond one process lose nothing: Hydra's Ray launcher (a local Ray cluster) through
`make server` backed by PostgreSQL, and submitit's local executor. (Joblib jobs into one sqlite
file, several sweeps at once: tests/test_parallel.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import pytest
from helpers import TINY, dsbench, train
from services import ROOT, make_server, postgres

from dsbench.contract import EPOCH_METRICS, FINAL_METRICS, PARENT_RUN, SWEEP_ROLE, Tag


def assert_sweep_complete(uri: str, experiment: str, jobs: set[tuple[str, str]]) -> None:
    """One parent FINISHED with `jobs` children, one FINISHED run per (downsample, seed),
    each with every epoch's metrics and the final ones, and the experiment created once."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert [e.name for e in client.search_experiments()].count(experiment) == 1
    (exp,) = [e for e in client.search_experiments() if e.name == experiment]
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get(Tag.ROLE) == SWEEP_ROLE]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags[Tag.JOBS] == str(len(jobs))
    children = [r for r in runs if r not in parents]
    assert all(r.data.tags[PARENT_RUN] == parents[0].info.run_id for r in children)
    assert sorted((r.data.tags[Tag.DOWNSAMPLE], r.data.tags[Tag.SEED]) for r in children) == sorted(
        jobs
    )
    for run in children:
        assert run.info.status == "FINISHED"
        assert set(FINAL_METRICS) <= set(run.data.metrics)
        for metric in EPOCH_METRICS:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, metric)]
            assert steps == [1, 2], (run.info.run_name, metric, steps)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "shapes.md"} <= artifacts


@pytest.mark.slow
def test_ray_sweep_through_make_server_on_postgresql(shared_data: Path, tmp_path: Path):
    """A local Ray cluster runs the jobs; they log through a real `mlflow server` (started by
    `make server`) whose store is a real PostgreSQL database."""
    with (
        postgres() as database,
        make_server(database, tmp_path / "artifacts", tmp_path / "server.log") as url,
    ):
        out = dsbench(
            "train",
            "-m",
            *TINY,
            "trainer.epochs=2",
            f"dataset.archive_dir={shared_data / 'mnist'}",
            "downsample=max,conv",
            "trainer.seed=0,1",
            f"tracking.uri={url}",
            "tracking.experiment=ray",
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        jobs = {(d, s) for d in ("max", "conv") for s in ("0", "1")}
        assert_sweep_complete(url, "ray", jobs)
        # The runs are rows of the database; the artifacts went through the server.
        import psycopg

        with psycopg.connect(database) as db:
            (count,) = db.execute("SELECT count(*) FROM runs").fetchone()
        assert count == len(jobs) + 1
        assert len(list((tmp_path / "artifacts").rglob("shapes.md"))) == len(jobs)
    assert not list(tmp_path.glob("mlflow.db")) and not (tmp_path / "mlruns").exists()


@pytest.mark.slow
def test_submitit_local_sweep(shared_data: Path, tmp_path: Path):
    """submitit's local executor: what runs the jobs on SLURM, here as local processes."""
    uri = train(
        tmp_path,
        "trainer.epochs=2",
        "downsample=max,avg",
        "tracking.experiment=submitit",
        "hydra/launcher=submitit_local",
        data=shared_data / "mnist",
        sweep=True,
    ).uri
    assert_sweep_complete(uri, "submitit", {("max", "0"), ("avg", "0")})


def test_ui_and_server_listen_on_localhost_only_by_default() -> None:
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "ui", "server"], capture_output=True, text=True
    )
    lines = dry.stdout.replace("\\\n", " ").splitlines()
    commands = [ln for ln in lines if "bin/mlflow " in ln or " -m dsbench ui " in ln]
    assert len(commands) == 2, dry.stdout
    assert all("--host 127.0.0.1 " in c or "host=127.0.0.1 " in c for c in commands)
