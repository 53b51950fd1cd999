"""A tracking store that cannot be used is found before any data is loaded, in seconds, with
one line: a server that is down, a database that refuses or is down, and a sweep whose parent
run cannot be made (exit 1, no jobs run unnested), and a server that goes away mid-sweep.
Against a real `mlflow server` and a real PostgreSQL that the tests start and then stop.

Every case points `dataset.archive_dir` at a folder that does not exist, with no network (the
session's mirror is a closed port): had the data been loaded first, the error would be the
fetch's, and the folder would have been created.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TINY, all_runs, dsbench, store_uri, train
from services import make_server, postgres

from devtools.mlflow_ui import free_port
from dsbench.contract import Tag
from dsbench.errors import ExternalError
from dsbench.tracking.store import check_store


def _train(tmp_path: Path, uri: str, *flags: str):
    start = time.monotonic()
    out = dsbench(
        "train",
        *flags,
        *TINY,
        f"dataset.archive_dir={tmp_path / 'absent'}",
        f"tracking.uri={uri}",
        cwd=tmp_path,
        timeout=300,
    )
    return out, time.monotonic() - start


def _one_line(out, tmp_path: Path) -> str:
    assert out.returncode == 1, out.stderr[-3000:]  # not bad input: exit 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr[-3000:]
    assert lines[0].startswith("dsbench: error: ")
    assert not (tmp_path / "absent").exists()  # no data was loaded
    return lines[0]


def test_server_that_is_not_there(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out, seconds = _train(tmp_path, url)
    line = _one_line(out, tmp_path)
    assert line == (
        f"dsbench: error: tracking server {url} is unreachable ({url}/health: [Errno 111] "
        "Connection refused): start it (make server), or point tracking.uri at a running one"
    )
    assert seconds < 15


def test_database_that_is_not_there(tmp_path: Path) -> None:
    port = free_port()
    out, seconds = _train(tmp_path, f"postgresql://dsbench:secret@127.0.0.1:{port}/mlflow")
    line = _one_line(out, tmp_path)
    assert line.startswith(
        f"dsbench: error: tracking database postgresql://dsbench:***@127.0.0.1:{port}/mlflow "
        "cannot be used ("
    ), line
    assert "secret" not in line  # the password is not printed
    assert "Connection refused" in line
    assert line.endswith("check host, port, user and password in tracking.uri")
    assert seconds < 15


def test_sweep_without_its_parent_stops(tmp_path: Path) -> None:
    """Hydra would turn the parent's failure into a warning and run the jobs unnested."""
    url = f"http://127.0.0.1:{free_port()}"
    out, seconds = _train(tmp_path, url, "-m", "trainer.seed=0,1")
    assert out.returncode == 1, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert lines == [
        f"dsbench: error: cannot start the sweep's parent run: tracking server {url} is "
        f"unreachable ({url}/health: [Errno 111] Connection refused): start it (make server), "
        "or point tracking.uri at a running one"
    ]
    assert "Launching" not in out.stdout  # no job started
    assert seconds < 15


@pytest.mark.slow
def test_database_that_refuses_then_stops(tmp_path: Path) -> None:
    with postgres() as uri:
        check_store(uri)  # up, and this user may connect
        base = uri.rsplit("/", 1)[0]
        out, seconds = _train(tmp_path, f"{base}/nosuchdb")
        assert 'database "nosuchdb" does not exist' in _one_line(out, tmp_path)
        assert seconds < 15
        stranger = base.replace("dsbench@", "stranger@")
        out, seconds = _train(tmp_path, f"{stranger}/mlflow")
        assert 'role "stranger" does not exist' in _one_line(out, tmp_path)
        assert seconds < 15
    out, seconds = _train(tmp_path, uri)  # stopped now
    assert "Connection refused" in _one_line(out, tmp_path)
    assert seconds < 15


@pytest.mark.slow
def test_server_that_goes_away_mid_sweep(shared_data: Path, tmp_path: Path) -> None:
    """The server stops while the first job trains: that job fails once MLflow's retries
    (`tracking.retry_seconds`) are spent, the second fails its store check at once, and the
    sweep, whose parent can no longer be closed, exits 1 with one line; all in bounded time."""
    server_db = tmp_path / "server.db"
    server = make_server(f"sqlite:///{server_db}", tmp_path / "artifacts", tmp_path / "log")
    url = server.__enter__()
    check_store(url)  # up: accepted
    command = [
        sys.executable,
        "-m",
        "dsbench.train",
        "-m",
        "trainer.seed=0,1",
        "sweep.jobs=1",  # one job at a time: the second starts after the server went away
        *TINY,
        "trainer.epochs=60",  # long enough to be stopped in the middle
        f"dataset.archive_dir={shared_data / 'mnist'}",
        f"tracking.uri={url}",
        "tracking.retry_seconds=4",
        "tracking.system_metrics=false",
    ]
    sweep = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        while _epochs_logged(server_db) < 2:  # the first job is training and logging
            assert sweep.poll() is None and time.monotonic() < deadline, sweep.stderr.read()
            time.sleep(0.5)
    finally:
        server.__exit__(None, None, None)
    stopped = time.monotonic()
    stdout, stderr = sweep.communicate(timeout=300)
    assert time.monotonic() - stopped < 120
    assert sweep.returncode == 1, stderr[-3000:]
    assert (
        stderr.strip()
        .splitlines()[-1]
        .startswith("dsbench: error: cannot close the sweep's parent run: ")
    )
    assert stdout.count("the sweep goes on") == 2, stdout[-3000:]  # both jobs failed, in turn
    assert "is unreachable" in stdout  # the second one at its store check
    # Stopped now: a new run says so in one line, in seconds, before loading any data.
    with pytest.raises(ExternalError, match="is unreachable"):
        check_store(url)
    out, seconds = _train(tmp_path, url)
    assert "is unreachable" in _one_line(out, tmp_path)
    assert seconds < 15


def _epochs_logged(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        try:
            return con.execute("select count(*) from metrics where key = 'loss'").fetchone()[0]
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0


@pytest.mark.slow
def test_a_sweep_checks_the_store_once_per_job(shared_data: Path, tmp_path: Path) -> None:
    """A job is checked once (dsbench.training.job): of the /health requests the real server
    receives during a 2-job sweep, one is the sweep parent's and one each job's."""
    log = tmp_path / "server.log"
    with make_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts", log) as url:
        before = log.read_text().count('"GET /health ')  # the readiness polls
        out = dsbench(
            "train",
            "-m",
            "trainer.seed=0,1",
            *TINY,
            f"dataset.archive_dir={shared_data / 'mnist'}",
            f"tracking.uri={url}",
            "tracking.system_metrics=false",
            cwd=tmp_path,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        time.sleep(1)  # the server writes its access log as it answers; let it catch up
        checks = log.read_text().count('"GET /health ') - before
    assert checks == 1 + 2, log.read_text()[-3000:]


def test_a_sqlite_store_keeps_its_artifacts_beside_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's default artifact root is ./mlruns of the folder the command ran in: a study's
    store kept outside the work tree would leave its artifacts in the work tree."""
    import mlflow

    from dsbench.config import TrackingConfig
    from dsbench.tracking.store import open_experiment

    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    store.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    tracking = TrackingConfig(uri=f"sqlite:///{store / 'study.db'}", experiment="my study/1")
    experiment_id = open_experiment(tracking)
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.log_text("x", "note.txt")
    assert list(elsewhere.iterdir()) == []
    assert len(list((store / "mlruns" / "my-study-1").glob("*/artifacts/note.txt"))) == 1
    assert open_experiment(tracking) == experiment_id  # found again, not created twice


# ---- a store that fails mid-run: one line, exit 1, the run FAILED where it can be recorded ----

LONG_RUN = ("trainer.epochs=60", "tracking.system_metrics=false", "tracking.retry_seconds=4")


def _locked_mid_run(db: Path, uri: str, shared_data: Path, tmp_path: Path) -> tuple:
    """Train a long run into `uri`; once it has logged two epochs, hold `db` (the store's
    sqlite file, or the server's) under an exclusive lock until MLflow has logged, in the
    job's log file, that it failed to write; then let go. Returns the finished process's
    (returncode, stdout, stderr)."""
    command = [sys.executable, "-m", "dsbench", "train", *TINY, *LONG_RUN, "trainer.seed=1"]
    command += [f"dataset.archive_dir={shared_data / 'mnist'}", f"tracking.uri={uri}"]
    job = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while _epochs_logged(db) < 2:
        assert job.poll() is None and time.monotonic() < deadline, job.stderr.read()
        time.sleep(0.5)
    lock = sqlite3.connect(db, timeout=30, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        while not any(
            "Failed to log" in p.read_text() for p in tmp_path.glob("outputs/runs/*/*.log")
        ):
            assert job.poll() is None and time.monotonic() < deadline, job.stderr.read()
            time.sleep(0.2)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    stdout, stderr = job.communicate(timeout=300)
    return job.returncode, stdout, stderr


def _assert_failed_in_one_line(code: int, stderr: str, uri: str, cause: str) -> str:
    assert code == 1, stderr[-3000:]
    (line,) = stderr.strip().splitlines()
    assert line.startswith(f"dsbench: error: tracking store {uri} failed mid-run: {cause}")
    assert len(line) <= 300 and "SQL" not in line and "INSERT" not in line
    return line


@pytest.mark.slow
def test_a_sqlite_store_locked_mid_run(shared_data: Path, tmp_path: Path) -> None:
    """The store's file is locked by another process beyond the retries while a run logs:
    one line (the store, the cause in words, what to do), exit 1, the run FAILED with the
    reason once the lock is gone, and the store still opens with its earlier run."""
    uri, db = store_uri(tmp_path), tmp_path / "mlflow.db"
    earlier = train(tmp_path, data=shared_data / "mnist").runs
    code, stdout, stderr = _locked_mid_run(db, uri, shared_data, tmp_path)
    _assert_failed_in_one_line(code, stderr, uri, "its database stayed locked")
    assert "Traceback" not in stdout + stderr
    runs = {r.data.tags[Tag.SEED]: r for r in all_runs(uri)}
    assert runs["0"].info.run_id == earlier[0].info.run_id
    assert runs["0"].info.status == "FINISHED"
    assert runs["1"].info.status == "FAILED"
    assert "failed mid-run" in runs["1"].data.tags[Tag.FAILURE_REASON]


@pytest.mark.slow
def test_a_server_that_answers_with_errors_mid_run(shared_data: Path, tmp_path: Path) -> None:
    """The server is up but its database is locked: it answers HTTP 500. The run stops
    after `tracking.retry_seconds` with one line, exit 1, and is FAILED once it can be."""
    server_db = tmp_path / "server.db"
    with make_server(f"sqlite:///{server_db}", tmp_path / "artifacts", tmp_path / "log") as url:
        code, stdout, stderr = _locked_mid_run(server_db, url, shared_data, tmp_path)
        _assert_failed_in_one_line(code, stderr, url, "the server answered with")
        assert "Traceback" not in stdout + stderr
        (run,) = all_runs(url)
        assert run.info.status == "FAILED"


def test_two_runs_racing_to_log_the_same_inputs(tmp_path: Path) -> None:
    """Parallel jobs of one experiment log the same splits. MLflow looks for the dataset's
    row, then inserts it; here the other job inserts it in between (made to happen every
    time by a hook on the real sqlite store's engine). The loser retries and both runs end
    with the same three inputs."""
    import threading

    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import DatasetInput
    from sqlalchemy import event

    from dsbench.data.splits import CONTEXTS, SplitRecord
    from dsbench.tracking.logged import split_dataset
    from dsbench.tracking.recorder import Tracker

    uri = store_uri(tmp_path)
    records = [
        SplitRecord(c, 10, f"{i:016x}", {"dataset": "mnist", "split": c})
        for i, c in enumerate(CONTEXTS)
    ]
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("race")
    other = client.create_run(experiment).info.run_id
    engine = mlflow.tracking._tracking_service.utils._get_store().engine
    raced: list[str] = []

    def other_job_first(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("INSERT INTO datasets") and not raced:
            raced.append(statement)
            inputs = [DatasetInput(split_dataset(r, None)._to_mlflow_entity()) for r in records]
            job = threading.Thread(target=client.log_inputs, args=(other, inputs))
            job.start()
            job.join()

    event.listen(engine, "before_cursor_execute", other_job_first)
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            Tracker(enabled=True, uri=uri).log_inputs(records, None)
    finally:
        event.remove(engine, "before_cursor_execute", other_job_first)
        mlflow.set_tracking_uri(None)
    assert raced, "the other job did not run between MLflow's check and its insert"
    for run_id in (run.info.run_id, other):
        logged = client.get_run(run_id).inputs.dataset_inputs
        assert sorted(d.dataset.digest for d in logged) == sorted(r.digest for r in records)
