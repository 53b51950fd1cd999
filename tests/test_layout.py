"""The code's shape: the stages import each other in one direction only, model/ is pure
Python, analysis/ needs no TensorFlow, the training entry point carries no dev tools, the
installed package needs nothing of the checkout's devtools/, no two modules share a file name,
and no file of the checkout is one that standard tools ignore (GitHub's stock Python .gitignore).

The import graph is read from the source (ast), every import counted, those inside
functions too: a lazy import still ties two modules together.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
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
    assert "dsbench.frameworks.keras_model" in edges["dsbench.training.run"]  # inside a function
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


STAGES = ("data", "model", "frameworks", "build", "training", "tracking", "analysis", "studies")


def test_config_imports_no_stage() -> None:
    """config is the bottom of the graph: every stage imports its schema and checks from it,
    and it imports no stage, directly or through another module (nor the tools)."""
    stages = {f"dsbench.{name}" for name in (*STAGES, "tools")}
    assert sorted(m for m in reachable("dsbench.config") if stage(m) in stages) == []


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


DEVTOOLS = ROOT / "devtools"  # run from the checkout (python -m devtools.<name>), not installed


def test_the_installed_package_needs_no_devtools() -> None:
    """devtools/ (the MLflow UI driver, the PostgreSQL starter, the analysis-scale bench) is
    not in the wheel: no module of src/dsbench may import it, even lazily."""
    assert (DEVTOOLS / "__init__.py").is_file()
    bad = sorted(
        f"{name} imports {m}"
        for name, path in MODULES.items()
        for m in imports(path)
        if m.split(".")[0] == "devtools"
    )
    assert bad == []


def test_one_file_name_one_module() -> None:
    """No two modules of src/, devtools/ and tests/ share a file name (a reader, a traceback
    or `import services` in a test names one thing)."""
    seen: dict[str, list[str]] = {}
    for folder in (SRC, DEVTOOLS, ROOT / "tests"):
        for path in folder.rglob("*.py"):
            if path.name not in ("__init__.py", "__main__.py"):
                seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}


def test_every_entry_point_is_thin() -> None:
    """The commands hold no stage logic: each is a short Hydra or argparse wrapper."""
    for entry in ("train", "analyze", "describe", "allconv"):
        lines = (PACKAGE / f"{entry}.py").read_text().splitlines()
        assert len(lines) <= 80, (entry, len(lines))


# GitHub's stock Python.gitignore (github/gitignore), its patterns only. A file of the
# checkout that one of them matches is dropped silently by a project that adopts it, and
# tools treat such folders as build output (a source folder named build/ was renamed).
STOCK_PYTHON_GITIGNORE = """
__pycache__/
*.py[cod]
*$py.class
*.so
.Python
build/
develop-eggs/
dist/
downloads/
eggs/
.eggs/
lib/
lib64/
parts/
sdist/
var/
wheels/
share/python-wheels/
*.egg-info/
.installed.cfg
*.egg
MANIFEST
*.manifest
*.spec
pip-log.txt
pip-delete-this-directory.txt
htmlcov/
.tox/
.nox/
.coverage
.coverage.*
.cache
nosetests.xml
coverage.xml
*.cover
*.py,cover
.hypothesis/
.pytest_cache/
cover/
*.mo
*.pot
*.log
local_settings.py
db.sqlite3
db.sqlite3-journal
instance/
.webassets-cache
.scrapy
docs/_build/
.pybuilder/
target/
.ipynb_checkpoints
profile_default/
ipython_config.py
.pdm.toml
__pypackages__/
celerybeat-schedule
celerybeat.pid
*.sage.py
.env
.venv
env/
venv/
ENV/
env.bak/
venv.bak/
.spyderproject
.spyproject
.ropeproject
/site
.mypy_cache/
.dmypy.json
dmypy.json
.pyre/
.pytype/
cython_debug/
"""


def stock_ignored(paths: list[str], tmp_path: Path) -> list[str]:
    """The paths that the stock Python .gitignore ignores, as real git decides it (in an
    empty repository, so that this project's own .gitignore plays no part)."""
    patterns = tmp_path / "stock.gitignore"
    patterns.write_text(STOCK_PYTHON_GITIGNORE)
    subprocess.run(["git", "init", "-q", str(tmp_path / "empty")], check=True)
    ignored_by = ["-c", f"core.excludesFile={patterns}"]
    out = subprocess.run(
        ["git", *ignored_by, "check-ignore", "--no-index", "-z", "--stdin"],
        cwd=tmp_path / "empty",
        input="\0".join(paths) + "\0",
        capture_output=True,
        text=True,
    )
    assert out.returncode in (0, 1), out.stderr  # 1: nothing ignored
    return [p for p in out.stdout.split("\0") if p]


def checkout_files() -> list[str]:
    """Every file git tracks, and the new ones it would add (untracked, not ignored)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [p for p in out.stdout.split("\0") if p]


def test_the_stock_gitignore_check_sees_an_ignored_folder(tmp_path: Path) -> None:
    paths = ["src/pkg/build/x.py", "src/pkg/frameworks/x.py", "results/run.log"]
    assert stock_ignored(paths, tmp_path) == ["src/pkg/build/x.py", "results/run.log"]


def test_no_file_is_ignored_by_the_stock_python_gitignore(tmp_path: Path) -> None:
    files = checkout_files()
    assert "src/dsbench/frameworks/keras_model.py" in files
    assert stock_ignored(files, tmp_path) == []


# Who may name a study: the commands and the developer tools. The stages find studies only
# through dsbench.hooks, so that the next study is one module in studies/.
MAY_IMPORT_STUDIES = ("dsbench.studies", "dsbench.tools", "dsbench.allconv")


def test_only_commands_and_tools_import_a_study() -> None:
    bad = sorted(
        f"{name} imports {target}"
        for name, targets in graph().items()
        for target in targets
        if target.startswith("dsbench.studies") and not name.startswith(MAY_IMPORT_STUDIES)
    )
    assert bad == []


def test_the_study_hook_finds_every_study() -> None:
    from dsbench.hooks import studies

    modules = {p.stem for p in (PACKAGE / "studies").glob("*.py")} - {"__init__"}
    assert {s.name for s in studies()} == modules


TRAINING_FUNCTION_LINES = 60  # a function of the run's spine reads on one screen


def test_training_functions_fit_on_a_screen() -> None:
    """The run is a sequence of named steps (training/run.py: load data → build → fit →
    evaluate → record), not one long function that interleaves them."""
    long = []
    for path in sorted((PACKAGE / "training").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > TRAINING_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert long == []
