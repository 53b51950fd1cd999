"""The suite's one command: `dsbench <command> [key=value ...]` (also `python -m dsbench`).

Every command takes its settings as Hydra-style `key=value` overrides; `dsbench <command>
--help` lists them. The older scripts (dsbench-train, dsbench-describe, dsbench-analyze)
and the make targets run the same code.
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple


class Command(NamedTuple):
    module: str  # whose main() runs it, and whose docstring is its help
    summary: str  # its line in `dsbench --help`
    hydra: bool  # a Hydra app: config groups, `--cfg job`, `-m` for a sweep


COMMANDS = {
    "train": Command("dsbench.train", "train one model, or a sweep of them with -m", True),
    "describe": Command(
        "dsbench.describe", "a model's layers, shapes, parameters and FLOPs, untrained", True
    ),
    "analyze": Command("dsbench.analyze", "a study's runs as tables, plots and a dashboard", True),
    "data": Command("dsbench.data.__main__", "download the official archives, md5-checked", False),
    "ui": Command("dsbench.ui", "the MLflow UI on a study's runs, grouped by strategy", False),
    "bench": Command("dsbench.tools.bench", "training speed of the loops, side by side", True),
    "springenberg2015": Command(
        "dsbench.allconv", "Springenberg et al. 2015's table: each model at its chosen lr", False
    ),
}
HELP = ("-h", "--help")


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: dsbench <command> [key=value ...]",
        "",
        "Which downsampling should a convnet use, and what does it cost?",
        "",
        "commands:",
        *(f"  {name:<{width}}  {c.summary}" for name, c in COMMANDS.items()),
        "",
        "dsbench <command> --help: that command's keys. Start with: dsbench describe, then "
        "dsbench train.",
    ]
    return "\n".join(lines)


def command_help(name: str) -> str:
    """The command's module docstring, and for a Hydra app its config groups."""
    command = COMMANDS[name]
    module = importlib.import_module(command.module)
    text = (module.__doc__ or command.summary).strip()
    lines = [f"dsbench {name}: {command.summary}", "", text]
    if command.hydra:
        lines += ["", *_hydra_help(name)]
    return "\n".join(lines)


def _hydra_help(name: str) -> list[str]:
    from dsbench import config

    lines = []
    if name in ("train", "describe"):
        lines.append("config groups (group=option):")
        for group in config.config_groups():
            lines.append(f"  {group}: {', '.join(config.group_options(group))}")
        lines.append("")
    lines += [
        f"every key and its default: dsbench {name} --cfg job",
        f"Hydra's own flags (-m, --cfg, --config-dir, ...): dsbench {name} --hydra-help",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in HELP:
        print(usage())
        return
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        from dsbench.errors import did_you_mean

        print(
            f"dsbench: error: unknown command {name!r}{did_you_mean(name, COMMANDS)}; "
            f"choose one of: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        sys.exit(2)
    if any(a in HELP for a in rest):
        print(command_help(name))
        return
    module = importlib.import_module(COMMANDS[name].module)
    sys.argv = [f"dsbench {name}", *rest]
    module.main()


if __name__ == "__main__":
    main()
