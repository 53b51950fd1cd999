"""The lock is a real lock: everything installed in the environment is pinned, at the version
installed, and PyTorch is its CPU build, whose requirements are pinned too (it is installed
with --no-deps from requirements-torch.lock)."""

from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pins(path: Path) -> dict[str, str]:
    """name → version of every `name==version` line (markers that do not apply dropped)."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            found[canonicalize_name(requirement.name)] = spec.version
    return found


LOCK = pins(ROOT / "requirements.lock")
TORCH_LOCK = pins(ROOT / "requirements-torch.lock")


def test_every_installed_distribution_is_pinned_at_its_version() -> None:
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in md.distributions()}
    installed.pop("dsbench")  # the project itself (editable)
    locked = {**LOCK, **TORCH_LOCK}
    assert {n: v for n, v in installed.items() if locked.get(n) != v} == {}
    assert sorted(set(locked) - set(installed)) == []


def test_torch_is_the_cpu_build_and_its_requirements_are_pinned() -> None:
    assert re.fullmatch(r"2\.13\.0(\+cpu)?", TORCH_LOCK["torch"])
    assert "download.pytorch.org/whl/cpu" in (ROOT / "requirements-torch.lock").read_text()
    needed = [Requirement(r) for r in md.requires("torch") or []]
    needed = [r for r in needed if r.marker is None or r.marker.evaluate({"extra": ""})]
    names = {canonicalize_name(r.name) for r in needed}
    assert not {n for n in names if n.startswith(("nvidia", "cuda", "triton"))}
    for r in needed:
        name = canonicalize_name(r.name)
        assert name in LOCK, f"torch needs {r}, which requirements.lock does not pin"
        assert r.specifier.contains(LOCK[name]), (str(r), LOCK[name])
