"""The generated tables of README (strategies, result), docs/models.md (backbones) and
docs/protocol.md (capacity classes): `python -m dsbench.tools.docs`.

- The strategy table, from the code: each row is one registered strategy
  (dsbench.model.downsample), its description, and the params and MFLOPs of the keras-io MNIST
  convnet with the flatten head and of ResNet-20 on CIFAR-10, predicted in pure Python (the
  tests check the same numbers against Keras).
- The backbone table, from conf/model/: each backbone's description, head, slots and cost.
- The result table, from the headline study's committed comparison (`RESULT`, which
  `dsbench.analyze` writes from the runs).
- The capacity classes (docs/protocol.md), from each registered strategy's class.

`--check` only compares, exiting 1 when a page differs: what the tests do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from dsbench.analysis.significance import BASELINE
from dsbench.analysis.tables import ACCURACY, COST
from dsbench.config import (
    DownsampleConfig,
    HeadConfig,
    backbone_head,
    backbone_names,
    model_config,
)
from dsbench.contract import Metric, Tag
from dsbench.data.registry import get_info
from dsbench.errors import DsbenchError
from dsbench.model.backbones import blocks
from dsbench.model.downsample import (
    CAPACITY_CLASSES,
    EXTRA,
    FEWER_FLOPS,
    FREE,
    LEARNED,
    STRATEGIES,
)
from dsbench.model.plan import count_params, flops_per_image, plan_model

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
PROTOCOL = ROOT / "docs" / "protocol.md"
MODELS = ROOT / "docs" / "models.md"
CAPACITY_BEGIN, CAPACITY_END = "<!-- capacity:begin -->", "<!-- capacity:end -->"
RESULT = ROOT / "results" / "mnist-converged" / "comparison.csv"  # the headline study
BEGIN, END = "<!-- strategies:begin -->", "<!-- strategies:end -->"
BACKBONES_BEGIN, BACKBONES_END = "<!-- backbones:begin -->", "<!-- backbones:end -->"
RESULT_BEGIN, RESULT_END = "<!-- result:begin -->", "<!-- result:end -->"
HEADS = ("flatten", "gap")  # the order of the result table's two halves
# README's short names of the capacity classes (docs/protocol.md has them in full)
SHORT_CLASS = {FREE: "free", FEWER_FLOPS: "free, fewer FLOPs", LEARNED: "learned", EXTRA: "extra"}


def _cost(backbone: str, strategy: str, dataset: str, head: str | None = None) -> str:
    """`params | MFLOPs` of one model, predicted in pure Python; `– | –` where the strategy
    does not fit the backbone (describe and train refuse it with one line)."""
    info = get_info(dataset)
    plan = plan_model(
        model_config(backbone),
        DownsampleConfig(strategy),
        HeadConfig(head or backbone_head(backbone)),
        info.num_classes,
        info.image_shape,
    )
    try:
        params = count_params(plan, info.image_shape)
    except DsbenchError:
        return "– | –"
    return f"{params:,} | {flops_per_image(plan, info.image_shape) / 1e6:.2f}"


def strategy_table() -> str:
    """One Markdown row per strategy: name, description, params and MFLOPs of the MNIST
    convnet (flatten head) and of ResNet-20 on CIFAR-10 (linear head)."""
    lines = [
        "| `downsample=` | what fills each slot | convnet | MFLOPs | ResNet-20 | MFLOPs |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, strategy in STRATEGIES.items():
        convnet = _cost("convnet", name, "mnist", HeadConfig.name)
        resnet = _cost("resnet20", name, "cifar10")
        lines.append(f"| `{name}` | {strategy.description} | {convnet} | {resnet} |")
    return "\n".join(lines) + "\n"


def backbone_table() -> str:
    """One Markdown row per backbone in conf/model/: its description, the head it comes with,
    its slots, and params and MFLOPs with max pooling on CIFAR-10."""
    lines = [
        "| `model=` | backbone | head | slots | params | MFLOPs |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name in backbone_names():
        model = model_config(name)
        slots = sum(1 for block in blocks(model) if block.slot is not None)
        head = backbone_head(name)
        cost = _cost(name, "max", "cifar10")
        lines.append(f"| `{name}` | {model.description} | `{head}` | {slots} | {cost} |")
    return "\n".join(lines) + "\n"


def versus(row: pd.Series) -> str:
    """The difference from max pooling in pp, * where its Holm-adjusted p is below 0.05."""
    if row[Tag.DOWNSAMPLE] == BASELINE:
        return "ref."
    return f"{100 * row['vs_max_diff']:+.2f}" + ("*" if row["vs_max_significant"] else "")


# metric → how README writes it: mean ± std, or the mean alone. Titles and scales are the
# comparison tables' (dsbench.analysis.tables); a metric the study did not log is left out.
RESULT_METRICS = {
    Metric.TEST_ERROR: "{:.2f} ± {:.2f}",
    Metric.SHIFT_CONSISTENCY: "{:.2f} ± {:.2f}",
    Metric.CIRCULAR_SHIFT_CONSISTENCY: "{:.2f} ± {:.2f}",
    Metric.PARAMS_TOTAL: "{:,.0f}",
    Metric.FLOPS_PER_IMAGE: "{:.2f}",
}  # no time: the runs trained in sessions at different machine speeds (bench for ratios)


def result_table(csv: Path = RESULT) -> str:
    """README's headline: one row per strategy × head of the committed comparison, flatten
    head first, each half by test error; the difference from max pooling after the error
    where the study has it."""
    table = pd.read_csv(csv)
    table[Tag.HEAD] = pd.Categorical(table[Tag.HEAD], HEADS, ordered=True)
    table = table.sort_values([Tag.HEAD, f"{Metric.TEST_ERROR}_mean"])
    titles, aligns = ["strategy", "head", "class"], ["---", "---", "---"]
    cells = [
        table[Tag.DOWNSAMPLE].map("`{}`".format),
        table[Tag.HEAD].astype(str),
        table["capacity"].map(SHORT_CLASS),
    ]
    for metric, fmt in RESULT_METRICS.items():
        if f"{metric}_mean" not in table:
            continue
        title, scale, _ = {**ACCURACY, **COST}[metric]
        titles.append(title)
        aligns.append("---" if "±" in fmt else "---:")
        mean, std = scale * table[f"{metric}_mean"], scale * table[f"{metric}_std"]
        cells.append(pd.Series(map(fmt.format, mean, std), index=table.index))
        if metric == Metric.TEST_ERROR and "vs_max_diff" in table:
            titles.append("vs max, pp")
            aligns.append("---:")
            cells.append(table.apply(versus, axis=1))
            titles.append("still improving")
            aligns.append("---:")
            improving = zip(table[Metric.STILL_IMPROVING], table["plateau_known"], strict=True)
            cells.append(pd.Series([f"{k:.0f}/{n:.0f}" for k, n in improving], index=table.index))
    lines = ["| " + " | ".join(titles) + " |", "|" + "".join(f"{a}|" for a in aligns)]
    lines += ["| " + " | ".join(row) + " |" for row in zip(*cells, strict=True)]
    return "\n".join(lines) + "\n"


def capacity_table() -> str:
    """Each capacity class and its registered strategies, in registration order."""
    lines = ["| class | strategies |", "|---|---|"]
    for capacity in CAPACITY_CLASSES:
        names = [f"`{s.name}`" for s in STRATEGIES.values() if s.capacity == capacity]
        lines.append(f"| {capacity} | {', '.join(names)} |")
    return "\n".join(lines) + "\n"


def with_capacity_table(protocol: str) -> str:
    return between(protocol, CAPACITY_BEGIN, CAPACITY_END, capacity_table())


def between(text: str, begin: str, end: str, body: str) -> str:
    """`text` with what lies between the markers `begin` and `end` replaced by `body`."""
    head, found_begin, rest = text.partition(begin)
    _, found_end, tail = rest.partition(end)
    if not found_begin or not found_end:
        raise ValueError(f"the page lacks the markers {begin} … {end}")
    return f"{head}{begin}\n{body}{end}{tail}"


def with_table(readme: str, csv: Path = RESULT) -> str:
    """The README text with both generated tables replaced by what the code and results say."""
    readme = between(readme, BEGIN, END, strategy_table())
    return between(readme, RESULT_BEGIN, RESULT_END, result_table(csv))


def with_backbone_table(models: str) -> str:
    return between(models, BACKBONES_BEGIN, BACKBONES_END, backbone_table())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    pages = {args.readme: with_table, MODELS: with_backbone_table, PROTOCOL: with_capacity_table}
    stale = []
    for page, generate in pages.items():
        text = page.read_text()
        new = generate(text)
        if new != text:
            stale.append(page)
            if not args.check:
                page.write_text(new)
    if args.check and stale:
        names = ", ".join(map(str, stale))
        print(f"{names}: a generated table is stale: run python -m dsbench.tools.docs")
        sys.exit(1)
    if not args.check:
        print(f"{args.readme}, {MODELS}, {PROTOCOL}: generated tables written")


if __name__ == "__main__":
    main()
