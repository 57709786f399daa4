"""``modelpress deploy``: compress, convert, verify and publish into a model repository."""

from __future__ import annotations

import datetime as _dt
import json

import click

from modelpress.cli.main import quiet_tensorflow
from modelpress.cli.sign import sign_key_option
from modelpress.tables import text_table

COLUMNS = [("model", "model"), ("version", "version"), ("profile", "profile"), ("quant", "quantization"),
           ("bytes", "bytes", "{:,}"), ("gzip", "gzip_bytes", "{:,}"), ("agreement", "top1_agreement", "{:.2%}"),
           ("max |err|", "max_abs_error", "{:.2g}"), ("accuracy", "accuracy", "{:.2%}"), ("p50 ms", "p50_ms", "{:.3f}"),
           ("path", "path")]


@click.command()
@click.argument("model", type=click.Path(path_type=str))
@click.option("-p", "--profile", "profiles", multiple=True, required=True, metavar="NAME|FILE",
              help="Device profile (repeatable: one published model per profile).")
@click.option("-r", "--repo", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Model repository folder (<repo>/<model>/<version>/), created when missing.")
@click.option("--recipe", metavar="NAME|FILE", help="Compress first with this recipe (needs --data).")
@click.option("--max-drop", type=float, metavar="POINTS",
              help="Let `modelpress press` find each profile's smallest package within this many accuracy "
                   "points of MODEL (needs --data; instead of --recipe).")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), metavar="P",
              help="With --max-drop: how sure press must be that each drop on unseen data fits (see press --help).")
@click.option("--time-budget", metavar="DURATION", help="With --max-drop: stop the search after this long (20m).")
@click.option("-d", "--data", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help=".npz with x_train / y_train (x_val / y_val optional): fine-tuning, calibration, verification.")
@click.option("-c", "--calibration", metavar="DATA", help="Calibration inputs (default: --data).")
@click.option("--verify-data", metavar="DATA", help="Verification inputs (default: the held-out half of the "
                                                    "calibration data).")
@click.option("--name", help="Model name in the repository (default: the model's own name; with several "
                             "profiles NAME-PROFILE each).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Text file with one class name a line.")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=str), metavar="RUN_DIR",
              help="With --data: run folder for deploy.json (held-out accuracy and latency per artifact) and its "
                   "report (default runs/deploy-<UTC time>).")
@click.option("--unsafe", is_flag=True, help="Load .keras files with safe mode off (trusted files only).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@sign_key_option
def deploy(model: str, profiles: tuple[str, ...], repo: str, recipe: str | None, max_drop: float | None,
           confidence: float | None, time_budget: str | None, data: str | None, calibration: str | None,
           verify_data: str | None, name: str | None, labels: str | None, out: str | None, unsafe: bool, as_json: bool,
           sign_key: str | None) -> None:
    """Publish MODEL for one or more devices as the next version(s) in a model repository.

    Each version folder appears complete or not at all, so a running `modelpress serve REPO` picks it
    up without a restart.

    \b
    Examples:
      modelpress deploy model.keras --profile raspberry-pi-4 --data train.npz --repo repo/
      modelpress deploy model.keras -p server-cpu -p coral-edgetpu --recipe prune-80 --data train.npz -r repo/
      modelpress deploy model.keras -p cortex-m --max-drop 0.5 --data train.npz -r repo/ -o runs/d1

    With --data, each published artifact is scored on held-out data (x_test / y_test, else x_val / y_val)
    and timed; deploy.json and a report with size and latency vs accuracy plots go to the run folder.
    """
    quiet_tensorflow()
    from modelpress.api.deploy import deploy as run_deploy

    echo = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    if data is not None and out is None:
        out = f"runs/deploy-{_dt.datetime.now(_dt.timezone.utc):%Y%m%d-%H%M%S}"
    result = run_deploy(model, list(profiles), repo, recipe=recipe, data=data, calibration=calibration,
                        verify_data=verify_data, name=name, labels=labels, safe_mode=not unsafe, max_drop=max_drop,
                        time_budget=time_budget, out=out, echo=echo, sign_key=sign_key, confidence=confidence)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
        return
    click.echo(text_table([p.to_dict() for p in result.published], COLUMNS))
    if result.report is not None:
        click.echo(f"report: {result.report.html}\n        {result.report.markdown}")
        click.echo(f"run:    {result.run / 'deploy.json'}")
