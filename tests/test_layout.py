"""The code's shape: the stages import each other in one direction only, model/ is pure
Python, analysis/ needs no TensorFlow, and the training entry point carries no dev tools.

The import graph is read from the source (ast), every import counted, those inside
functions too: a lazy import still ties two modules together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "dsbench"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> Iterator[str]:
    """Every module name an import statement in the file names (absolute imports only)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            # `from dsbench.x import y` imports the module dsbench.x.y when there is one.
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def graph() -> dict[str, set[str]]:
    """dsbench module → the dsbench modules it imports."""
    return {
        name: {m for m in imports(path) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one node (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def stage(module: str) -> str:
    """dsbench.model.plan → dsbench.model; dsbench.train → dsbench.train."""
    return ".".join(module.split(".")[:2])


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_the_imports() -> None:
    edges = graph()
    assert "dsbench.training.run" in edges["dsbench.train"]  # from dsbench.training.run import
    assert "dsbench.build.keras_model" in edges["dsbench.training.run"]  # inside a function
    assert "dsbench.model.plan" in edges["dsbench.tools.docs"]


def test_no_import_cycle_between_modules() -> None:
    assert cycles(graph()) == []


def test_no_import_cycle_between_stages() -> None:
    """Stages (the subpackages, and the top-level modules) import each other one way."""
    stages: dict[str, set[str]] = {}
    for module, targets in graph().items():
        stages.setdefault(stage(module), set()).update(
            stage(t) for t in targets if stage(t) != stage(module)
        )
    assert cycles(stages) == []


FRAMEWORKS = {"keras", "tensorflow", "tensorflow_datasets", "jax", "jaxlib", "torch", "mlflow"}
FORBIDDEN = {  # stage → the top-level packages none of its modules may import
    "dsbench.model": FRAMEWORKS,
    "dsbench.analysis": {"keras", "tensorflow", "jax", "torch"},
    "dsbench.studies": FRAMEWORKS,
    "dsbench.data": {"keras", "jax", "torch", "mlflow"},  # numpy, and TFDS on its own path
    "dsbench.tracking": {"keras", "tensorflow", "jax", "torch"},
    "dsbench.config": FRAMEWORKS,
}


@pytest.mark.parametrize("where", list(FORBIDDEN))
def test_no_forbidden_import(where: str) -> None:
    bad = sorted(
        f"{name} imports {m}"
        for name, path in MODULES.items()
        if stage(name) == where
        for m in imports(path)
        if m.split(".")[0] in FORBIDDEN[where]
    )
    assert bad == []


def test_the_forbidden_import_check_sees_lazy_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    import keras\n    from mlflow import MlflowClient\n")
    assert {"keras", "mlflow"} <= set(imports(source))


def reachable(start: str) -> set[str]:
    edges, seen, todo = graph(), set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += edges[m]
    return seen


@pytest.mark.parametrize("entry", ["dsbench.train", "dsbench.analyze", "dsbench.describe"])
def test_entry_points_carry_no_developer_tools(entry: str) -> None:
    assert not {m for m in reachable(entry) if m.startswith("dsbench.tools")}


def test_every_entry_point_is_thin() -> None:
    """The commands hold no stage logic: each is a short Hydra or argparse wrapper."""
    for entry in ("train", "analyze", "describe", "allconv"):
        lines = (PACKAGE / f"{entry}.py").read_text().splitlines()
        assert len(lines) <= 80, (entry, len(lines))
