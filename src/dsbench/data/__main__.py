"""`dsbench data [datasets=a,b] [mirror=URL]` (`make data`): download the official
archives ahead of time, md5-checked, into each dataset's `archive_dir`
(`dsbench.config.DatasetConfig` with conf/dataset/<name>.yaml: $DSBENCH_DATA/<name>, else
data/<name>).

    dsbench data                                    # every dataset
    dsbench data datasets=mnist,fashion_mnist
    dsbench data datasets=mnist mirror=http://127.0.0.1:8000   # <mirror>/mnist/...

Keys: datasets (comma-separated, default all), mirror (a base URL holding <dataset>/<file>;
sets $DSBENCH_MIRROR). Files already there are checked, not fetched again; a corrupt one is
named (delete it to fetch it anew). Exit 0 when every file is there and official, 2 on bad
input, 1 when a download failed.
"""

from __future__ import annotations

import os
import sys

from hydra import compose, initialize_config_module

from dsbench.config import DatasetConfig, key_values, validate
from dsbench.data.archives import md5_of
from dsbench.data.fetch import MIRROR_ENV, ensure_archives, source_url
from dsbench.data.registry import DATASETS, get_info
from dsbench.errors import DsbenchError, ExternalError


def fetch(names: list[str], mirror: str | None) -> None:
    if mirror:
        os.environ[MIRROR_ENV] = mirror
    with initialize_config_module("dsbench.conf", version_base="1.3"):
        for name in names:
            info = get_info(name)
            option = compose(config_name=f"dataset/{name}").dataset  # what it changes
            dataset = validate(option, DatasetConfig)  # on the schema's defaults
            folder, url = os.path.expanduser(dataset.archive_dir), dataset.url
            fetched = ensure_archives(info, folder, url)
            for file_name, md5 in info.files.values():
                path = os.path.join(folder, file_name)
                if (actual := md5_of(path)) != md5:
                    raise DsbenchError(
                        f"{name} archive {path} is corrupt: md5 {actual}, expected {md5}: "
                        "delete it and fetch again"
                    )
            where = f"fetched {len(fetched)} from {source_url(info, url)}" if fetched else "present"
            print(f"{name}: {len(info.files)} file(s) in {folder}, md5 checked ({where})")


def main(argv: list[str] | None = None) -> None:
    try:
        args = key_values(
            sys.argv[1:] if argv is None else argv, {"datasets": "", "mirror": None}, "data"
        )
        names = [n for n in args["datasets"].split(",") if n] or list(DATASETS)
        fetch(names, args["mirror"] or None)
    except DsbenchError as e:
        print(f"dsbench: error: {e}", file=sys.stderr)
        sys.exit(1 if isinstance(e, ExternalError) else 2)


if __name__ == "__main__":
    main()
