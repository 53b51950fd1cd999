"""The config: each default in one place (the schemas of `dsbench.config`), the options of
conf/ holding only what they change, every key documented, the hash that names a job, and
the values the schemas refuse, each with one line that says what is allowed."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from dsbench import config
from dsbench.config import DatasetConfig, DownsampleConfig
from dsbench.errors import DsbenchError

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# The groups whose options are one schema's values (experiments/ is the `experiments` group:
# whole studies, `@package _global_`).
GROUPS = [f.name for f in dataclasses.fields(config.TrainConfig) if (CONF / f.name).is_dir()]
# Keys of a config file that are not the schema's: Hydra's own.
NOT_SCHEMA = {"defaults", "hydra"}


def schemas() -> dict[str, type]:
    """conf/<name>.yaml → the schema its keys belong to."""
    from dsbench.tools.bench import BenchConfig
    from dsbench.tools.gpu_check import GpuCheckConfig
    from dsbench.tools.strategy_speed import StrategySpeedConfig
    from dsbench.tools.sweep_speed import SweepSpeedConfig

    return {
        "analyze": config.AnalyzeConfig,
        "base": config.TrainConfig,
        "bench": BenchConfig,
        "describe": config.DescribeConfig,
        "gpu_check": GpuCheckConfig,
        "strategy_speed": StrategySpeedConfig,
        "sweep_speed": SweepSpeedConfig,
        "train": config.TrainConfig,
    }


def group_schema(group: str) -> type:
    """The schema of a config group: the type of TrainConfig's field of that name."""
    return typing.get_type_hints(config.TrainConfig)[group]


def raw(node: Any) -> dict[str, Any]:
    """A config as written: interpolations unresolved, Hydra's keys left out."""
    values = OmegaConf.to_container(node, resolve=False)
    assert isinstance(values, dict)
    return {k: v for k, v in values.items() if k not in NOT_SCHEMA}


def option_files() -> Iterator[tuple[str, Path]]:
    for group in GROUPS:
        for path in sorted((CONF / group).glob("*.yaml")):
            yield group, path


def baseline(group: str, path: Path) -> dict[str, Any]:
    """What an option starts from: its group's schema, then the options of the same group
    that its defaults list extends (trainer/springenberg2015 extends trainer/default)."""
    values = raw(OmegaConf.structured(group_schema(group)))
    for entry in OmegaConf.load(path).get("defaults", []):
        if isinstance(entry, str) and entry != "_self_":
            parent = CONF / group / f"{entry}.yaml"
            values |= raw(OmegaConf.merge(values, OmegaConf.load(parent)))
    return values


# --- each default once ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "path"), list(option_files()), ids=[f"{g}/{p.stem}" for g, p in option_files()]
)
def test_an_option_holds_only_what_it_changes(group: str, path: Path) -> None:
    """Every key an option sets differs from the default it would otherwise get (the schema's,
    or the option's it extends); `name` names the option."""
    start = baseline(group, path)
    written = raw(OmegaConf.load(path))
    assert set(written) <= set(start), f"keys the schema lacks: {set(written) - set(start)}"
    same = sorted(k for k, v in written.items() if k != "name" and v == start[k])
    assert same == [], f"{path.relative_to(CONF.parent)} repeats the default of {same}"
    if "name" in start:
        assert written.get("name") == path.stem  # dataset=mnist is the dataset named mnist


@pytest.mark.parametrize("name", sorted(p.stem for p in CONF.glob("*.yaml")))
def test_a_command_config_holds_only_what_it_changes(name: str) -> None:
    """conf/<command>.yaml composes its groups and Hydra's settings; its keys' defaults are
    its schema's, not written again."""
    schema = schemas()[name]  # a new command config needs its schema here
    written = raw(OmegaConf.load(CONF / f"{name}.yaml"))
    start = raw(OmegaConf.structured(schema))
    same = sorted(k for k, v in written.items() if start.get(k, object()) == v)
    assert same == [], f"conf/{name}.yaml repeats the default of {same}"
    assert set(written) <= set(start)


def test_the_options_the_checker_reads_are_there() -> None:
    folders = {p.name for p in CONF.iterdir() if p.is_dir() and not p.name.startswith("__")}
    # experiments: studies, not a schema's group; local: the user's; hydra: Hydra's own groups
    assert folders - {"experiments", "local", "hydra"} == set(GROUPS)
    found = {f"{g}/{p.stem}" for g, p in option_files()}
    assert {"dataset/mnist", "trainer/springenberg2015", "downsample/blur"} <= found
    assert baseline("trainer", CONF / "trainer" / "springenberg2015.yaml")["epochs"] == 15


@pytest.mark.parametrize("name", ["blur", "lp", "mixed", "s2d"])
def test_strategy_options_match_the_schema(name: str) -> None:
    loaded = OmegaConf.load(CONF / "downsample" / f"{name}.yaml")
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DownsampleConfig), loaded))
    assert cfg == DownsampleConfig(name)  # the files hold the defaults


@pytest.fixture
def composer() -> Iterator[None]:
    if (CONF / "local" / "default.yaml").exists():
        pytest.skip("conf/local/default.yaml (machine-specific settings) changes the defaults")
    config.register()
    with initialize_config_module(config.CONFIG_PATH.removeprefix("pkg://"), version_base="1.3"):
        yield


def test_the_default_options_are_the_schemas_defaults(composer: None) -> None:
    """A run with no overrides is TrainConfig's defaults: the default options change nothing."""
    composed = config.validate(compose("train"))
    schema = config.validate(OmegaConf.structured(config.TrainConfig))
    assert composed == schema


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_archive_dir_is_dsbench_data_then_data(
    composer: None, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DSBENCH_DATA", raising=False)
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    dataset = config.validate(compose("train", overrides=[f"dataset={name}"])).dataset
    assert (dataset.archive_dir, dataset.tfds_data_dir) == (f"data/{name}", "~/tensorflow_datasets")
    monkeypatch.setenv("DSBENCH_DATA", "/srv/data")
    monkeypatch.setenv("TFDS_DATA_DIR", "/srv/tfds")
    dataset = config.validate(compose("train", overrides=[f"dataset={name}"])).dataset
    assert (dataset.archive_dir, dataset.tfds_data_dir) == (f"/srv/data/{name}", "/srv/tfds")


# --- every key documented ------------------------------------------------------------------


def keys(schema: type, prefix: str = "") -> Iterator[str]:
    """The dotted keys of a schema (`trainer.lr`)."""
    for f in dataclasses.fields(schema):
        if isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            yield from keys(f.default_factory, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def test_every_key_is_documented() -> None:
    """docs/configuration.md names every key of a run (its `<group>.*` rows list their keys);
    the strategies' own options are in docs/models.md; `<group>.name` is the group's option."""
    page = (ROOT / "docs" / "configuration.md").read_text()
    models = (ROOT / "docs" / "models.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)\.\*` \| (.*)$", page, re.MULTILINE))
    missing = []
    for key in keys(config.TrainConfig):
        group, _, field = key.rpartition(".")
        if field == "name" and group in GROUPS:
            continue
        if f"`{key}`" in page or f"`{field}`" in rows.get(group, ""):
            continue
        if group == "downsample" and f"`{key}`" in models:
            continue
        missing.append(key)
    assert missing == []


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        ("trainer.optimizer", config.OPTIMIZERS),
        ("trainer.schedule", config.SCHEDULES),
        ("trainer.precision", config.PRECISIONS),
        ("trainer.backend", config.BACKENDS),
        ("trainer.loop", config.LOOPS),
    ],
)
def test_every_allowed_value_is_documented(key: str, allowed: tuple[str, ...]) -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith(f"| `{key}`"))
    assert [v for v in allowed if f"`{v}`" not in row] == []


# --- the hash that names a job --------------------------------------------------------------


def test_config_hash_ignores_where_a_run_is_recorded() -> None:
    base = config.TrainConfig()
    same = config.TrainConfig()
    same.tracking.uri, same.tracking.experiment = "sqlite:////elsewhere.db", "other"
    same.trainer.verbose, same.dataset.archive_dir = 0, "/mnt/mnist"
    assert config.config_hash(same) == config.config_hash(base)
    for change in ("trainer.lr", "trainer.seed", "downsample.name", "dataset.train_subset"):
        other = config.TrainConfig()
        group, key = change.split(".")
        value = getattr(getattr(other, group), key)
        setattr(getattr(other, group), key, "avg" if isinstance(value, str) else (value or 0) + 1)
        assert config.config_hash(other) != config.config_hash(base), change


# --- values the schemas refuse ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"val_fraction": 1.0}, "dataset.val_fraction=1.0 is invalid"),
        ({"val_fraction": -0.1}, "dataset.val_fraction=-0.1 is invalid"),
        ({"val_fraction": True}, "dataset.val_fraction=True is invalid"),
        ({"split_seed": -1}, "dataset.split_seed=-1 is invalid"),
        ({"train_subset": 0}, "dataset.train_subset=0 is invalid: use a positive integer"),
        ({"train_subset": 2.5}, "dataset.train_subset=2.5 is invalid"),
        ({"test_subset": -3}, "dataset.test_subset=-3 is invalid"),
        ({"test_subset": True}, "dataset.test_subset=True is invalid"),
        ({"verify_md5": "no"}, "dataset.verify_md5='no' is invalid: use true or false"),
        ({"url": "ftp://x/"}, "dataset.url='ftp://x/' is not an http:// or https:// URL"),
        ({"preprocess": "pca"}, "unknown dataset.preprocess 'pca'; choose one of: none, gcn_zca"),
    ],
)
def test_bad_dataset_values(tmp_path: Path, values: dict, expected: str) -> None:
    """Checked when the config is made, before any loading (tmp_path holds no archives)."""
    with pytest.raises(DsbenchError, match=re.escape(expected)):
        DatasetConfig("mnist", "archive", str(tmp_path), **values)


def test_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(DsbenchError) as err:
        DatasetConfig("mnist", "web", str(tmp_path))
    assert "unknown dataset.source 'web'" in str(err.value)
    assert "tfds, archive" in str(err.value)


def test_tfds_needs_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DsbenchError, match="needs a TFDS data dir"):
        DatasetConfig("mnist", "tfds", str(tmp_path), tfds_data_dir=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"p": 0.5}, "downsample.p must be a finite number >= 1"),
        ({"p": math.inf}, "downsample.p must be a finite number >= 1"),
        ({"p": math.nan}, "downsample.p must be a finite number >= 1"),
        ({"alpha": 1.5}, r"downsample.alpha must be in \[0, 1\], got 1.5"),
        ({"alpha": -0.1}, r"downsample.alpha must be in \[0, 1\]"),
        ({"alpha": 1.0, "learn_alpha": True}, r"in \(0, 1\) when downsample.learn_alpha"),
        ({"filter_size": 1}, "downsample.filter_size must be an integer in 2..5, got 1"),
        ({"filter_size": 6}, "downsample.filter_size must be an integer in 2..5, got 6"),
    ],
)
def test_bad_downsample_knobs(fields: dict, message: str) -> None:
    with pytest.raises(DsbenchError, match=message):
        DownsampleConfig("mixed", **fields)


def test_downsample_knobs_accept_the_edges() -> None:
    DownsampleConfig("lp", p=1.0)
    DownsampleConfig("mixed", alpha=0.0)
    DownsampleConfig("mixed", alpha=1.0)
    DownsampleConfig("blur", filter_size=2)
    DownsampleConfig("blur", filter_size=5)
