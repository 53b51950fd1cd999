"""Where a number came from: the code's commit and the "produced by … on … with …" line.

Every table, bench report and sweep parent run says which command made it, on which
machine, when, and with which code and library versions; this module is the one place
that line is built.
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from dsbench.contract import DIRTY

# A source checkout's root (src/dsbench/provenance.py → ../..); in an installed wheel it is
# site-packages' parent, which is no git checkout, and the commit is "unknown".
ROOT = Path(__file__).resolve().parents[2]
CODE = ("src", "conf", "experiments", "pyproject.toml", "requirements.lock")  # what makes numbers


def git_commit() -> str:
    """HEAD's commit, with "-dirty" when the code or configs have uncommitted changes.

    Only what produces numbers counts: results/ and docs regenerated from a clean checkout
    leave the commit clean. "unknown" outside a git checkout (an installed wheel).
    """

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)

    if not (ROOT / ".git").exists():
        return "unknown"
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git("diff", "--quiet", "HEAD", "--", *CODE).returncode == 1
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + (DIRTY if dirty else "")


def short_commit(commit: str | None = None) -> str:
    """abc123…-dirty → abc123456789-dirty: short, but keeping the dirty marker."""
    sha, dirty, _ = (commit or git_commit()).partition(DIRTY)
    return sha[:12] + dirty


NAMES = {"tensorflow": "TensorFlow", "torch": "PyTorch", "jax": "JAX", "keras": "Keras"}
NAMES |= {"mlflow": "MLflow"}


def versions(*modules: str) -> str:
    """`Name x.y.z` for each importable module, comma-separated (missing ones left out).

    By module, not distribution: tensorflow is installed as tensorflow-cpu."""
    found = []
    for name in modules:
        try:
            found.append(f"{NAMES.get(name, name)} {importlib.import_module(name).__version__}")
        except (ImportError, AttributeError):
            continue
    return ", ".join(found)


def machine() -> str:
    """host (architecture, N CPUs)."""
    return f"{platform.node() or 'unknown host'} ({platform.machine()}, {os.cpu_count()} CPUs)"


def produced_by(command: str, *modules: str) -> str:
    """The provenance line: command, machine, UTC time, dsbench commit and library versions."""
    libs = versions(*modules)
    return (
        f"Produced by {command} on {machine()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"dsbench {short_commit()}" + (f", {libs}" if libs else "") + "."
    )
