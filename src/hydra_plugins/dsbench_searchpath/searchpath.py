"""Puts the project root on Hydra's search path, so experiments/*.yaml is a config group.

`experiments/` lives beside `conf/` (named studies, not building blocks); Hydra's own
`hydra.searchpath` cannot interpolate a path, hence this plugin (Hydra finds it by its
`hydra_plugins` namespace).
"""

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

ROOT = Path(__file__).resolve().parents[3]


class DsbenchSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if (ROOT / "experiments").is_dir():
            search_path.append(provider="dsbench-experiments", path=f"file://{ROOT}")
