"""`dsbench ui [overrides] [host=127.0.0.1] [port=5000] [serve=true]` (`make ui`): the MLflow
UI on a study's runs, with the columns that answer the question.

    dsbench ui experiments=mnist_downsampling       # the study as it was trained
    dsbench ui tracking.experiment=dsbench port=5001
    dsbench ui experiments=mnist_downsampling serve=false   # a UI already runs: its URL

The overrides name the study and its store the way `dsbench train` took them. The command
writes a view into the experiment (dsbench.tracking.view: runs grouped by strategy and head,
columns dataset, model, downsample, head, seed, test error, both shift consistencies,
params, FLOPs), prints its URL and runs `mlflow ui` on the store until Ctrl-C. Keys of its
own: host, port, serve (false: only write the view and print its URL).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from dsbench import cli
from dsbench.config import compose_train, key_values, own_keys
from dsbench.errors import DsbenchError, ExternalError
from dsbench.tracking.store import check_store, redacted
from dsbench.tracking.view import set_view, view_url

KEYS = {"host": "127.0.0.1", "port": "5000", "serve": "true"}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    own, overrides = own_keys(args, KEYS)
    try:
        options = key_values(own, dict(KEYS), "ui")
        if options["serve"] not in ("true", "false") or not options["port"].isdigit():
            raise DsbenchError(
                f"serve={options['serve']!r} port={options['port']!r}: serve is true or "
                "false, port a number"
            )
        tracking = compose_train(overrides).tracking
        check_store(tracking.uri)
        experiment_id = _experiment_id(tracking.uri, tracking.experiment)
        set_view(tracking.uri, experiment_id)
    except DsbenchError as e:
        cli.fail_on(e)
    except (HydraException, OmegaConfBaseException) as e:
        cli.fail(cli.config_error_line(e))
    base = f"http://{options['host']}:{options['port']}"
    print(f"{tracking.experiment}: {view_url(base, experiment_id)}", flush=True)
    if options["serve"] == "false":
        return
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "ui", "--backend-store-uri", tracking.uri]
    command += ["--host", options["host"], "--port", options["port"]]
    print(f"mlflow ui on {redacted(tracking.uri)} (Ctrl-C ends it)", flush=True)
    try:
        sys.exit(subprocess.call(command))
    except KeyboardInterrupt:
        sys.exit(130)


def _experiment_id(uri: str, experiment: str) -> str:
    from mlflow import MlflowClient

    from dsbench.analysis.load import missing_experiment

    try:
        found = MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
    except Exception as e:  # the store answered with an error
        raise ExternalError(f"tracking store {redacted(uri)}: {e}") from None
    if found is None:
        raise missing_experiment(uri, experiment)
    return found.experiment_id


if __name__ == "__main__":
    main()
