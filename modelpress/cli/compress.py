"""``modelpress compress`` and ``modelpress evaluate``: argument parsing and printing only.

The work happens in :mod:`modelpress.api.compress`.
"""

from __future__ import annotations

import json
import sys

import click

from modelpress.cli.main import quiet_tensorflow


def _kb(n) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KB"


def _print_report(result) -> None:
    report = result.report
    s = report.summary()
    b, a = report.sizes_before, report.sizes_after
    click.secho(f"Wrote {result.model_path} ({report.flavor}) and {result.report_markdown}", fg="green", bold=True)
    for step in report.steps:
        click.echo(f"  step          {step['summary']} [{step['seconds']:.1f} s]")
    click.echo(f"  accuracy      {s['accuracy_before']:.2%} -> {s['accuracy_after']:.2%} (Keras, "
               f"{report.data['val']} validation samples)")
    if a.get("int8_accuracy") is not None:
        click.echo(f"  int8 TFLite   accuracy {a['int8_accuracy']:.2%}, {_kb(a.get('int8_tflite_bytes'))} raw, "
                   f"{_kb(a.get('int8_tflite_gzip_bytes'))} gzip")
    click.echo(f"  parameters    {s['params_before']:,} -> {s['params_after']:,} "
               f"({s['nonzero_params_after']:,} non-zero)")
    click.echo(f"  MACs          {s['macs_before']:,} -> {s['macs_after']:,}")
    click.echo(f"  model file    {_kb(b.get('model_gzip_bytes'))} -> {_kb(a.get('model_gzip_bytes'))} gzip")
    if s["gzip_ratio_int8_vs_source"]:
        click.echo(f"  ratio         {s['gzip_ratio_int8_vs_source']:.1f}x smaller (gzip int8 TFLite vs gzip source)")
    for note in report.notes:
        click.secho(f"  note          {note}", fg="yellow")


@click.command()
@click.argument("model", type=click.Path(dir_okay=True, file_okay=True, path_type=str))
@click.option("-r", "--recipe", required=True, metavar="NAME|FILE.yaml",
              help="A built-in recipe (prune-80, prune-2:4, slim-50, slim-50-bn, cluster-16, deep-compression, "
                   "qat-int8) or a recipe YAML file.")
@click.option("-d", "--data", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="Training data: .npz with x_train, y_train (x_val, y_val optional; else 10% is held out).")
@click.option("-o", "--out", required=True, type=click.Path(path_type=str),
              help="Folder for the compressed model and report.json / report.md (written atomically).")
@click.option("--flavor", type=click.Choice(["keras3", "tf_keras"]),
              help="Keras flavour to load an .h5 file with (default: tf_keras for .h5, so tfmot is used).")
@click.option("--unsafe", is_flag=True, help="Load .keras files with safe mode off (trusted files only).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars (also off when stderr is not a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def compress(model: str, recipe: str, data: str, out: str, flavor: str | None, unsafe: bool, quiet: bool,
             as_json: bool) -> None:
    """Compress MODEL (.keras or .h5) with a recipe, fine-tuning on --data; writes the model and a report.

    \b
    Examples:
      modelpress compress model.keras --recipe prune-80 --data train.npz --out build/pruned
      modelpress compress model.h5 --recipe deep-compression --data train.npz --out build/dc --json
      modelpress compress model.keras --recipe my-recipe.yaml --data train.npz --out build/mine
    """
    quiet_tensorflow()
    from modelpress.api.compress import compress as compress_model

    result = compress_model(model, recipe, data, out=out, flavor=flavor, quiet=quiet or as_json,
                            safe_mode=not unsafe)
    if as_json:
        click.echo(json.dumps({"model_path": str(result.model_path), **result.report.to_dict()}, indent=2))
    else:
        _print_report(result)


@click.command()
@click.argument("model", type=click.Path(exists=False, dir_okay=True, file_okay=True, path_type=str))
@click.option("-d", "--data", required=True, type=click.Path(dir_okay=False, path_type=str),
              help=".npz with x_val, y_val (or x_test/y_test, x/y, x_train/y_train).")
@click.option("--unsafe", is_flag=True, help="Load .keras files with safe mode off (trusted files only).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate(model: str, data: str, unsafe: bool, as_json: bool) -> None:
    """Top-1 accuracy of MODEL: a .keras / .h5 model, a .tflite file or a package from `modelpress convert`.

    \b
    Examples:
      modelpress evaluate build/pruned/model.keras --data train.npz
      modelpress evaluate build/rpi --data train.npz --json
    """
    quiet_tensorflow()
    from modelpress.api.compress import evaluate as evaluate_model

    result = evaluate_model(model, data, safe_mode=not unsafe)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    extra = f", {result['quantization']}" if result.get("quantization") else ""
    click.echo(f"{result['model']} ({result['kind']}{extra}): accuracy {result['accuracy']:.2%} on "
               f"{result['samples']} samples ({result['data']})")
    sys.stdout.flush()
