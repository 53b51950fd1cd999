"""Structured config schemas: one dataclass per config group in conf/.

Hydra checks key names and types against these when it composes; ranges and cross-field
rules are checked in `__post_init__`, which runs in `validate` (OmegaConf.to_object). Every
check raises DsbenchError with one line: what is wrong and what is allowed.

The schemas hold every key's type and default, once: an option's YAML in conf/<group>/ holds
only its name and what it changes (a test keeps it so). Names that pick a registry entry
(dataset, model, downsample, head) are checked where the registry is read
(`dsbench.data.registry`, `dsbench.model.plan`), so that this module, the bottom of the
import graph, imports no stage; the stages import their checks and schemas from here.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import numbers
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dsbench.errors import DsbenchError, did_you_mean, unknown

# The configs: the project's top-level conf/ (and experiments/ as its group `experiments`),
# which the wheel carries as the package dsbench.conf; Hydra finds them by package, from any
# folder, in a source checkout and after `pip install` alike.
CONFIG_PATH = "pkg://dsbench.conf"

# MLflow's own default store, in the folder a command runs from (`mlflow ui` finds it there).
DEFAULT_STORE_URI = "sqlite:///mlflow.db"


def default_store_uri() -> str:
    """$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the current folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE_URI


def _choice(what: str, value: str, allowed: tuple[str, ...] | list[str]) -> None:
    if value not in allowed:
        raise unknown(what, value, allowed)


def _positive(what: str, value: float) -> None:
    if not value > 0:
        raise DsbenchError(f"{what} must be > 0, got {value}")


def _dropout(what: str, value: float | None) -> None:
    if value is not None and not 0 <= value < 1:
        raise DsbenchError(f"{what} must be in [0, 1), got {value}")


# Where a dataset comes from: tfds (TFDS prepares it offline from the archives, checking its
# own checksums) | archive (the official files, read by dsbench, md5-checked) | synthetic
# (random images of the dataset's shape: speed measurements).
SOURCES = ("tfds", "archive", "synthetic")
PREPROCESSING = ("none", "gcn_zca")


def check_subset(k: int | None, what: str = "subset") -> None:
    """A subset size: a positive integer, or None for all."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral) or k <= 0):
        raise DsbenchError(f"{what}={k!r} is invalid: use a positive integer, or null for all")


def check_val_fraction(val_fraction: float, what: str = "val_fraction") -> None:
    """A validation share: in (0, 1), or 0 for no validation set."""
    ok = isinstance(val_fraction, numbers.Real) and not isinstance(val_fraction, bool)
    if not ok or not (val_fraction == 0 or 0 < val_fraction < 1):
        raise DsbenchError(
            f"{what}={val_fraction!r} is invalid: use a number in (0, 1), "
            "or 0.0 for no validation set"
        )


def check_seed(split_seed: int, what: str = "split_seed") -> None:
    """A seed: an integer >= 0."""
    if (
        isinstance(split_seed, bool)
        or not isinstance(split_seed, numbers.Integral)
        or split_seed < 0
    ):
        raise DsbenchError(f"{what}={split_seed!r} is invalid: use an integer >= 0")


def check_url(url: str, what: str = "dataset.url") -> None:
    """A folder URL the fetch can use: http:// or https://."""
    if not url.startswith(("http://", "https://")):
        raise DsbenchError(
            f"{what}={url!r} is not an http:// or https:// URL: use one (a local folder "
            "is served by `python -m http.server`), or put the files in dataset.archive_dir"
        )


@dataclass
class DatasetConfig:
    """What the data stage loads (`dsbench.data.splits.load_splits`) and how it is split.

    The folders' defaults are interpolations that composing (or `validate`) resolves: made
    directly in Python, a DatasetConfig needs its archive_dir (and tfds_data_dir for tfds).
    """

    name: str = "mnist"
    source: str = "tfds"  # tfds | archive | synthetic (SOURCES)
    # The official archives, $DSBENCH_DATA/<name>, else data/<name> in the folder a command
    # runs from; also TFDS's manual dir (it prepares offline from them).
    archive_dir: str = "${oc.env:DSBENCH_DATA,data}/${.name}"
    # Where archives missing from archive_dir are downloaded from (a folder URL, md5-checked);
    # None: $DSBENCH_MIRROR/<name>/ if set, else the official location (docs/data.md).
    url: str | None = None
    tfds_data_dir: str = "${oc.env:TFDS_DATA_DIR,'~/tensorflow_datasets'}"
    val_fraction: float = 0.1  # held out of the training set, seeded by split_seed
    split_seed: int = 0  # fixed apart from trainer.seed: every seed sees the same val split
    train_subset: int | None = None  # a seeded k-example subset for training (tiny runs, tests)
    test_subset: int | None = None
    # archive source: check the official md5; false only for re-packed or generated
    # archives (TFDS always checks its own checksums).
    verify_md5: bool = True
    # none (uint8, scaled to [0, 1] in the model) | gcn_zca (Springenberg 2015)
    preprocess: str = "none"

    def __post_init__(self) -> None:
        _choice("dataset.source", self.source, SOURCES)
        _choice("dataset.preprocess", self.preprocess, PREPROCESSING)
        check_val_fraction(self.val_fraction, "dataset.val_fraction")
        check_seed(self.split_seed, "dataset.split_seed")
        check_subset(self.train_subset, "dataset.train_subset")
        check_subset(self.test_subset, "dataset.test_subset")
        if self.url is not None:
            check_url(self.url)
        if not isinstance(self.verify_md5, bool):
            raise DsbenchError(
                f"dataset.verify_md5={self.verify_md5!r} is invalid: use true or false"
            )
        if self.source == "tfds" and self.tfds_data_dir is None:
            raise DsbenchError(
                "dataset.source=tfds needs a TFDS data dir (dataset.tfds_data_dir): "
                "set it, or use dataset.source=archive"
            )


PADDING_MODES = ("zeros", "circular")
NORMS = ("none", "batch")
ACTIVATIONS = ("relu", "gelu")
CONV_PADDINGS = ("same", "valid")
# Where a slot sits in its conv's conv → norm → activation: after all three (Zhang 2019's
# and the ResNets'), or right after the conv (airbench: conv → pool → BN → GELU).
SLOT_POSITIONS = ("activation", "conv")


@dataclass
class ConvConfig:
    """One conv of a backbone block (filters before model.width)."""

    filters: int = 0
    kernel: int = 3
    stride: int = 1
    padding: str = "same"
    norm: str | None = None  # None: the backbone's model.norm; "none" e.g. for a stem conv


@dataclass
class BlockConfig:
    """A few convs, optionally one downsampling slot, optionally a residual shortcut."""

    convs: list[ConvConfig] = field(default_factory=list)
    # The slot follows conv number `slot` (1-based; -1: the last conv; null: no slot).
    slot: int | None = -1
    # x → activation(main(x) + shortcut(x)) (He et al. 2016); the shortcut is parameter-free
    # (option A), through the slot's own layers when the block downsamples (docs/models.md).
    residual: bool = False
    repeat: int = 1  # this block, that many times in a row


@dataclass
class ModelConfig:
    """A backbone (conf/model/<name>.yaml: blocks of convs with downsampling slots) and the
    knobs every backbone takes (width, padding_mode, pad_to, dropout)."""

    name: str = "convnet"
    description: str = ""  # one line: what the backbone is, its source
    blocks: list[BlockConfig] = field(default_factory=list)
    norm: str = "none"  # none | batch (after each conv, before its activation)
    # Keras' BatchNormalization momentum of the moving statistics (PyTorch's 0.1 is 0.9).
    norm_momentum: float = 0.9
    activation: str = "relu"  # relu | gelu
    # The slot geometry every strategy is given (max pooling's window, stride, padding).
    slot_window: int = 2
    slot_stride: int = 2
    slot_padding: str = "valid"
    slot_position: str = "activation"  # activation | conv (see SLOT_POSITIONS)
    input_dropout: float = 0.0
    slot_dropout: float = 0.0  # dropout after each downsampling slot
    # Input adapter: zero-pad smaller images to pad_to × pad_to (28×28 MNIST → 32×32 for
    # the Springenberg backbones, so their maps are 32 → 16 → 8 → 6 as in the paper).
    pad_to: int | None = None
    # Every conv's filters × width, rounded half up, at least 1 (the classifier's are the
    # classes, never scaled): 0.25 makes Springenberg's 96/192 24/48, to fit a CPU.
    width: float = 1.0
    # How a "same" conv pads: zeros, or circular (the map wraps around; with APS and a GAP
    # head a circular shift of the input cannot change the class).
    padding_mode: str = "zeros"

    def __post_init__(self) -> None:
        if not 0 < self.width < float("inf"):  # NaN fails this too
            raise DsbenchError(f"model.width must be a number > 0, got {self.width}")
        _choice("model.padding_mode", self.padding_mode, PADDING_MODES)
        _choice("model.norm", self.norm, NORMS)
        _choice("model.activation", self.activation, ACTIVATIONS)
        _choice("model.slot_padding", self.slot_padding, CONV_PADDINGS)
        _choice("model.slot_position", self.slot_position, SLOT_POSITIONS)
        _positive("model.slot_window", self.slot_window)
        _positive("model.slot_stride", self.slot_stride)
        if not 0 < self.norm_momentum < 1:
            raise DsbenchError(f"model.norm_momentum must be in (0, 1), got {self.norm_momentum}")
        if self.pad_to is not None:
            _positive("model.pad_to", self.pad_to)
        _dropout("model.input_dropout", self.input_dropout)
        _dropout("model.slot_dropout", self.slot_dropout)
        for i, block in enumerate(self.blocks):
            _check_block(f"model.blocks[{i}]", block)


def _check_block(where: str, block: BlockConfig) -> None:
    if not block.convs:
        raise DsbenchError(f"{where}.convs is empty: a block needs at least one conv")
    n = len(block.convs)
    if block.slot is not None and not (block.slot == -1 or 1 <= block.slot <= n):
        raise DsbenchError(
            f"{where}.slot={block.slot} but the block has {n} conv(s): use 1..{n}, "
            "-1 (after the last) or null (no slot)"
        )
    _positive(f"{where}.repeat", block.repeat)
    for j, conv in enumerate(block.convs):
        at = f"{where}.convs[{j}]"
        for key in ("filters", "kernel", "stride"):
            _positive(f"{at}.{key}", getattr(conv, key))
        _choice(f"{at}.padding", conv.padding, CONV_PADDINGS)
        if conv.norm is not None:
            _choice(f"{at}.norm", conv.norm, NORMS)


@dataclass
class DownsampleConfig:
    """Strategy and its knobs; a knob that the chosen strategy does not use is ignored."""

    name: str = "max"
    # None: the backbone's pooling window (2 for convnet); blur: of its stride-1 max pool;
    # s2d: not used
    window: int | None = None
    stride: int | None = None  # None: the backbone's pooling stride (s2d: its block size)
    p: float = 3.0  # lp: the exponent; 1 = average of |x|, larger → closer to max
    alpha: float = 0.5  # mixed: weight of max in α·max + (1 − α)·avg (start value if learned)
    learn_alpha: bool = False  # mixed: learn α = sigmoid(w), 1 parameter per slot
    filter_size: int = 3  # blur, aps with aps_blur: side of the binomial filter, 2..5
    aps_blur: bool = False  # aps: the binomial blur at stride 1 before the phase choice
    bands: str = "ll"  # wavelet: ll (the low-low band) | all (4 bands, then a 1×1 conv)

    def __post_init__(self) -> None:
        for key in ("window", "stride"):
            value = getattr(self, key)
            if value is not None:
                _positive(f"downsample.{key}", value)
        # p = inf is max in the limit, but |x|^inf and 1/inf cannot be computed: use max.
        if not 1 <= self.p < float("inf"):  # NaN fails this too
            raise DsbenchError(
                f"downsample.p must be a finite number >= 1 (1: average, larger: nearer max), "
                f"got {self.p}"
            )
        if not 0 <= self.alpha <= 1:
            raise DsbenchError(f"downsample.alpha must be in [0, 1], got {self.alpha}")
        # A learned α is sigmoid(w), started at logit(alpha): 0 and 1 have no logit.
        if self.learn_alpha and not 0 < self.alpha < 1:
            raise DsbenchError(
                f"downsample.alpha must be in (0, 1) when downsample.learn_alpha is true "
                f"(the start of sigmoid(w)), got {self.alpha}"
            )
        if self.bands not in WAVELET_BANDS:
            raise DsbenchError(
                f"downsample.bands must be one of {', '.join(WAVELET_BANDS)}, got {self.bands!r}"
            )
        if self.filter_size not in (2, 3, 4, 5):
            raise DsbenchError(
                f"downsample.filter_size must be an integer in 2..5, got {self.filter_size}"
            )


WAVELET_BANDS = ("ll", "all")


@dataclass
class HeadConfig:
    name: str = "flatten"
    dropout: float = 0.5  # before the classifier layer

    def __post_init__(self) -> None:
        _dropout("head.dropout", self.dropout)


OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # mixed_float16: GPU only
BACKENDS = ("tensorflow", "jax")
LOOPS = ("keras", "device")


@dataclass
class TrainerConfig:
    """The keras-io MNIST recipe by default: Adam 1e-3, batch 128, 15 epochs."""

    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    # constant | cosine (annealed to 0 at `epochs`) | step. The study protocol: cosine with
    # warmup_epochs > 0 is one-cycle (lr rises linearly from 0, then anneals to 0).
    schedule: str = "constant"
    warmup_epochs: int = 0  # cosine only
    milestones: list[int] = field(default_factory=list)  # step: epochs where lr *= gamma
    gamma: float = 0.1
    weight_decay: float = 0.0  # Keras' decoupled weight decay of the optimizer
    batch_size: int = 128
    epochs: int = 15
    seed: int = 0
    precision: str = "float32"  # float32 | mixed_bfloat16 | mixed_float16 (GPU only)
    backend: str = "tensorflow"  # tensorflow | jax (the fast path on a GPU)
    steps_per_execution: int = 1  # training steps per dispatch to the device
    # keras: model.fit | device: the data on the device, `steps_per_execution` steps per
    # compiled program, compile timed apart (JAX backend; the GPU fast path, device_loop.py)
    loop: str = "keras"
    verbose: int = 2  # Keras progress: 0 silent, 1 bar, 2 one line per epoch
    # Training-batch augmentation, in the model (inactive at evaluation): random
    # translations of up to augment_translate px (zero fill) and horizontal flips.
    augment_translate: int = 0
    augment_flip: bool = False
    # Convergence: stop once val_loss has not improved by min_delta for this many epochs
    # (0: off, train `epochs`), then restore the weights of the best epoch; `epochs` is the cap.
    early_stopping_patience: int = 0
    early_stopping_min_delta: float = 0.0

    @property
    def augmented(self) -> bool:
        """Training batches are augmented (the paper's "augmented" setting)."""
        return bool(self.augment_translate or self.augment_flip)

    def __post_init__(self) -> None:
        if self.augment_translate < 0:
            raise DsbenchError(
                f"trainer.augment_translate must be >= 0 px, got {self.augment_translate}"
            )
        _choice("trainer.optimizer", self.optimizer, OPTIMIZERS)
        _choice("trainer.schedule", self.schedule, SCHEDULES)
        _choice("trainer.precision", self.precision, PRECISIONS)
        _choice("trainer.backend", self.backend, BACKENDS)
        _choice("trainer.loop", self.loop, LOOPS)
        if self.loop == "device" and self.backend != "jax":
            raise DsbenchError(
                f"trainer.loop=device runs on the JAX backend, got trainer.backend={self.backend}: "
                "add trainer.backend=jax or use trainer.loop=keras"
            )
        if self.loop == "device" and self.precision == "mixed_float16":
            raise DsbenchError(
                "trainer.loop=device has no loss scaling for mixed_float16: use "
                "trainer.precision=mixed_bfloat16 (or float32), or trainer.loop=keras"
            )
        _positive("trainer.lr", self.lr)
        _positive("trainer.batch_size", self.batch_size)
        _positive("trainer.steps_per_execution", self.steps_per_execution)
        if self.epochs < 1:
            raise DsbenchError(f"trainer.epochs must be >= 1, got {self.epochs}")
        if self.weight_decay < 0:
            raise DsbenchError(f"trainer.weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_epochs and (self.schedule != "cosine" or self.warmup_epochs >= self.epochs):
            raise DsbenchError(
                f"trainer.warmup_epochs={self.warmup_epochs} needs trainer.schedule=cosine and "
                f"fewer than trainer.epochs={self.epochs} (got schedule={self.schedule})"
            )
        if self.warmup_epochs < 0:
            raise DsbenchError(f"trainer.warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if any(m < 1 for m in self.milestones):
            raise DsbenchError(f"trainer.milestones must be epochs >= 1, got {self.milestones}")
        if self.early_stopping_patience < 0 or self.early_stopping_min_delta < 0:
            raise DsbenchError(
                "trainer.early_stopping_patience and trainer.early_stopping_min_delta must be "
                f">= 0, got {self.early_stopping_patience} and {self.early_stopping_min_delta}"
            )
        if self.early_stopping_patience and self.loop == "device":
            raise DsbenchError(
                "trainer.early_stopping_patience needs trainer.loop=keras (the device loop "
                "trains a fixed number of epochs)"
            )


@dataclass
class TrackingConfig:
    """Where and how runs are recorded (MLflow)."""

    enabled: bool = True
    # $MLFLOW_TRACKING_URI, else MLflow's own default store sqlite:///mlflow.db in the folder
    # a command runs from, where `mlflow ui` finds it (`default_store_uri`).
    uri: str = field(default_factory=default_store_uri)
    experiment: str = "dsbench"
    run_name: str | None = None  # None: dataset/model/downsample+head/s<seed>
    description: str = ""  # the experiment's note in the MLflow UI (a study says what it compares)
    system_metrics: bool = True  # MLflow's CPU / memory / GPU sampling, every 10 s, off-thread
    # Skip a job whose config (see `config_hash`) already has a FINISHED run in the
    # experiment, and continue an interrupted sweep in its parent run; false: always train.
    resume: bool = True
    # A tracking server that stops answering mid-run is retried for about this long, then
    # the job fails (MLflow's own default is about 4 minutes).
    retry_seconds: float = 60.0
    # Log the trained model (MLflow logged model, Keras flavour) to a FINISHED run; a failed
    # or diverged run logs none. About 0.2–3 MB a run on the suite's backbones (docs/tracking.md).
    log_model: bool = True
    # Train from a tree whose code or configs have uncommitted changes (its runs' git_commit
    # ends in -dirty). The study presets set false: a result must come from a commit.
    allow_dirty: bool = True

    def __post_init__(self) -> None:
        _positive("tracking.retry_seconds", self.retry_seconds)


@dataclass
class EvaluationConfig:
    """End-of-run evaluation on the test set (`dsbench.training.evaluate`)."""

    # px: accuracy with every test image shifted k px (one axis direction each, zero fill)
    shifts: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    consistency_shift: int = 4  # Zhang 2019's consistency over shifts in [−k, k]²; 0: off
    seed: int = 0  # which shifts: the same for every run, so runs compare like for like

    def __post_init__(self) -> None:
        if any(k < 1 for k in self.shifts):
            raise DsbenchError(f"evaluation.shifts must be pixels >= 1, got {self.shifts}")
        if self.consistency_shift < 0:
            raise DsbenchError(
                f"evaluation.consistency_shift must be >= 0 px, got {self.consistency_shift}"
            )


AUTO = "auto"


@dataclass
class SweepConfig:
    """How a sweep's jobs share this machine (the default launcher, hydra/launcher=cores):
    `jobs` at once, each with `threads_per_job` threads (TensorFlow's pools, XLA's and the
    BLAS/OpenMP pool). "auto": the rule of `sweep_layout`. A single run keeps every core."""

    jobs: str = AUTO  # auto | a number of jobs at once
    threads_per_job: str = AUTO  # auto | a number of threads for each job
    # What the study's sweep took where it was measured, in words (a study in experiments/
    # states it; a dry run prints it); "" where nobody measured it.
    estimate: str = ""

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self) if f.name != "estimate"):  # the numbers
            value = str(getattr(self, name))
            if value != AUTO and not (value.isdigit() and int(value) > 0):
                raise DsbenchError(
                    f"sweep.{name}={value!r} is invalid: use auto or a whole number >= 1"
                )


def config_groups() -> list[str]:
    """The config groups a run composes from (conf/<group>/), Hydra's own left out."""
    from importlib.resources import files

    root = files(CONFIG_PATH.removeprefix("pkg://"))
    return sorted(
        d.name for d in root.iterdir() if d.is_dir() and d.name not in ("hydra", "__pycache__")
    )


def group_options(group: str) -> list[str]:
    """The options of a config group: its conf/<group>/*.yaml files."""
    from importlib.resources import files

    root = files(CONFIG_PATH.removeprefix("pkg://")) / group
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def backbone_names() -> list[str]:
    """The backbones in conf/model/ (a user's --config-dir may add more)."""
    return group_options("model")


def _backbone_yaml(name: str) -> DictConfig:
    from importlib.resources import files

    if name not in backbone_names():
        raise unknown("model", name, backbone_names())
    text = (files(CONFIG_PATH.removeprefix("pkg://")) / "model" / f"{name}.yaml").read_text()
    return OmegaConf.create(text)


def backbone_head(name: str) -> str:
    """The head model=<name> comes with: its YAML's `override /head@_global_.head: ...`, else
    the default head."""
    for entry in _backbone_yaml(name).get("defaults", []):
        for key, value in entry.items() if isinstance(entry, DictConfig) else ():
            if key.split("@")[0].removeprefix("override ").strip("/") == "head":
                return str(value)
    return HeadConfig.name


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The backbone conf/model/<name>.yaml as a checked ModelConfig, fields replaced by
    `overrides` (model_config("springenberg_c", width=0.25)): the Python side of model=<name>."""
    return replace(copy.deepcopy(_backbone(name)), **overrides)


@functools.cache
def _backbone(name: str) -> ModelConfig:
    node = _backbone_yaml(name)
    node.pop("defaults", None)  # the head a backbone chooses is the head group's business
    return _checked(ModelConfig, node)


def sweep_layout(jobs: str, threads: str, cores: int, accelerator: bool) -> tuple[int, int]:
    """(jobs at once, threads each) for a sweep on a machine with `cores` usable cores.

    The rule, measured on a 2-core machine (docs/sweeps.md, results/bench/sweep-*.md): on a
    CPU, one thread per job and as many jobs as cores; small convnets use one core poorly
    with more threads, and jobs side by side keep every core busy. With an accelerator (the
    JAX backend on a GPU) one job at a time, with every core. A number the user sets wins;
    the other one is chosen so that jobs × threads = cores.
    """
    if accelerator:
        n = 1 if jobs == AUTO else int(jobs)
        t = cores if threads == AUTO else int(threads)
        return n, t
    if jobs == AUTO and threads == AUTO:
        return cores, 1
    if jobs == AUTO:
        return max(1, cores // int(threads)), int(threads)
    if threads == AUTO:
        return int(jobs), max(1, cores // int(jobs))
    return int(jobs), int(threads)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: taskset, a container's cpuset)."""
    return len(os.sched_getaffinity(0))


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is there for the JAX backend, without importing a framework."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = "/proc/driver/nvidia/gpus"
    return os.path.isdir(gpus) and bool(os.listdir(gpus))


def launcher_jobs(jobs: str, threads: str, backend: str) -> int:
    """`hydra.launcher.n_jobs` of the default launcher (conf/hydra/launcher/cores.yaml)."""
    accelerator = backend == "jax" and gpu_visible()
    return sweep_layout(str(jobs), str(threads), usable_cores(), accelerator)[0]


@dataclass
class TrainConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    # The default backbone's YAML (base.yaml's default), so TrainConfig() plans a model too.
    model: ModelConfig = field(default_factory=lambda: model_config("convnet"))
    downsample: DownsampleConfig = field(default_factory=DownsampleConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    dry_run: bool = False  # check config, data geometry and model, train nothing (sweep sizes)

    def __post_init__(self) -> None:
        if self.trainer.early_stopping_patience and self.dataset.val_fraction == 0:
            raise DsbenchError(
                "trainer.early_stopping_patience watches val_loss: it needs a validation set "
                "(dataset.val_fraction > 0)"
            )


@dataclass
class DescribeConfig(TrainConfig):
    output: str = "text"  # text | json

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("output", self.output, ("text", "json"))


@dataclass
class AnalyzeConfig(TrainConfig):
    """`dsbench analyze`: a training run's composition names the study (`experiments=<name>`
    [dataset=...], or `tracking.experiment=<name>`; bare: where ad-hoc runs go), and these
    keys say which of its runs to read and where the tables go."""

    filter: str = ""  # extra MLflow filter, e.g. "tags.head = 'flatten'"
    # "": every run; latest: the newest sweep's jobs; or a sweep's parent run id. (Not
    # `sweep`: that is the training layout's key, which a study's config may set.)
    sweep_run: str = ""
    out_dir: str = ""  # "": results/<experiment>; comparison.{md,csv,tex,html}, plots/, dashboard
    log_to_sweep: bool = True  # also log them under analysis/ to the sweep's parent run

    @property
    def out(self) -> str:
        return self.out_dir or f"results/{self.tracking.experiment}"


def own_keys(argv: list[str], keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """A command's own `key=value` arguments (and bare words, for `key_values` to refuse),
    and the rest: the training overrides that name its study and store."""
    keys = set(keys)
    own = [a for a in argv if a.partition("=")[0] in keys or "=" not in a]
    return own, [a for a in argv if a not in own]


def key_values(argv: list[str], keys: dict[str, str | None], command: str) -> dict[str, Any]:
    """The `key=value` arguments of a command that is no Hydra app (`dsbench data`, `ui`,
    `springenberg2015`): the one argument style of every command. A bare word or an unknown
    key: DsbenchError with the closest keys."""
    found: dict[str, Any] = dict(keys)
    for arg in argv:
        key, eq, value = arg.partition("=")
        if not eq or key not in keys:
            what = f"unknown key {key!r}" if eq else f"{arg!r} is not key=value"
            raise DsbenchError(
                f"{what}{did_you_mean(key, keys)}; dsbench {command} takes: {', '.join(keys)}"
            )
        found[key] = value
    return found


def compose_train(overrides: list[str]) -> TrainConfig:
    """The training config that `dsbench train <overrides>` composes: how analysis and the
    study commands find a study's experiment and store by the names it was trained with."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register()
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app
        return validate(compose("train", overrides=overrides))
    with initialize_config_module(CONFIG_PATH.removeprefix("pkg://"), version_base="1.3"):
        return validate(compose("train", overrides=overrides))


def register() -> None:
    """Make the schemas known to Hydra (conf/*.yaml name them in their defaults lists)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="describe_schema", node=DescribeConfig)
    cs.store(name="analyze_schema", node=AnalyzeConfig)
    OmegaConf.register_new_resolver("dsbench_jobs", launcher_jobs, replace=True)


def validate(cfg: DictConfig, schema: type = TrainConfig) -> Any:
    """The composed config as a checked dataclass instance (runs every __post_init__)."""
    return _checked(schema, cfg)


def _checked(schema: type, *nodes: Any) -> Any:
    """`nodes` merged onto the schema, as a dataclass instance; errors as one DsbenchError."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), *nodes)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        # OmegaConf wraps errors raised in __post_init__; surface ours unchanged.
        cause = e.__cause__ or e.__context__
        if isinstance(cause, DsbenchError):
            raise cause from None
        raise DsbenchError(str(e).splitlines()[0]) from None


# Keys that say where and how a run is recorded, not what it computes: runs that differ only
# here are the same experiment (the same data is read from another folder, etc.).
RECORD_ONLY_KEYS = (
    "trainer.verbose",
    "model.description",
    "dataset.archive_dir",
    "dataset.url",
    "dataset.tfds_data_dir",
    "dry_run",
)
RECORD_ONLY_PREFIXES = ("tracking.", "sweep.")  # where it is recorded; how it shares a machine


def record_only(key: str) -> bool:
    """Whether a dotted key (`trainer.verbose`) only says where or how a run is recorded."""
    return key in RECORD_ONLY_KEYS or key.startswith(RECORD_ONLY_PREFIXES)


def config_hash(cfg: TrainConfig) -> str:
    """16 hex digits identifying what a run computes: every key but RECORD_ONLY ones.

    Two jobs with the same hash train the same model on the same data the same way, so a
    FINISHED run with this hash lets a resumed sweep skip the job.
    """
    return short_hash({k: v for k, v in flatten(cfg).items() if not record_only(k)})


def short_hash(value: Any) -> str:
    """16 hex digits of the SHA-256 of `value` as canonical JSON (sorted keys)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flatten(cfg: Any) -> dict[str, Any]:
    """Dotted keys → values, for MLflow params (`trainer.lr`: 0.001)."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)
    out: dict[str, Any] = {}

    def walk(d: Any, prefix: str) -> None:
        if isinstance(d, dict):
            for k, v in d.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix.rstrip(".")] = d

    walk(OmegaConf.to_container(node, resolve=True), "")
    return out
