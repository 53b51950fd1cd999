"""A strategy that needs a new layer, added by the documented edits only.

docs/models.md ("Add a strategy") prints each edit in full for `catpool`, max and average
pools side by side (a layer Keras lacks). Here those blocks, exactly as printed, go into
temporary modules outside the package that stand for the files they name, with the imports
those files already have, and a temporary config folder. Then what the docs promise is
checked: the README's generated table gets the row, the EXPECTED row is what the plan and
Keras give, and `dsbench.train downsample=catpool` trains and records a finished run. Also the
builder registries themselves (dsbench.frameworks.builders).

The strategy is registered in this process only while this module's tests run: the rest of
the suite sees the registry as the package defines it.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import keras
import numpy as np
import pytest
from helpers import TINY, all_runs, store_uri

from dsbench.config import DownsampleConfig, HeadConfig, model_config
from dsbench.frameworks.builders import KERAS_BUILDERS, builder_of, keras_builder
from dsbench.frameworks.keras_model import build_keras, keras_layer
from dsbench.model.downsample import STRATEGIES
from dsbench.model.layers import Pool, Spec
from dsbench.model.plan import count_params, flops_per_image, plan_model, trace
from dsbench.tools.docs import README, strategy_table, with_table

ROOT = Path(__file__).resolve().parents[1]
MNIST = (28, 28, 1)
NAME = "catpool"

# Each temporary module stands for one file of the package: the imports that file has, then
# the documented block. The Keras layers refer to specs as `spec.X`, as keras_layers.py does.
HEADERS = {
    "catpool_layers": (  # src/dsbench/model/layers.py
        "from __future__ import annotations\n"
        "from dataclasses import dataclass\n"
        "from dsbench.model.layers import Pool, Shape, Spec\n"
    ),
    "catpool_keras_layers": (  # src/dsbench/frameworks/keras_layers.py
        "from __future__ import annotations\n"
        "from typing import Any\n"
        "import keras\n"
        "from keras import ops\n"
        "from dsbench.frameworks.builders import keras_builder\n"
        "import catpool_layers as spec\n"
    ),
    "catpool_downsample": (  # src/dsbench/model/downsample.py
        "from __future__ import annotations\n"
        "from dsbench.config import DownsampleConfig\n"
        "from dsbench.model.downsample import FREE, Fill, Slot, _window, strategy\n"
        "from catpool_layers import CatPool\n"
    ),
}


@dataclass(frozen=True)
class Edits:
    """docs/models.md's blocks for the example: the three modules' code, the yaml, the row."""

    code: dict[str, str]  # module name → its documented block
    yaml: str
    expected: tuple[tuple[int, ...], tuple[int, ...], int, int]  # tests/test_strategies.py row


def documented_edits() -> Edits:
    page = (ROOT / "docs" / "models.md").read_text()
    section = page.split("\n## Add a strategy\n", 1)[1].split("\n## ", 1)[0]
    blocks = [
        (lang, textwrap.dedent(body))
        for lang, body in re.findall(r"^ *```(\w+)\n(.*?)^ *```$", section, re.M | re.S)
    ]
    python = [body for lang, body in blocks if lang == "python"]
    yaml = [body for lang, body in blocks if lang == "yaml"]
    assert len(python) == 4 and len(yaml) == 1, blocks  # spec, Keras, strategy, row; config
    row = ast.literal_eval("{" + python[3] + "}")
    return Edits(dict(zip(HEADERS, python[:3], strict=True)), yaml[0], row[NAME])


def write_edits(edits: Edits, folder: Path) -> tuple[Path, Path]:
    """The modules in folder/plugin, the yaml in folder/conf/downsample; both folders."""
    plugin, conf = folder / "plugin", folder / "conf" / "downsample"
    plugin.mkdir(parents=True)
    conf.mkdir(parents=True)
    for module, code in edits.code.items():
        (plugin / f"{module}.py").write_text(HEADERS[module] + "\n\n" + code)
    (conf / f"{NAME}.yaml").write_text(edits.yaml)
    return plugin, conf.parent


@pytest.fixture(scope="module")
def catpool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Edits, Path, Path]]:
    """The edits imported in this process; undone afterwards (registries, modules, path)."""
    edits = documented_edits()
    plugin, conf = write_edits(edits, tmp_path_factory.mktemp("catpool"))
    sys.path.insert(0, str(plugin))
    modules: list[ModuleType] = []
    try:
        modules = [importlib.import_module(m) for m in HEADERS]
        yield edits, plugin, conf
    finally:
        STRATEGIES.pop(NAME, None)
        if modules:
            KERAS_BUILDERS.pop(modules[0].CatPool, None)
        keras.saving.get_custom_objects().pop("dsbench>CatPool", None)
        for m in HEADERS:
            sys.modules.pop(m, None)
        sys.path.remove(str(plugin))


def test_the_docs_row_is_generated(catpool: tuple[Edits, Path, Path]) -> None:
    """`python -m dsbench.tools.docs` would write this README: the new row, after the others."""
    readme = with_table(README.read_text())
    table = readme.split("<!-- strategies:begin -->", 1)[1].split("<!-- strategies:end -->")[0]
    description = "max and avg pools side by side (2× channels)"
    # ResNet-20 refuses it: its 2C channels cannot be summed with the C of the main path.
    row = f"| `catpool` | {description} | 69,258 | 9.37 | – | – |"
    assert table.strip().splitlines()[-1] == row
    assert row in strategy_table()


def test_the_expected_row_is_what_the_plan_and_keras_give(
    catpool: tuple[Edits, Path, Path],
) -> None:
    """What tests/test_strategies.py checks of each EXPECTED row, and that every layer's
    Keras shape is the predicted one (as `describe` checks)."""
    block1, block2, params, flops = catpool[0].expected
    plan = plan_model(model_config("convnet"), DownsampleConfig(NAME), HeadConfig(), 10)
    rows = trace(plan, MNIST)
    slots = [[out for name, _, out in rows if name.startswith(f"block{i}_")][-1] for i in (1, 2)]
    assert slots == [block1, block2]
    assert count_params(plan, MNIST) == params
    assert flops_per_image(plan, MNIST) == flops
    model = build_keras(plan, MNIST)
    assert model.count_params() == params
    for (name, _, shape), layer in zip(rows, model.layers[1:], strict=True):
        assert tuple(layer.output.shape[1:]) == shape, name


def test_the_new_layer_computes_max_and_avg(catpool: tuple[Edits, Path, Path]) -> None:
    spec = sys.modules["catpool_layers"].CatPool(2, 2)
    x = np.array([[1, 5, 2, 0], [3, 2, 8, 4], [0, 6, 1, 1], [4, 2, 3, 7]], "float32")
    y = keras.ops.convert_to_numpy(keras_layer(spec, "c")(x[None, :, :, None]))[0]
    np.testing.assert_allclose(y[..., 0], [[5, 8], [6, 7]])  # max
    np.testing.assert_allclose(y[..., 1], [[2.75, 3.5], [3, 3]])  # avg


def test_a_saved_model_with_the_new_layer_loads(
    catpool: tuple[Edits, Path, Path], tmp_path: Path
) -> None:
    model = build_keras(
        plan_model(model_config("convnet"), DownsampleConfig(NAME), HeadConfig(), 10), MNIST
    )
    model.save(tmp_path / "catpool.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, *MNIST)).astype("float32")
    loaded = keras.models.load_model(tmp_path / "catpool.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# The subprocess: import the edits as the package would have them, then the real entry point.
TRAIN = (
    "import sys\n"
    "sys.path.insert(0, sys.argv.pop(1))\n"
    "import catpool_downsample, catpool_keras_layers  # the edits\n"
    "from dsbench.train import main\n"
    "sys.argv[0] = 'dsbench-train'\n"
    "main()\n"
)


@pytest.mark.slow
def test_the_new_strategy_trains(
    catpool: tuple[Edits, Path, Path], shared_data: Path, tmp_path: Path
) -> None:
    _, plugin, conf = catpool
    uri = store_uri(tmp_path)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [
            *(sys.executable, "-c", TRAIN, str(plugin), "--config-dir", str(conf), *TINY),
            *(f"dataset.archive_dir={shared_data / 'mnist'}", f"downsample={NAME}"),
            f"tracking.uri={uri}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = all_runs(uri)
    assert run.info.status == "FINISHED"
    assert run.data.params["downsample.name"] == NAME
    assert run.data.metrics["params_total"] == catpool[0].expected[2]


# The registries.


@dataclass(frozen=True)
class Unbuilt(Spec):
    """A spec no framework knows."""


@dataclass(frozen=True)
class WidePool(Pool):
    """A subclass of a spec with a builder: built by its base class's builder."""


def test_a_spec_without_a_keras_builder_is_named() -> None:
    with pytest.raises(TypeError, match=r"^no Keras layer for the spec Unbuilt of layer u$"):
        keras_layer(Unbuilt(), "u")


def test_a_subclass_takes_its_base_class_builder() -> None:
    assert builder_of(KERAS_BUILDERS, WidePool("max", 2, 2)) is KERAS_BUILDERS[Pool]
    assert builder_of(KERAS_BUILDERS, Unbuilt()) is None


def test_a_builder_is_registered_once() -> None:
    with pytest.raises(ValueError, match="the Keras builder of Pool is registered twice"):
        keras_builder(Pool)(lambda s, name: None)
    assert KERAS_BUILDERS[Pool].__name__ == "_pool"
