"""First runs in parallel on a stranger's machine: 3 sweeps × 3 joblib jobs started at the
same moment on a fresh archive dir (fetched from a real HTTP server on 127.0.0.1), a fresh
TFDS data dir and a fresh sqlite store. Exactly one process downloads each file and one
prepares TFDS; the store's schema is created once; every job ends FINISHED under its own
sweep's parent; nothing prints an error or a warning.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from helpers import all_runs
from mirror import Mirror

from dsbench.contract import EPOCH_METRICS, FINAL_METRICS, PARENT_RUN, SWEEP_ROLE, Tag
from dsbench.data.registry import DATASETS

SWEEPS = 3
STRATEGIES = "max,avg,overlap"  # each sweep's 3 jobs; the sweeps differ by seed
# A line that reports a problem ("dsbench: error:", "[ERROR]"), not a result ("test error 2 %")
NOISE = re.compile(r"error[:\]]|warn|traceback|exception", re.IGNORECASE)


@pytest.mark.slow
def test_three_sweeps_of_three_jobs_start_together(shared_data: Path, tmp_path: Path) -> None:
    mirror = Mirror(shared_data)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **os.environ,
        "DSBENCH_MIRROR": mirror.url,
        "DSBENCH_DATA": str(tmp_path / "data"),
        "TFDS_DATA_DIR": str(tmp_path / "tfds"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs it: the suite's own settings
    sweeps = []
    try:
        for seed in range(SWEEPS):
            command = [
                sys.executable,
                "-m",
                "dsbench.train",
                "-m",
                "hydra/launcher=joblib",
                f"hydra.launcher.n_jobs={len(STRATEGIES.split(','))}",
                f"hydra.sweep.dir={tmp_path / 'sweeps' / str(seed)}",
                f"downsample={STRATEGIES}",
                f"trainer.seed={seed}",
                "dataset.train_subset=512",
                "dataset.test_subset=256",
                "dataset.val_fraction=0.01",
                "trainer.epochs=2",
                "trainer.verbose=0",
                f"tracking.uri={uri}",
                "tracking.experiment=parallel",
            ]
            sweeps.append(
                subprocess.Popen(
                    command,
                    cwd=tmp_path,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        outputs = [p.communicate(timeout=900)[0] for p in sweeps]
    finally:
        for p in sweeps:
            p.kill()
        mirror.close()
    for p, output in zip(sweeps, outputs, strict=True):
        assert p.returncode == 0, output[-4000:]
        noise = [line for line in output.splitlines() if NOISE.search(line)]
        assert noise == [], output[-4000:]

    # One download of each file, one TFDS preparation, nothing half-done left behind.
    assert all(mirror.count(f"mnist/{name}") == 1 for name, _ in DATASETS["mnist"].files.values())
    assert list((tmp_path / "tfds").glob("mnist/*/dataset_info.json"))
    assert not list((tmp_path / "tfds").glob("**/incomplete.*"))

    runs = all_runs(uri)
    parents = {r.info.run_id: r for r in runs if r.data.tags.get(Tag.ROLE) == SWEEP_ROLE}
    jobs = [r for r in runs if r.info.run_id not in parents]
    assert len(parents) == SWEEPS
    assert all(p.info.status == "FINISHED" for p in parents.values())
    assert all(
        p.data.tags[Tag.JOBS] == "3" and p.data.tags[Tag.JOBS_FAILED] == "0"
        for p in parents.values()
    )
    assert len(jobs) == SWEEPS * 3
    assert all(j.info.status == "FINISHED" for j in jobs)
    by_seed: dict[str, set[str]] = {}
    for j in jobs:
        assert j.data.tags[PARENT_RUN] in parents
        assert j.data.tags[Tag.DATA_SOURCE] == "tfds"
        by_seed.setdefault(j.data.tags[Tag.SEED], set()).add(j.data.tags[PARENT_RUN])
    # Nothing lost in the one sqlite file 9 processes wrote at once: every epoch's metrics,
    # the final ones, the artifacts; and one experiment.
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert [e.name for e in client.search_experiments()].count("parallel") == 1
    for j in jobs:
        assert set(FINAL_METRICS) <= set(j.data.metrics)
        for metric in EPOCH_METRICS:
            steps = [m.step for m in client.get_metric_history(j.info.run_id, metric)]
            assert steps == [1, 2], (j.info.run_name, metric, steps)
        assert {"config.yaml", "shapes.md"} <= {
            a.path for a in client.list_artifacts(j.info.run_id)
        }
    # Each sweep's jobs under one parent, its own.
    assert sorted(by_seed) == [str(s) for s in range(SWEEPS)]
    assert all(len(p) == 1 for p in by_seed.values())
    assert len(set().union(*by_seed.values())) == SWEEPS
