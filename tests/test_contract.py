"""Each MLflow metric and tag name is written as a string in exactly one module of src/:
dsbench.contract, or, for a study's own tags, that study's module. Everything else imports it."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from dsbench import contract
from dsbench.contract import Metric, Tag
from dsbench.studies import springenberg2015

SRC = Path(contract.__file__).parent
CONTRACT = Path(contract.__file__)
STUDY = Path(springenberg2015.__file__)


def _names(holder: type) -> list[str]:
    return [v for k, v in vars(holder).items() if k.isupper() and isinstance(v, str)]


MLFLOW_OWN = [contract.PARENT_RUN, contract.RUN_NAME, contract.DESCRIPTION]
OWNER = {
    **{name: CONTRACT for name in [*_names(Metric), *_names(Tag), *MLFLOW_OWN]},
    springenberg2015.VARIANT_TAG: STUDY,
    springenberg2015.PAPER_ERROR_TAG: STUDY,
}
# Words the code also writes for other reasons (config groups and keys like "downsample=max",
# trainer.loop=device, the lr table column, the bench's "variant" column): for these only
# the `metrics.`/`tags.` forms spell the name.
ORDINARY = {
    Tag.DATASET,
    Tag.MODEL,
    Tag.DOWNSAMPLE,
    Tag.HEAD,
    Tag.SEED,
    Tag.BACKEND,
    Tag.PRECISION,
    Tag.DEVICE,
    Metric.LR,
    springenberg2015.VARIANT_TAG,
}
# The same word for another thing in one module: an MNIST archive's file role.
HOMONYMS = {Metric.TRAIN_IMAGES: {SRC / "data" / "registry.py"}}


def strings(source: str) -> list[str]:
    """The string constants of a module (f-strings' literal parts too), docstrings aside:
    they document names, they do not spell them for the code."""
    tree = ast.parse(source)
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
    ]


def spells(text: str, name: str) -> bool:
    """Whether a string constant writes `name`: equal to it (not for ORDINARY names), or
    holding `metrics.<name>`, `tags.<name>` or tags.`<name>` as a whole word."""
    # The shifted-accuracy prefix is spelled with its shift too: "test_accuracy_shift1".
    n = re.escape(name) + (r"\d*" if name == Metric.SHIFTED_ACCURACY_PREFIX else "")
    if name not in ORDINARY and re.fullmatch(n, text):
        return True
    return re.search(rf"(?<![\w.`])(?:metrics|tags)\.(?:{n}(?![\w.])|`{n}`)", text) is not None


@cache
def spelled_in(name: str, root: Path = SRC) -> frozenset[Path]:
    """The modules under `root` that write `name` as a string."""
    return frozenset(
        path for path, texts in _modules(root).items() if any(spells(text, name) for text in texts)
    )


@cache
def _modules(root: Path) -> dict[Path, list[str]]:
    return {path: strings(path.read_text()) for path in sorted(root.rglob("*.py"))}


@pytest.mark.parametrize("name", sorted(OWNER))
def test_each_name_is_written_in_one_module(name: str) -> None:
    found = spelled_in(name)
    elsewhere = found - {OWNER[name], *HOMONYMS.get(name, ())}
    others = sorted(str(p.relative_to(SRC.parent)) for p in elsewhere)
    assert not others, (
        f"{name!r} is written as a string in {', '.join(others)}: import it from "
        f"{OWNER[name].relative_to(SRC.parent)} instead"
    )
    assert name in _modules(SRC)[OWNER[name]]  # where it is defined


def test_a_study_tag_is_not_in_the_contract() -> None:
    assert not {springenberg2015.VARIANT_TAG, springenberg2015.PAPER_ERROR_TAG} & {
        *_names(Metric),
        *_names(Tag),
    }


def test_the_scanner_finds_a_spelled_name(tmp_path: Path) -> None:
    """The check can fail: a module that spells names, in each form, is found."""
    (tmp_path / "spells.py").write_text(
        '"""Reads metrics.test_error (a docstring: not code)."""\n'
        'error = run.data.metrics["test_error"]\n'
        "where = f\"tags.config_hash = '{h}' and tags.`dsbench.role` = 'sweep'\"\n"
        'column = "metrics.test_accuracy_shift2"\n'
        'strategy = runs["tags.downsample"]\n'
        'group = "downsample"  # the config group: an ordinary word\n'
    )
    (tmp_path / "clean.py").write_text(
        '"""Reads metrics.test_error."""\n'
        "from dsbench.contract import Metric\n"
        "error = run.data.metrics[Metric.TEST_ERROR]\n"
        'mean = "test_error_mean"  # a column analysis derives, not the metric\n'
        'note = "tags.config_hash_old"\n'
    )
    spells_py = tmp_path / "spells.py"
    for name in (Metric.TEST_ERROR, Tag.CONFIG_HASH, Tag.ROLE, Tag.DOWNSAMPLE):
        assert spelled_in(name, tmp_path) == {spells_py}, name
    assert spelled_in(Metric.SHIFTED_ACCURACY_PREFIX, tmp_path) == {spells_py}
    assert spelled_in(Tag.HEAD, tmp_path) == frozenset()


def test_the_docs_name_every_metric_and_tag() -> None:
    """docs/sweeps.md lists what a run logs: a name added to the contract is documented."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "sweeps.md").read_text()
    names = [v for c in (Metric, Tag) for k, v in vars(c).items() if k.isupper()]
    assert [n for n in names if f"`{n}" not in page] == []
