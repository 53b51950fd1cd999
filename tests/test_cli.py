"""The one command, `dsbench <command> [key=value ...]`: its help, its errors, and every
command that README and docs show, checked as written (composed and checked as its command
would check it, without training)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from dsbench import cli, config
from dsbench.__main__ import COMMANDS, main
from dsbench.data.registry import DATASETS
from dsbench.training.job import make_job

ROOT = Path(__file__).resolve().parents[1]


def test_python_m_dsbench_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dsbench", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: dsbench <command> [key=value ...]")
    for name, command in COMMANDS.items():
        assert f"  {name} " in out.stdout and command.summary in out.stdout


def test_the_dsbench_script_runs_the_same_command() -> None:
    script = Path(sys.executable).with_name("dsbench")  # installed by make install
    out = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "commands:" in out.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_has_its_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    main([name, "--help"])
    text = capsys.readouterr().out
    assert text.startswith(f"dsbench {name}: {COMMANDS[name].summary}")
    assert f"dsbench {name}" in text.split("\n", 2)[2]  # its usage, from its module
    if name in ("train", "describe"):
        assert "  downsample: aps, avg, blur," in text and "  model: airbench, convnet," in text
    if COMMANDS[name].hydra:
        assert f"every key and its default: dsbench {name} --cfg job" in text


def test_an_unknown_command_says_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["trian", "downsample=avg"])
    assert e.value.code == cli.EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [
        "dsbench: error: unknown command 'trian' (did you mean train?); choose one of: "
        + ", ".join(COMMANDS)
    ]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["mirorr=http://x"], "unknown key 'mirorr' (did you mean mirror?); dsbench data takes:"),
        (["mnist"], "'mnist' is not key=value; dsbench data takes: datasets, mirror"),
    ],
)
def test_key_value_commands_refuse_what_they_do_not_take(
    args: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main(["data", *args])
    assert e.value.code == cli.EXIT_BAD_INPUT
    (err,) = capsys.readouterr().err.splitlines()
    assert err.startswith(f"dsbench: error: {line}")


# ---- every command README and docs show, checked as written -------------------------------

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)


def documented_commands() -> list[tuple[str, str]]:
    """(file, command line) for each `dsbench …` and `make …` line of a shell block."""
    found = []
    for path in DOCS:
        for block in FENCE.findall(path.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip()
                if line.startswith(("dsbench ", ".venv/bin/dsbench ", "make ")):
                    found.append((path.name, line))
    return found


def words(line: str) -> list[str]:
    """The command's words, without its comment and what it pipes into."""
    tokens = shlex.split(line, comments=True)
    return tokens[: tokens.index("|")] if "|" in tokens else tokens


def dsbench_argv(line: str) -> list[str] | None:
    """The `dsbench` arguments a documented line runs (a make target: what `make -n` says it
    runs), or None for a line that runs no dsbench command (make install, make test…)."""
    tokens = words(line)
    if tokens[0] != "make":
        return tokens[1:]
    out = subprocess.run(
        ["make", "-n", "-s", *tokens[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, f"{line}: {out.stderr}"
    for shown in out.stdout.splitlines():
        if " -m dsbench " in shown:
            return shlex.split(shown.split(" -m dsbench ", 1)[1])
    return None


def check(argv: list[str]) -> None:
    """What the command checks before it does anything, done here: its config composed
    (every job of a sweep) and checked, its own keys parsed."""
    name, args = argv[0], [a for a in argv[1:] if a != "-m"]
    assert name in COMMANDS
    if "--config-dir" in args:  # a user's folder (docs/models.md): tests/test_backbones.py
        return
    own_keys = {"springenberg2015": ("out", "seeds"), "ui": ("host", "port", "serve")}
    if name == "data":
        names = config.key_values(args, {"datasets": "", "mirror": None}, "data")["datasets"]
        assert set(filter(None, names.split(","))) <= set(DATASETS)
        return
    if name in own_keys:
        args = [a for a in args if a.partition("=")[0] not in own_keys[name]]
        config.compose_train(args)
        return
    app = {"train": "train", "describe": "describe", "analyze": "analyze", "bench": "bench"}
    import dsbench.tools.bench

    config.register()
    with initialize_config_module("dsbench.conf", version_base="1.3"):
        for job in expand(args):
            cfg = compose(app[name], overrides=job)
            if name in ("train", "describe"):
                make_job(cfg, store=False)
            elif name == "analyze":
                checked = config.validate(cfg, config.AnalyzeConfig)
                if checked.filter:
                    from mlflow.utils.search_utils import SearchUtils

                    SearchUtils.parse_search_filter(checked.filter)
            else:
                config.validate(cfg, dsbench.tools.bench.BenchConfig)


def expand(args: list[str]) -> list[list[str]]:
    """A sweep's jobs (a,b,c values), as Hydra's basic sweeper expands them."""
    parsed = OverridesParser.create().parse_overrides(args)
    (jobs,) = BasicSweeper.split_arguments(parsed, None)
    return jobs


@pytest.mark.parametrize(("doc", "line"), documented_commands())
def test_every_documented_command_runs_as_written(doc: str, line: str) -> None:
    argv = dsbench_argv(line)
    if argv is not None:
        check(argv)


def test_the_documented_commands_are_found() -> None:
    lines = [line for _, line in documented_commands()]
    assert len(lines) > 40
    assert any(line.startswith("dsbench analyze experiments=") for line in lines)
    assert any(line.startswith("dsbench springenberg2015 ") for line in lines)


# ---- one name for a study, in training and analysis -------------------------------------------


def test_analysis_names_a_study_as_training_did() -> None:
    """`experiments=<study>` (with its dataset) gives analysis the experiment that training
    wrote; bare, the experiment of ad-hoc runs."""
    config.register()
    with initialize_config_module("dsbench.conf", version_base="1.3"):
        for overrides, experiment in [
            (["experiments=mnist_downsampling"], "mnist-downsampling"),
            (
                ["experiments=mnist_downsampling", "dataset=fashion_mnist"],
                "fashion_mnist-downsampling",
            ),
            ([], "dsbench"),
        ]:
            trained = config.validate(compose("train", overrides=overrides))
            analyzed = config.validate(
                compose("analyze", overrides=overrides), config.AnalyzeConfig
            )
            assert trained.tracking.experiment == analyzed.tracking.experiment == experiment
            assert analyzed.out == f"results/{experiment}"


def test_the_old_analysis_key_gets_the_study_group(capsys: pytest.CaptureFixture[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dsbench", "analyze", "experiment=mnist-downsampling"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()
    assert line.startswith("dsbench: error: unknown key 'experiment' (did you mean experiments?)")
    assert len(line) <= 300


def test_a_folder_the_source_does_not_need_is_reported_not_created(tmp_path: Path) -> None:
    """TFDS has MNIST prepared (in a folder of this test's own): a given archive_dir that does
    not exist is named once, not created, and the dry run writes nothing."""
    prepared = tmp_path / "tfds" / "mnist" / "3.0.1"
    prepared.mkdir(parents=True)
    (prepared / "dataset_info.json").write_text("{}")
    out = subprocess.run(
        [
            sys.executable,
            *("-m", "dsbench", "train", "dry_run=true"),
            f"dataset.tfds_data_dir={tmp_path / 'tfds'}",
            f"dataset.archive_dir={tmp_path / 'nope' / 'mnist'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("does not exist") == 1
    assert f"note: dataset.archive_dir={tmp_path / 'nope' / 'mnist'} does not exist" in out.stdout
    assert not (tmp_path / "nope").exists() and not (tmp_path / "outputs").exists()
