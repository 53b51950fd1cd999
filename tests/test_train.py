"""Real training runs through the real CLI into a real MLflow sqlite store."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import mlflow
import pytest
from helpers import NO_TF, TINY, Trained, all_runs, dsbench, store_uri, train
from mlflow.entities import Run

from dsbench import contract
from dsbench.contract import (
    EPOCH_METRICS,
    JOB_TAGS,
    PARENT_RUN,
    SWEEP_ROLE,
    Metric,
    Tag,
    shifted_accuracy,
)
from dsbench.data.registry import get_info

FINAL_METRICS = {
    *contract.FINAL_METRICS,
    shifted_accuracy(0),
    shifted_accuracy(1),
    shifted_accuracy(4),
}
TAGS = {*JOB_TAGS, Tag.DEVICE, Tag.GIT_COMMIT}


@pytest.fixture(scope="session")
def mnist_epoch_trained(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One full MNIST epoch (54k images) of the keras-io model, trained once per session."""
    return train(
        tmp_path_factory.mktemp("mnist_epoch"),
        "dataset.source=archive",
        "trainer.epochs=1",
        "tracking.experiment=test-epoch",
        data=shared_data / "mnist",
        tiny=False,
    )


@pytest.fixture(scope="session")
def mnist_epoch(mnist_epoch_trained: Trained) -> tuple[str, Run]:
    (run,) = mnist_epoch_trained.runs
    return mnist_epoch_trained.uri, run


@pytest.mark.slow
def test_one_epoch_reaches_97_percent(mnist_epoch: tuple[str, Run]) -> None:
    _, run = mnist_epoch
    assert run.info.status == "FINISHED"
    assert run.data.metrics[Metric.TEST_ACCURACY] >= 0.97
    assert run.info.run_name == "mnist/convnet/max+flatten/s0"


@pytest.mark.slow
def test_run_logs_every_metric_tag_param_and_artifact(mnist_epoch: tuple[str, Run]) -> None:
    uri, run = mnist_epoch
    m = run.data.metrics
    assert set(m) >= {*EPOCH_METRICS, *FINAL_METRICS}
    assert m[Metric.PARAMS_TOTAL] == m[Metric.PARAMS_TRAINABLE] == 34_826
    assert m[Metric.FLOPS_PER_IMAGE] == 4_881_920
    assert m[Metric.TRAIN_IMAGES] == 54_000
    assert m[Metric.TEST_ERROR] == pytest.approx(1 - m[Metric.TEST_ACCURACY])
    assert m[Metric.COMPILE_SECONDS] >= 0 and m[Metric.TRAIN_IMAGES_PER_SEC] > 0
    assert m["lr"] == pytest.approx(1e-3)
    assert m[Metric.STILL_IMPROVING] == 1.0  # one epoch shows no plateau
    # The shift metrics come from the same test set: unshifted they equal test_accuracy.
    assert m[shifted_accuracy(0)] == pytest.approx(m[Metric.TEST_ACCURACY], abs=1e-6)
    assert 0.1 < m[Metric.SHIFT_CONSISTENCY] <= 1  # above chance agreement of 10 classes
    assert m[shifted_accuracy(4)] < m[shifted_accuracy(1)] <= m[Metric.TEST_ACCURACY] + 0.01
    tags = run.data.tags
    assert set(tags) >= TAGS
    assert (tags[Tag.DATASET], tags[Tag.DOWNSAMPLE], tags[Tag.HEAD], tags[Tag.SEED]) == (
        "mnist",
        "max",
        "flatten",
        "0",
    )
    assert tags[Tag.BACKEND] == "tensorflow"
    params = run.data.params
    assert params["trainer.lr"] == "0.001" and params["trainer.batch_size"] == "128"
    assert params["downsample.name"] == "max"
    client = mlflow.MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(run.info.run_id, Metric.VAL_ACCURACY)
    assert [h.step for h in history] == [1]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "shapes.md", "hydra"} <= artifacts
    shapes = Path(client.download_artifacts(run.info.run_id, "shapes.md")).read_text()
    assert "| block2_down |" in shapes and "| 5×5×64 |" in shapes


@pytest.mark.slow
def test_a_run_ends_with_its_result_in_one_line(mnist_epoch_trained: Trained) -> None:
    run = mnist_epoch_trained.runs[0]
    m = run.data.metrics
    last = mnist_epoch_trained.out.stdout.strip().splitlines()[-1]
    assert last.startswith(
        f"mnist/convnet/max+flatten/s0: test error {100 * m[Metric.TEST_ERROR]:.2f} %"
    )
    assert f"shift consistency {100 * m[Metric.SHIFT_CONSISTENCY]:.1f} %" in last
    assert "34,826 params, trained in " in last
    # Library INFO lines (MLflow's, absl's) are in the job's log file, not on the terminal.
    assert "INFO" not in mnist_epoch_trained.out.stdout + mnist_epoch_trained.out.stderr


@pytest.mark.slow
def test_a_run_logs_its_data_as_inputs_with_digests(mnist_epoch: tuple[str, Run]) -> None:
    _, run = mnist_epoch
    inputs = {
        next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
        for i in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "validation", "test"}
    assert len({d.digest for d in inputs.values()}) == 3  # the three splits differ
    assert all(re.fullmatch(r"[0-9a-f]{16}", d.digest) for d in inputs.values())
    profiles = {context: json.loads(d.profile) for context, d in inputs.items()}
    assert [profiles[c]["examples"] for c in ("training", "validation", "test")] == [
        54_000,
        6_000,
        10_000,
    ]
    training = profiles["training"]
    assert (
        training["archives_md5"]["train-images-idx3-ubyte.gz"]
        == get_info("mnist").files["train_images"][1]
    )
    assert (training["split_seed"], training["source"], training["preprocess"]) == (
        0,
        "archive",
        "none",
    )
    assert json.loads(inputs["test"].source)["url"] == get_info("mnist").url


@pytest.mark.slow
def test_a_run_logs_its_model_which_reloads_to_the_same_accuracy(
    mnist_epoch: tuple[str, Run], shared_data: Path
) -> None:
    uri, run = mnist_epoch
    mlflow.set_tracking_uri(uri)
    (model,) = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    assert model.name == "model"
    from dsbench.config import DatasetConfig
    from dsbench.data.splits import load_splits
    from dsbench.tracking.logged import load_model

    keras_model = load_model(f"models:/{model.model_id}")
    dataset = DatasetConfig(source="archive", archive_dir=str(shared_data / "mnist"))
    splits = load_splits(dataset)
    predictions = keras_model.predict(splits.x_test, batch_size=512, verbose=0)
    accuracy = float((predictions.argmax(axis=1) == splits.y_test).mean())
    assert accuracy == pytest.approx(run.data.metrics[Metric.TEST_ACCURACY], abs=1e-4)


@pytest.mark.slow
def test_tfds_front_door_trains(mnist_tfds: Path, mnist_manual_dir: Path, tmp_path: Path) -> None:
    """TFDS (prepared offline from the official archives) feeds a real run."""
    (run,) = train(
        tmp_path,
        "dataset.source=tfds",
        f"dataset.tfds_data_dir={mnist_tfds}",
        data=mnist_manual_dir,
    ).runs
    assert run.info.status == "FINISHED" and run.data.tags[Tag.DATA_SOURCE] == "tfds"


@pytest.mark.slow
def test_two_job_sweep_nests_children_under_a_parent(shared_data: Path, tmp_path: Path) -> None:
    runs = train(
        tmp_path,
        "downsample=max,conv",
        "tracking.experiment=sweep-test",
        data=shared_data / "mnist",
        sweep=True,
    ).runs
    parents = [r for r in runs if r.data.tags.get(Tag.ROLE) == SWEEP_ROLE]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get(PARENT_RUN) == parent.info.run_id]
    assert sorted(r.data.tags[Tag.DOWNSAMPLE] for r in children) == ["conv", "max"]
    assert all(r.info.status == "FINISHED" for r in children)
    assert parent.info.status == "FINISHED" and parent.data.tags[Tag.JOBS] == "2"
    assert len(runs) == 3
    # Named by its study, with its grid as params and its command line as its note.
    assert parent.info.run_name.startswith("sweep-test sweep 20")
    assert parent.data.params["downsample"] == "max,conv"
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("`dsbench train -m ") and "- downsample = max,conv" in note


@pytest.mark.slow
def test_sweep_stopped_by_bad_input_leaves_no_running_run(
    shared_data: Path, tmp_path: Path
) -> None:
    """Job 1 has lr ≤ 0: every job is checked before the first starts (they run side by
    side), so the sweep stops with one line, exit 2, before anything trains or is recorded."""
    uri = store_uri(tmp_path)
    out = dsbench(
        "train",
        "-m",
        *TINY,
        f"dataset.archive_dir={shared_data / 'mnist'}",
        "trainer.lr=0.001,-1",
        f"tracking.uri={uri}",
        cwd=tmp_path,
        probe_tf=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("dsbench: error: trainer.lr must be > 0")
    assert out.stdout.rstrip().endswith(NO_TF)  # nothing trained
    assert not (tmp_path / "mlflow.db").exists()  # nothing recorded


@pytest.mark.slow
def test_jax_backend_with_bfloat16(shared_data: Path, tmp_path: Path) -> None:
    (run,) = train(
        tmp_path,
        "trainer.backend=jax",
        "trainer.precision=mixed_bfloat16",
        data=shared_data / "mnist",
    ).runs
    assert run.info.status == "FINISHED"
    assert (run.data.tags[Tag.BACKEND], run.data.tags[Tag.PRECISION]) == ("jax", "mixed_bfloat16")
    assert 0 <= run.data.metrics[Metric.TEST_ACCURACY] <= 1


@pytest.mark.slow
def test_sigterm_ends_the_run_killed(shared_data: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    uri = store_uri(tmp_path)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dsbench.train",
            "dataset.source=archive",
            f"dataset.archive_dir={shared_data / 'mnist'}",
            "trainer.epochs=50",
            "trainer.verbose=0",
            f"tracking.uri={uri}",
        ],
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "RUNNING" not in _statuses(tmp_path / "mlflow.db"):
            time.sleep(1)
        assert "RUNNING" in _statuses(tmp_path / "mlflow.db"), "the run never started"
        time.sleep(2)  # inside fit
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) != 0
    finally:
        proc.kill()
    (run,) = all_runs(uri)
    assert run.info.status == "KILLED"
    assert "interrupted" in run.data.tags[Tag.FAILURE_REASON]


def _statuses(db: Path) -> set[str]:
    """Run statuses, read straight from the sqlite file (an MLflow client here would race
    the training process' schema set-up)."""
    import sqlite3

    if not db.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return {row[0] for row in con.execute("SELECT status FROM runs")}
    except sqlite3.OperationalError:  # tables not created yet
        return set()


@pytest.mark.slow
def test_nan_loss_fails_the_job_and_the_sweep_goes_on(shared_data: Path, tmp_path: Path) -> None:
    uri = store_uri(tmp_path)
    sweep = [
        *TINY,
        f"dataset.archive_dir={shared_data / 'mnist'}",
        "trainer.optimizer=sgd",
        "trainer.lr=1e12,0.01",  # the first diverges
        f"tracking.uri={uri}",
    ]
    out = dsbench("train", "-m", *sweep, cwd=tmp_path)
    assert out.returncode == 1
    assert "1 job(s) of the sweep failed" in out.stderr
    runs = {r.data.params.get("trainer.lr"): r for r in all_runs(uri)}
    diverged, fine = runs["1000000000000.0"], runs["0.01"]
    assert diverged.info.status == "FAILED"
    assert diverged.data.tags[Tag.FAILURE_REASON].startswith("Diverged: loss became")
    assert fine.info.status == "FINISHED"
    models = mlflow.MlflowClient(tracking_uri=uri).search_logged_models(
        [diverged.info.experiment_id]
    )
    assert [m.source_run_id for m in models] == [fine.info.run_id]  # the diverged run: none
    (parent,) = [r for r in all_runs(uri) if r.data.tags.get(Tag.ROLE) == SWEEP_ROLE]
    assert parent.info.status == "FAILED" and parent.data.tags[Tag.JOBS_FAILED] == "1"
    # The sweep's analysis lists the failed job with its reason, never drops it silently.
    table = mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="analysis/comparison.md", tracking_uri=uri
    )
    text = Path(table).read_text()
    assert "Runs that did not finish" in text
    assert "FAILED (Diverged: loss became" in text
    # Resumed, the diverged job is not trained again: its outcome is known.
    again = dsbench("train", "-m", *sweep, cwd=tmp_path)
    assert "skipped mnist/convnet/max+flatten/s0: already diverged as run" in again.stderr
    assert len([r for r in all_runs(uri) if Tag.ROLE not in r.data.tags]) == 2


@pytest.mark.slow
def test_device_loop_jax_bfloat16_one_tiny_epoch(shared_data: Path, tmp_path: Path) -> None:
    """The GPU fast path (data on the device, unrolled steps per dispatch, AOT compile) on CPU."""
    trained = train(
        tmp_path,
        "trainer.epochs=2",
        "trainer.batch_size=64",
        "trainer.steps_per_execution=3",  # 8 steps an epoch: 2 dispatches of 3, then one of 2
        "trainer.backend=jax",
        "trainer.precision=mixed_bfloat16",
        "trainer.loop=device",
        data=shared_data / "mnist",
    )
    uri, (run,) = trained.uri, trained.runs
    assert run.info.status == "FINISHED"
    m = run.data.metrics
    assert set(m) >= {*EPOCH_METRICS, *FINAL_METRICS}
    assert m[Metric.COMPILE_SECONDS] > 0 and m[Metric.STEADY_IMAGES_PER_SEC] > 0
    assert m[Metric.TRAIN_IMAGES] == 512
    # It learns: above chance on the test set after 2 tiny epochs, and the loss falls.
    client = mlflow.MlflowClient(tracking_uri=uri)
    losses = [h.value for h in client.get_metric_history(run.info.run_id, Metric.LOSS)]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert m[Metric.TEST_ACCURACY] > 0.2
