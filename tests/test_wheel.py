"""A regular install works: the wheel, installed without an editable link into a folder of
its own, finds its configs by package and runs from any folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP = (sys.executable, "-m", "pip")
SOURCES = ("pyproject.toml", "README.md", "src", "conf", "experiments")  # what the build reads


def clean_copy(folder: Path) -> Path:
    """The files the build reads, copied as a fresh clone has them: setuptools builds in the
    source tree, and the checkout's leftover build/lib would add files moved away since."""
    leftovers = shutil.ignore_patterns("*.egg-info", "__pycache__")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, symlinks=True, ignore=leftovers)
        else:
            shutil.copy2(source, folder / name)
    return folder


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dsbench built as a wheel and installed (no deps: the venv has them) into a folder."""
    wheels = tmp_path_factory.mktemp("wheel")
    source = clean_copy(tmp_path_factory.mktemp("source"))
    build = subprocess.run(
        [*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("dsbench-*.whl")
    target = tmp_path_factory.mktemp("site")
    install = subprocess.run(
        [*PIP, "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return target


def run(target: Path, cwd: Path, *command: str) -> subprocess.CompletedProcess:
    """A command with the installed copy first on the path, from `cwd`, away from the source."""
    env = {**os.environ, "PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_wheel_carries_every_config(installed: Path) -> None:
    conf = installed / "dsbench" / "conf"
    for source in [*(ROOT / "conf").rglob("*.yaml"), *(ROOT / "experiments").glob("*.yaml")]:
        relative = source.relative_to(ROOT)
        packaged = (
            conf
            / ("experiments" if relative.parts[0] == "experiments" else "")
            / (relative.relative_to(relative.parts[0]))
        )
        assert packaged.is_file(), relative
    assert not (installed / "dsbench" / "conf" / "experiments").is_symlink()


def test_installed_copy_is_the_one_that_runs(installed: Path, tmp_path: Path) -> None:
    out = run(installed, tmp_path, sys.executable, "-c", "import dsbench; print(dsbench.__file__)")
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(installed)


def test_describe_from_another_folder(installed: Path, tmp_path: Path) -> None:
    out = run(installed, tmp_path, sys.executable, "-m", "dsbench.describe", "output=json")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["params"] == 34_826
    script = run(installed, tmp_path, str(installed / "bin" / "dsbench-describe"))
    assert script.returncode == 0, script.stderr[-3000:]
    assert "params 34,826" in script.stdout
    assert list(tmp_path.iterdir()) == []  # describing writes nothing


def test_a_sweep_from_another_folder_finds_its_configs(installed: Path, tmp_path: Path) -> None:
    """The installed package's configs compose a study's sweep from any folder; a dry run
    writes nothing there (not even Hydra's outputs/)."""
    out = run(
        installed,
        tmp_path,
        sys.executable,
        "-m",
        "dsbench.train",
        "-m",
        "experiments=mnist_shift",
        "downsample=max,blur",
        "trainer.seed=0",
        "dry_run=true",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("dry run: mnist/convnet/") == 2
    assert "2 jobs checked (dry run): nothing trained or written; the study's time where it " in (
        out.stdout
    )
    assert "was measured: about 13 min for 9 of the 15 jobs on 2 CPU cores" in out.stdout
    assert list(tmp_path.iterdir()) == []


def test_wheel_file_lists_the_config_groups(installed: Path) -> None:
    """Each folder of conf/ is a package of the wheel (pyproject lists them one by one)."""
    wheel = next(installed.glob("dsbench-*.dist-info"))
    record = (wheel / "RECORD").read_text()
    groups = {p.name for p in (ROOT / "conf").iterdir() if p.is_dir()}
    assert groups and all(f"dsbench/conf/{g}/" in record for g in groups)


def test_the_wheel_holds_no_test_infrastructure(installed: Path) -> None:
    """The checkout's devtools/ (Selenium UI driver, PostgreSQL starter, analysis-scale bench)
    stays out of the install, and nothing installed drives a browser."""
    wheel = next(installed.glob("dsbench-*.dist-info"))
    files = [line.split(",")[0] for line in (wheel / "RECORD").read_text().splitlines()]
    assert "dsbench/train.py" in files  # the record lists the package's modules
    names = {Path(f).name for f in files}
    assert not [f for f in files if f.startswith("devtools/")]
    assert not names & {"mlflow_ui.py", "postgres.py", "analysis_scale.py", "services.py"}
    assert not (installed / "devtools").exists()
    selenium = [
        str(p.relative_to(installed))
        for p in (installed / "dsbench").rglob("*.py")
        if "selenium" in p.read_text()
    ]
    assert selenium == []
