"""Resume: a finished job is not trained twice, a killed sweep finishes every job exactly
once when started again, and a retrained job gives the same numbers (same seed, CPU)."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from helpers import TINY, all_runs, store_uri, train

from dsbench import config
from dsbench.analysis.load import load_runs
from dsbench.contract import PARENT_RUN, SWEEP_ROLE, Metric, Tag
from dsbench.tracking import recorder as tracking
from dsbench.tracking.store import open_experiment

TIMING = ("seconds", "images_per_sec")  # wall-clock metrics differ between runs


@pytest.mark.slow
def test_finished_job_is_skipped_and_retrains_identically(shared_data: Path, tmp_path: Path):
    mnist = shared_data / "mnist"
    (run,) = train(tmp_path, data=mnist).runs
    assert len(run.data.tags[Tag.CONFIG_HASH]) == 16

    again = train(tmp_path, "trainer.verbose=1", data=mnist)  # verbosity: same job
    assert "dsbench: skipped mnist/convnet/max+flatten/s0: already FINISHED as run " in (
        again.out.stderr
    )
    assert [r.info.run_id for r in again.runs] == [run.info.run_id]

    retrain = train(tmp_path, "tracking.resume=false", data=mnist)
    first_run, second_run = sorted(retrain.runs, key=lambda r: r.info.start_time)
    assert first_run.data.tags[Tag.CONFIG_HASH] == second_run.data.tags[Tag.CONFIG_HASH]
    # Same seed, same backend, CPU: every computed number is identical, not just close.
    computed = {
        k: v for k, v in first_run.data.metrics.items() if not k.endswith(TIMING) and "/" not in k
    }
    assert {Metric.TEST_LOSS, Metric.LOSS, Metric.VAL_LOSS, Metric.SHIFT_CONSISTENCY} <= set(
        computed
    )
    assert {k: second_run.data.metrics[k] for k in computed} == computed


def _job_runs(db: Path) -> dict[str, int]:
    """Status → count of the job runs, read straight from the sqlite file (an MLflow client
    here would race the sweep's own schema set-up)."""
    import sqlite3

    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            rows = con.execute(
                "SELECT status, count(*) FROM runs WHERE name NOT LIKE 'sweep %' GROUP BY status"
            )
            return dict(rows.fetchall())
    except sqlite3.OperationalError:  # tables not created yet
        return {}


@pytest.mark.slow
def test_killed_sweep_started_again_finishes_each_job_exactly_once(
    shared_data: Path, tmp_path: Path
):
    """SIGKILL of the sweep's process (it cannot clean up) at a random moment after the first
    job finished, while later ones run (side by side, in workers that end with it); the same
    command again skips the finished jobs, finds every interrupted run KILLED and trains the
    rest in the same parent run."""
    uri = store_uri(tmp_path)
    sweep = [
        sys.executable,
        "-m",
        "dsbench.train",
        "-m",
        *TINY,
        f"dataset.archive_dir={shared_data / 'mnist'}",
        "downsample=max,avg,conv",
        "trainer.seed=0,1",
        f"tracking.uri={uri}",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        sweep, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    delay = random.Random().uniform(0, 2)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            statuses = _job_runs(tmp_path / "mlflow.db")
            if statuses.get("FINISHED", 0) >= 1 and statuses.get("RUNNING", 0) >= 1:
                break
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.2)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    before = _job_runs(tmp_path / "mlflow.db")
    assert 1 <= before.get("FINISHED", 0) < 6, (before, delay)

    out = subprocess.run(sweep, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.count("dsbench: skipped ") == before["FINISHED"]

    found = all_runs(uri)
    (parent,) = [r for r in found if r.data.tags.get(Tag.ROLE) == SWEEP_ROLE]
    assert parent.info.status == "FINISHED" and parent.data.tags[Tag.JOBS] == "6"
    jobs = [r for r in found if r is not parent]
    assert all(r.data.tags[PARENT_RUN] == parent.info.run_id for r in jobs)
    finished = [r for r in jobs if r.info.status == "FINISHED"]
    assert sorted((r.data.tags[Tag.DOWNSAMPLE], r.data.tags[Tag.SEED]) for r in finished) == sorted(
        (d, s) for d in ("max", "avg", "conv") for s in ("0", "1")
    )
    assert len({r.data.tags[Tag.CONFIG_HASH] for r in finished}) == 6  # no job twice
    assert all(Metric.TEST_ACCURACY in r.data.metrics for r in finished)
    for r in jobs:  # what the kill interrupted is closed, not RUNNING forever
        assert r.info.status in ("FINISHED", "KILLED"), (r.info.run_name, delay)
        if r.info.status == "KILLED":  # closed by its worker when the sweep's process died,
            # or, where nothing could close it, by the resumed sweep
            reason = r.data.tags[Tag.FAILURE_REASON]
            assert "interrupted" in reason or "found when the sweep resumed" in reason
    # The retried attempt is history, not a failure of the study.
    table = load_runs(uri, "dsbench", sweep="latest")
    assert len(table) == 6 and set(table["status"]) == {"FINISHED"}


def test_job_failing_before_its_run_opened_leaves_a_failed_run(tmp_path: Path, monkeypatch):
    uri = store_uri(tmp_path)
    cfg = config.TrainConfig()
    cfg.tracking.uri, cfg.tracking.experiment = uri, "failures"
    experiment_id = open_experiment(cfg.tracking)
    parent = mlflow.MlflowClient(uri).create_run(experiment_id).info.run_id
    monkeypatch.setenv(tracking.PARENT_ENV, parent)

    tracking.record_failure(cfg, MemoryError("cannot allocate 12 GiB"))
    (run,) = [r for r in all_runs(uri) if r.info.run_id != parent]
    assert run.info.status == "FAILED"
    assert run.data.tags[Tag.FAILURE_REASON] == "MemoryError: cannot allocate 12 GiB"
    assert run.data.tags[PARENT_RUN] == parent
    assert run.data.tags[Tag.CONFIG_HASH] == config.config_hash(cfg)
    assert run.info.run_name == "mnist/convnet/max+flatten/s0"

    recorded = RuntimeError("already in its run")  # tracked_run recorded this one
    recorded.add_note(tracking.RECORDED)
    tracking.record_failure(cfg, recorded)
    assert len(all_runs(uri)) == 2


@pytest.mark.slow
def test_a_run_a_sweep_reuses_belongs_to_the_sweep(shared_data: Path, tmp_path: Path) -> None:
    """A single run of max seed 0, then a sweep of 3 strategies × 2 seeds: the sweep skips
    that job but counts it (6 jobs, 1 reused), and its table has 2 seeds of max."""
    mnist = shared_data / "mnist"
    (single,) = train(tmp_path, data=mnist).runs
    sweep = train(
        tmp_path,
        "downsample=max,avg,strided",
        "trainer.seed=0,1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        data=mnist,
        sweep=True,
    )
    assert f"already FINISHED as run {single.info.run_id} (counted in this sweep;" in (
        sweep.out.stderr
    )
    (parent,) = [r for r in sweep.runs if r.data.tags.get(Tag.ROLE) == SWEEP_ROLE]
    tags = parent.data.tags
    assert (tags[Tag.JOBS], tags[Tag.JOBS_FAILED], tags[Tag.JOBS_REUSED]) == ("6", "0", "1")
    assert parent.info.status == "FINISHED"
    # The terminal: [k/6] as each job starts (in order of job number, whichever worker ran
    # it), the sweep's table in short, where it went, and the counts.
    out = sweep.out.stdout
    starts = re.findall(r"^\[(\d)/(\d)\] mnist/convnet/(\w+)\+flatten/s(\d)  \(", out, re.M)
    assert sorted(int(k) for k, *_ in starts) == [1, 2, 3, 4, 5, 6]
    assert {n for _, n, *_ in starts} == {"6"}
    assert {(d, s) for _, _, d, s in starts} == {
        (d, s) for d in ("max", "avg", "strided") for s in "01"
    }
    summary = out[out.index(f"sweep {parent.info.run_id} of experiment dsbench") :]
    assert re.search(r"^  max +\d+\.\d\d ± \d+\.\d\d % +2$", summary, re.M)
    assert f"dsbench analyze tracking.experiment=dsbench tracking.uri={sweep.uri} " in summary
    assert f"outputs: {tmp_path / 'sweep'}/" in summary
    assert "the sweep's 6 jobs: 6 finished (1 reused from earlier runs), 0 not finished" in out
    reused = mlflow.MlflowClient(sweep.uri).get_run(single.info.run_id)
    assert PARENT_RUN not in reused.data.tags  # it keeps its own place
    runs = load_runs(sweep.uri, "dsbench", sweep=parent.info.run_id)
    assert len(runs) == 6 and set(runs["sweep_id"]) == {parent.info.run_id}
    table = pd.read_csv(tmp_path / "sweep" / "analysis" / "comparison.csv")
    assert dict(zip(table["downsample"], table["seeds"], strict=True)) == {
        "max": 2,
        "avg": 2,
        "strided": 2,
    }
