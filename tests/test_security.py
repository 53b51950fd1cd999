"""Nothing downloaded or logged is unpickled or evaluated: no module of the package can."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
UNSAFE_CALLS = {"eval", "exec", "load"}  # builtins, and yaml.load / np.load(allow_pickle)


def test_no_module_unpickles_or_evaluates() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names]
                names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                found += [f"{path}: import {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name in UNSAFE_CALLS:
                    found.append(f"{path}:{node.lineno}: {ast.unparse(func)}(...)")
                for kw in node.keywords:
                    if kw.arg == "allow_pickle" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False
                    ):
                        found.append(f"{path}:{node.lineno}: allow_pickle")
    assert found == []
