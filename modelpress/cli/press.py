"""``modelpress press``: search for the smallest (or fastest) model that fits each device within a budget."""

from __future__ import annotations

import click

from modelpress.cli.main import quiet_tensorflow
from modelpress.cli.sign import sign_key_option
from modelpress.errors import BudgetError
from modelpress.tables import text_table

COLUMNS = [("profile", "profile"), ("chosen", "variant"), ("top-1", "accuracy", "{:.2%}"),
           ("drop pt", "drop_points", "{:+.2f}"), ("bytes", "bytes", "{:,}"), ("gzip", "gzip_bytes", "{:,}"),
           ("p50 ms", "p50_ms", "{:.3f}"), ("within budget", "met"), ("package", "package")]


@click.command()
@click.argument("model", type=click.Path(path_type=str))
@click.option("-p", "--profile", "profiles", multiple=True, required=True, metavar="NAME|FILE",
              help="Device profile (repeatable: one search and one package per profile; trials are shared).")
@click.option("-d", "--data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help=".npz with x_train / y_train (fine-tuning, calibration) and x_val / y_val (held out: every "
                   "accuracy figure; 10% of the training data when absent).")
@click.option("--max-drop", type=float, default=1.0, show_default=True,
              help="Accuracy points the result may lose against MODEL on the held-out data (a candidate fits "
                   "when its drop plus a margin of --confidence's standard errors does).")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), metavar="P",
              help="How sure a candidate must be that its drop on unseen data fits --max-drop (one-sided): 0.95 "
                   "adds 1.645 standard errors of the measured drop. Default: one standard error (about 0.84). "
                   "Ask for more when the result will be checked on a second, independent set.")
@click.option("--objective", type=click.Choice(["size", "latency"]), default="size", show_default=True,
              help="What to minimise among the candidates within the budget.")
@click.option("--time-budget", metavar="DURATION", help="Stop starting trials after this long (90s, 20m, 1h).")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder for the chosen packages (<out>/<profile>/), press.json and report/.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=str),
              help="Trial cache folder (default: $MODELPRESS_CACHE or ~/.cache/modelpress/press).")
@click.option("--no-cache", is_flag=True, help="Do not read or keep cached trials.")
@click.option("--epochs", type=click.IntRange(1), help="Fine-tuning epochs per candidate (default: from the data "
                                                       "size).")
@click.option("--only", "families", multiple=True, metavar="BRANCH",
              help="Search only these branches (repeatable): quantize, fallback, qat, prune, prune-layerwise, l0, "
                   "cluster, prune-mn, slim.")
@click.option("--unsafe", is_flag=True, help="Load .keras files with safe mode off (trusted files only).")
@click.option("--workers", type=click.IntRange(1), metavar="N",
              help="Trials at once, each in a worker process of its own (default: one per GPU, else one per 4 "
                   "cores; 1 runs them in this process).")
@click.option("--ray", "ray_address", metavar="auto|ADDRESS",
              help="Run trials as tasks on a Ray cluster: 'auto' (the cluster this machine joined) or host:port. "
                   "Needs the distributed extra.")
@click.option("--trial-cpus", type=click.FloatRange(min=0, min_open=True), metavar="N",
              help="CPUs per trial on Ray (default 1).")
@click.option("--trial-gpus", type=click.FloatRange(min=0), default=0.0, metavar="N",
              help="GPUs per trial on Ray (fractions share a GPU; default 0).")
@sign_key_option
def press(model: str, profiles: tuple[str, ...], data: str, max_drop: float, confidence: float | None, objective: str,
          time_budget: str | None, out: str, cache: str | None, no_cache: bool, epochs: int | None,
          families: tuple[str, ...], unsafe: bool, workers: int | None, ray_address: str | None,
          trial_cpus: float | None, trial_gpus: float, sign_key: str | None) -> None:
    """Find the smallest (or fastest) model for each device within an accuracy budget, automatically.

    Tries quantizations (with per-layer float fallback, and quantization-aware training where int8
    misses), pruning (global and per layer), L0 gates (exact zeros learnt under a penalty), 2:4
    sparsity, clustering and structured slimming; converts every candidate for the profile, checks its
    constraints, and scores it on held-out data.

    \b
    Examples:
      modelpress press lenet.keras -p raspberry-pi-4 -d fashion.npz --max-drop 0.5 -o build/press
      modelpress press cnn.keras -p cortex-m -p coral-edgetpu -d data.npz --objective latency --time-budget 20m -o out/
      modelpress press cnn.keras -p raspberry-pi-4 -d data.npz --workers 4 -o out/
      modelpress press cnn.keras -p raspberry-pi-4 -d data.npz --ray auto --trial-cpus 2 --trial-gpus 0.5 -o out/
    """
    quiet_tensorflow()
    from modelpress.api.press import press as run_press

    result = run_press(model, list(profiles), data, out=out, max_drop=max_drop, objective=objective,
                       time_budget=time_budget, cache=cache, use_cache=not no_cache, epochs=epochs,
                       families=list(families) or None, safe_mode=not unsafe, workers=workers, ray=ray_address,
                       trial_cpus=trial_cpus, trial_gpus=trial_gpus, confidence=confidence,
                       echo=lambda line: click.echo(line, err=True), sign_key=sign_key)
    click.echo(text_table(result.rows(), COLUMNS))
    click.echo(f"\nwrote {result.press_json} and {result.report}")
    if result.search.stopped:
        click.echo(result.search.stopped, err=True)
    if not result.met:
        raise BudgetError(" ".join(result.messages))
