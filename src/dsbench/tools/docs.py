"""The README's strategy table, generated from the code: `python -m dsbench.tools.docs`.

Each row is one registered strategy (dsbench.model.downsample): its description, and the
params and MFLOPs of the keras-io MNIST convnet with the flatten head, predicted in pure
Python (the tests check the same numbers against Keras). `--check` only compares, exiting
1 when README.md differs: what the test does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dsbench.config import DownsampleConfig, HeadConfig, ModelConfig
from dsbench.data.registry import get_info
from dsbench.model.downsample import STRATEGIES
from dsbench.model.plan import count_params, flops_per_image, plan_model

BEGIN, END = "<!-- strategies:begin -->", "<!-- strategies:end -->"
README = Path(__file__).resolve().parents[3] / "README.md"


def strategy_table() -> str:
    """One Markdown row per strategy: name, description, params, MFLOPs (convnet, MNIST)."""
    info = get_info("mnist")
    lines = [
        "| `downsample=` | what fills each slot | params | MFLOPs |",
        "|---|---|---:|---:|",
    ]
    for name, strategy in STRATEGIES.items():
        plan = plan_model(ModelConfig(), DownsampleConfig(name), HeadConfig(), info.num_classes)
        params = count_params(plan, info.image_shape)
        mflops = flops_per_image(plan, info.image_shape) / 1e6
        lines.append(f"| `{name}` | {strategy.description} | {params:,} | {mflops:.2f} |")
    return "\n".join(lines) + "\n"


def with_table(readme: str) -> str:
    """The README text with the table between its markers replaced by the generated one."""
    head, begin, rest = readme.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"README.md lacks the markers {BEGIN} … {END}")
    return f"{head}{BEGIN}\n{strategy_table()}{END}{tail}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    new = with_table(text)
    if args.check:
        if new != text:
            print(f"{args.readme}: the strategy table is stale: run python -m dsbench.tools.docs")
            sys.exit(1)
        return
    args.readme.write_text(new)
    print(f"{args.readme}: strategy table of {len(STRATEGIES)} strategies written")


if __name__ == "__main__":
    main()
