"""What a run records in MLflow, and what each name means: the contract between training,
tracking, analysis, the tools and the tests.

Every metric and tag name is written here once; everything else imports it (a test checks
that no other module of src/ spells one as a string). A new metric is one constant here,
logged where it is computed and read by name where it is shown.

Column names of `mlflow.search_runs` frames: `metric_column(Metric.TEST_ERROR)` is
"metrics.test_error", `tag_column(Tag.CONFIG_HASH)` is "tags.config_hash".
"""

from __future__ import annotations


class Metric:
    """Metric keys. Per-epoch ones are logged with step = epoch (1-based), the rest once."""

    # Per epoch (Keras' own names for the first four: the loops log what Keras reports).
    LOSS = "loss"  # training loss, mean over the epoch's batches
    ACCURACY = "accuracy"  # training accuracy over the epoch
    VAL_LOSS = "val_loss"  # on the validation split (dataset.val_fraction)
    VAL_ACCURACY = "val_accuracy"
    LR = "lr"  # the optimizer's learning rate at the end of the epoch
    EPOCH_SECONDS = "epoch_seconds"  # wall time of the epoch, validation included
    TRAIN_SECONDS = "train_seconds"  # wall time of its training steps only
    STEP_SECONDS = "step_seconds"  # train_seconds / steps
    TRAIN_IMAGES_PER_SEC = "train_images_per_sec"  # training images / train_seconds

    # Once, at the end of a run.
    TEST_LOSS = "test_loss"
    TEST_ACCURACY = "test_accuracy"
    TEST_ERROR = "test_error"  # 1 − test_accuracy: what the tables compare
    PARAMS_TOTAL = "params_total"  # Keras' count_params()
    PARAMS_TRAINABLE = "params_trainable"
    FLOPS_PER_IMAGE = "flops_per_image"  # forward multiply-adds × 2 (dsbench.model.layers)
    COMPILE_SECONDS = "compile_seconds"  # first step's time minus one steady step
    STEADY_IMAGES_PER_SEC = "steady_images_per_sec"  # median rate of the epochs after the first
    TOTAL_TRAIN_SECONDS = "total_train_seconds"  # sum of epoch_seconds
    TRAIN_IMAGES = "train_images"  # size of the training split
    STOPPED_EPOCH = "stopped_epoch"  # epochs trained (early stopping may end before the cap)
    # 1 when validation accuracy was still rising at the end (training.plateau.RULE), else 0;
    # not logged without a validation split.
    STILL_IMPROVING = "still_improving"
    BEST_EPOCH = "best_epoch"  # early stopping only: the epoch whose weights were evaluated
    PEAK_MEMORY_BYTES = "peak_memory_bytes"  # the device's peak, where the backend reports one
    INFERENCE_IMAGES_PER_SEC = "inference_images_per_sec"  # predict, after a warm-up batch
    # Zhang 2019's protocol adapted to small images: the same class under two independent
    # random shifts in [−k, k]², zero-filled (no larger image to crop from).
    SHIFT_CONSISTENCY = "shift_consistency"
    # The APS protocol (Chaman & Dokmanić 2021): the same class for x and a circular roll of
    # x by a random offset in [−k, k]², nothing lost at the border.
    CIRCULAR_SHIFT_CONSISTENCY = "circular_shift_consistency"
    SHIFTED_ACCURACY_PREFIX = "test_accuracy_shift"  # + k: accuracy with every image moved k px


def shifted_accuracy(pixels: int) -> str:
    """The metric of test accuracy with every image shifted by `pixels` (0: unshifted)."""
    return f"{Metric.SHIFTED_ACCURACY_PREFIX}{pixels}"


EPOCH_METRICS = (
    Metric.LOSS,
    Metric.ACCURACY,
    Metric.VAL_LOSS,
    Metric.VAL_ACCURACY,
    Metric.LR,
    Metric.EPOCH_SECONDS,
    Metric.TRAIN_SECONDS,
    Metric.STEP_SECONDS,
    Metric.TRAIN_IMAGES_PER_SEC,
)
# What every FINISHED run logs at its end, with the default evaluation; besides these, one
# shifted_accuracy(k) for k = 0 and each of evaluation.shifts, BEST_EPOCH with early stopping,
# STILL_IMPROVING with a validation split and PEAK_MEMORY_BYTES where the backend reports it.
FINAL_METRICS = (
    Metric.TEST_LOSS,
    Metric.TEST_ACCURACY,
    Metric.TEST_ERROR,
    Metric.PARAMS_TOTAL,
    Metric.PARAMS_TRAINABLE,
    Metric.FLOPS_PER_IMAGE,
    Metric.COMPILE_SECONDS,
    Metric.STEADY_IMAGES_PER_SEC,
    Metric.TOTAL_TRAIN_SECONDS,
    Metric.TRAIN_IMAGES,
    Metric.STOPPED_EPOCH,
    Metric.INFERENCE_IMAGES_PER_SEC,
    Metric.SHIFT_CONSISTENCY,
    Metric.CIRCULAR_SHIFT_CONSISTENCY,
)


class Tag:
    """Tag keys of a job's run, and of a sweep's parent run."""

    # A job's run is found and grouped by these (set from its config when it opens).
    DATASET = "dataset"  # dataset.name
    MODEL = "model"  # model.name (the backbone)
    DOWNSAMPLE = "downsample"  # downsample.name (the strategy)
    HEAD = "head"  # head.name
    SEED = "seed"  # trainer.seed
    BACKEND = "backend"  # trainer.backend
    PRECISION = "precision"  # trainer.precision
    CONFIG_HASH = "config_hash"  # what the run computes (config.config_hash): resume's key
    # Where and how it ran.
    DEVICE = "device"  # the Keras backend's first device
    DATA_SOURCE = "data_source"  # where the data was read from (tfds, archive, synthetic)
    GIT_COMMIT = "git_commit"  # the code's commit, DIRTY appended when the tree had changes
    # How it shared the machine, which its speed metrics depend on (training.job.Share).
    THREADS = "threads"  # the threads it could use
    JOBS_AT_ONCE = "jobs_at_once"  # jobs of its sweep running at once, itself included
    # How it ended, when not FINISHED: the exception, one line ("Diverged: …" for a loss
    # that became NaN or infinite, errors.DIVERGED).
    FAILURE_REASON = "failure_reason"
    # A sweep's parent run.
    ROLE = "dsbench.role"  # "sweep"
    SWEEP_DIR = "sweep_dir"  # where the attempt's jobs write
    SWEEP_KEY = "sweep_key"  # what makes two sweeps the same sweep (tracking.sweep.sweep_key)
    JOBS = "jobs"  # jobs of the sweep, counted by config_hash
    JOBS_FAILED = "jobs_failed"  # of them, those with no FINISHED attempt
    JOBS_REUSED = "jobs_reused"  # of them, those resume found FINISHED outside the sweep
    # On a run a sweep reused instead of training its job again (resume found it FINISHED
    # outside that sweep): + the sweep's parent run id (reused_in), value "true". The
    # sweep's count, table and dashboard include it.
    REUSED_IN_PREFIX = "dsbench.reused_in."


JOB_TAGS = (  # the tags every job's run carries from its config alone
    Tag.DATASET,
    Tag.MODEL,
    Tag.DOWNSAMPLE,
    Tag.HEAD,
    Tag.SEED,
    Tag.BACKEND,
    Tag.PRECISION,
    Tag.CONFIG_HASH,
)
DIRTY = "-dirty"  # the end of a git_commit tag whose code had uncommitted changes
SWEEP_ROLE = "sweep"  # the value of Tag.ROLE on a sweep's parent run
PARENT_RUN = "mlflow.parentRunId"  # MLflow's own tag: the parent of a nested run
RUN_NAME = "mlflow.runName"  # MLflow's own tag: the run's name (tracking.recorder.run_name)
DESCRIPTION = "mlflow.note.content"  # MLflow's own experiment tag: tracking.description


def reused_in(parent: str) -> str:
    """The tag that makes a run part of sweep `parent` without being its child."""
    return f"{Tag.REUSED_IN_PREFIX}{parent}"


def metric_column(name: str) -> str:
    """The `mlflow.search_runs` column of a metric."""
    return f"metrics.{name}"


def tag_column(name: str) -> str:
    """The `mlflow.search_runs` column of a tag."""
    return f"tags.{name}"


def tag_filter(name: str) -> str:
    """A tag in an MLflow filter string; backquoted, since tag names may hold dots."""
    return f"tags.`{name}`"
