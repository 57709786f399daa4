"""``modelpress package``: argument parsing and printing only; the work is :func:`modelpress.api.package.package`."""

from __future__ import annotations

import json

import click

from modelpress.cli.convert import _size, _tensor
from modelpress.cli.main import quiet_tensorflow
from modelpress.cli.sign import sign_key_option


@click.command()
@click.argument("model", type=click.Path(dir_okay=True, file_okay=True, path_type=str))
@click.option("-o", "--out", required=True, type=click.Path(path_type=str),
              help="Folder to write the model package to (replaced atomically if it holds an older package).")
@click.option("--name", help="Model name in the manifest (default: the file's name).")
@click.option("--labels", type=click.Path(dir_okay=False, path_type=str),
              help="Text file with one class name a line, shipped in the package.")
@click.option("-p", "--profile", metavar="NAME|FILE",
              help="Check the model against a device profile (size, ops, I/O dtypes, format).")
@click.option("--verify-data", metavar="DATA",
              help="Inputs to run the model on: FILE.npy, or FILE.npz with one array per input name "
                   "(default: random values at the model's shapes).")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=DIMS",
              help="The shape to run an input with dynamic dimensions at, batch first (e.g. input=1x1280). "
                   "Repeatable.")
@click.option("--signature", help="The signature to serve, for a model with several (default: serving_default "
                                  "or the first).")
@click.option("--version", "version", default="1", show_default=True, help="Version recorded in the manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON instead of a report.")
@sign_key_option
def package(model: str, out: str, name: str | None, labels: str | None, profile: str | None,
            verify_data: str | None, input_shapes: tuple[str, ...], signature: str | None, version: str,
            as_json: bool, sign_key: str | None) -> None:
    """Wrap MODEL made elsewhere (.tflite file or SavedModel folder) into a verified model package.

    The manifest comes from the model itself (names, shapes, dtypes, quantization, ops); the model runs
    once, in a child process, and its latency is measured. `modelpress serve` also serves a bare
    model.tflite dropped in a version folder, with the same inferred manifest.

    \b
    Examples:
      modelpress package hey_jarvis.tflite --out build/jarvis --profile raspberry-pi-4
      modelpress package melspectrogram.tflite --out build/mel --input-shape input=1x1280
      modelpress package exported_savedmodel/ --out build/sm --verify-data inputs.npz
    """
    quiet_tensorflow()
    from modelpress.api.package import package as package_model

    artifact = package_model(model, out, name=name, labels=labels, profile=profile, verify_data=verify_data,
                             version=version, input_shapes=list(input_shapes), signature=signature,
                             sign_key=sign_key)
    m = artifact.manifest
    if as_json:
        click.echo(json.dumps({"path": str(artifact.path), **m.to_dict()}, indent=2))
        return
    click.secho(f"Wrote {artifact.path}", fg="green", bold=True)
    click.echo(f"  model         {m.name} ({m.model_format}, quantization {m.quantization}"
               + (", stateful" if m.stateful else "") + ")")
    if m.profile:
        click.echo(f"  profile       {m.profile.get('name')} ({m.profile.get('hardware')}): constraints met")
    click.echo(f"  size          {_size(artifact.size_bytes)} raw, {_size(artifact.gzip_bytes)} gzipped")
    for t in m.to_dict()["inputs"]:
        click.echo(f"  input         {_tensor(t)}")
    for t in m.to_dict()["outputs"]:
        click.echo(f"  output        {_tensor(t)}")
    latency = m.artifact.get("latency_ms") or {}
    if latency:
        click.echo(f"  latency       p50 {latency['p50_ms']:.3g} ms, p95 {latency['p95_ms']:.3g} ms (one row)")
    if m.ops:
        click.echo(f"  ops           {', '.join(sorted(set(m.ops)))}")
    for note in m.notes:
        click.secho(f"  note          {note}", fg="yellow")
