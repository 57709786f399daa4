"""``modelpress convert`` and ``modelpress inspect``: argument parsing and printing only.

The work happens in :func:`modelpress.api.convert.convert`; this module turns options into its
arguments and its Artifact into a readable report (or JSON with ``--json``).
"""

from __future__ import annotations

import json
from typing import Any

import click

from modelpress.cli.main import quiet_tensorflow
from modelpress.cli.sign import sign_key_option
from modelpress.device_profiles import FORMATS, QUANTIZATIONS

IMAGE_SCALES = ("0..1", "-1..1", "0..255")


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.2f} MB"


def _tensor(t: Any) -> str:
    shape = "[" + ", ".join("None" if d < 0 else str(d) for d in t["shape"]) + "]"
    quant = f"  scale={t['scale']:.6g} zero_point={t['zero_point']}" if t.get("scale") else ""
    role = f"  ({t['role']})" if t.get("role") else ""
    return f"{t['name']}: {t['dtype']} {shape}{quant}{role}"


def _of_range(fid: dict[str, Any]) -> str:
    """`` (0.05% of its range)`` where the manifest has an output's range."""
    return "" if fid.get("scale") is None else f" ({fid.get('max_relative_error', 0.0):.3%} of its range)"


def _layer_precision(values: tuple[str, ...]) -> str | list[str] | None:
    """A single value without '=' is a YAML file; otherwise PATTERN=PRECISION options."""
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    return list(values) or None


def _print_tensor_errors(fid: dict[str, Any], count: int = 5) -> None:
    """The tensors LiteRT's quantizer's validation found most changed (lowest SNR first)."""
    stats = fid.get("tensors") or {}
    rows = [t for t in stats.get("tensors", []) if t["kind"] != "weight"][:count]
    if rows:
        click.echo(f"  per tensor    worst {len(rows)} of {stats.get('tensors_compared')} tensors vs float32 on "
                   f"{stats.get('samples')} samples (LiteRT's quantizer's validation):")
    for t in rows:
        snr = "-" if t["snr_db"] is None else f"{t['snr_db']:.1f} dB"
        click.echo(f"                {t['kind']:<10} SNR {snr:>9}  cosine {t['cosine']:.4f}  {t['tensor'][:70]}")


def _print_artifact(artifact) -> None:
    m = artifact.manifest
    fid = m.fidelity
    click.secho(f"Wrote {artifact.path}", fg="green", bold=True)
    click.echo(f"  profile       {m.profile.get('name')} ({m.profile.get('hardware')})")
    click.echo(f"  format        {m.model_format}, quantization {m.quantization}")
    click.echo(f"  size          {_size(artifact.size_bytes)} raw, {_size(artifact.gzip_bytes)} gzipped "
               f"(source {_size(m.source.get('bytes'))})")
    for t in m.to_dict()["inputs"]:
        click.echo(f"  input         {_tensor(t)}")
    for t in m.to_dict()["outputs"]:
        click.echo(f"  output        {_tensor(t)}")
    per_output = fid.get("outputs") or {}
    if len(per_output) > 1:
        for name, out in per_output.items():
            top1 = out.get("top1_agreement")
            click.echo(f"  fidelity of   {name}: " + ("" if top1 is None else f"top-1 agreement {top1:.2%}, ")
                       + f"max |err| {out.get('max_abs_error'):.3g}" + _of_range(out))
    agreement = fid.get("top1_agreement")
    agree_text = "-" if agreement is None else f"{agreement:.2%} (floor {fid.get('min_top1_agreement'):.0%})"
    click.echo(f"  fidelity      top-1 agreement {agree_text}, max |err| {fid.get('max_abs_error'):.3g}"
               f"{_of_range(fid)}, "
               f"mean |err| {fid.get('mean_abs_error'):.3g} on {fid.get('samples')} samples ({fid.get('data')})")
    _print_tensor_errors(fid, count=3)
    if m.ops:
        click.echo(f"  ops           {', '.join(sorted(set(m.ops)))}")
    for note in m.notes:
        click.secho(f"  note          {note}", fg="yellow")


@click.command()
@click.argument("model", type=click.Path(dir_okay=True, file_okay=True, path_type=str))
@click.option("-p", "--profile", required=True, metavar="NAME|FILE",
              help="Target device profile: a built-in name (see `modelpress profiles list`) or a YAML file.")
@click.option("-o", "--out", required=True, type=click.Path(path_type=str),
              help="Folder to write the model package to (replaced atomically if it holds an older package).")
@click.option("-c", "--calibration", metavar="DATA",
              help="Representative inputs for int8 / int16x8: FILE.npy, FILE.npz (x_calib, x_train, x, ...) or "
                   "an image folder. `random` is accepted with a warning and recorded in the manifest.")
@click.option("--verify-data", metavar="DATA",
              help="Inputs to verify the artifact on (default: the held-out half of --calibration).")
@click.option("-q", "--quantization", type=click.Choice(QUANTIZATIONS),
              help="Override the profile's quantization (none = float32; int4 = int4 weights, CPU and GPU profiles).")
@click.option("--layer-precision", "layer_precision", multiple=True, metavar="PATTERN=PRECISION|FILE",
              help="Per-layer precision by layer-name pattern (int8, int16x8, dynamic, int4, float), e.g. "
                   "conv1=int16x8 probs=float (repeatable; the rest takes --quantization, else int8), or a YAML "
                   "recipe with 'default:' and 'layers:'. CPU and GPU profiles (LiteRT's quantizer).")
@click.option("-f", "--format", "model_format", type=click.Choice(FORMATS),
              help="Override the profile's artifact format (must be one the profile allows).")
@click.option("--labels", type=click.Path(dir_okay=False, path_type=str),
              help="Text file with one class name a line, shipped in the package.")
@click.option("--name", help="Model name in the manifest (default: the model's own name).")
@click.option("--version", "version", default="1", show_default=True, help="Version recorded in the manifest.")
@click.option("--min-agreement", type=click.FloatRange(0.0, 1.0),
              help="Override the profile's minimum top-1 agreement with the source model.")
@click.option("--max-abs-error", type=click.FloatRange(min=0.0), metavar="BOUND",
              help="Your own bound on every output's max |error| against the source (output units, e.g. 1e-3), "
                   "replacing the profile's error bound.")
@click.option("--image-scale", type=click.Choice(IMAGE_SCALES), default="0..1", show_default=True,
              help="How pixels of an image-folder --calibration are scaled.")
@click.option("--unsafe", is_flag=True,
              help="Load .keras files with safe mode off (runs Lambda-layer code from the file; trusted files only).")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=DIMS",
              help="The shape the device runs an input at, batch first, e.g. spectrogram=1x40x256x1; needed for "
                   "dynamic dimensions other than the batch (unless the calibration data fixes them). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON instead of a report.")
@sign_key_option
def convert(model: str, profile: str, out: str, calibration: str | None, verify_data: str | None,
            quantization: str | None, model_format: str | None, labels: str | None, name: str | None,
            version: str, min_agreement: float | None, max_abs_error: float | None, image_scale: str, unsafe: bool,
            input_shapes: tuple[str, ...], layer_precision: tuple[str, ...], as_json: bool,
            sign_key: str | None) -> None:
    """Convert MODEL (.keras, .h5 or SavedModel folder) into a verified package for a device.

    The profile decides format, quantization and I/O types; the artifact is run against its source
    and rejected when it breaks the profile's size, op-set or fidelity limits.

    \b
    Examples:
      modelpress convert model.keras --profile server-cpu --out build/cpu
      modelpress convert model.keras --profile raspberry-pi-4 --calibration calib.npz --out build/rpi
      modelpress convert model.h5 --profile coral-edgetpu --calibration faces/ --image-scale -1..1 --out build/tpu
      modelpress convert model.keras --profile server-gpu --format saved_model --out build/gpu
      modelpress convert tempo.h5 --profile cortex-m --input-shape input=1x40x256x1 -c spec.npy --out build/mcu
      modelpress convert model.keras --profile server-cpu --quantization int4 --out build/int4
      modelpress convert model.keras -p raspberry-pi-4 -c calib.npy --layer-precision probs=float --out build/mixed
    """
    quiet_tensorflow()
    from modelpress.api.convert import convert as convert_model

    artifact = convert_model(
        model, profile, out, calibration=calibration, quantization=quantization, model_format=model_format,
        verify_data=verify_data, labels=labels, name=name, version=version, min_agreement=min_agreement,
        max_abs_error=max_abs_error, image_scale=image_scale, safe_mode=not unsafe, input_shapes=list(input_shapes),
        layer_precision=_layer_precision(layer_precision), sign_key=sign_key,
    )
    if as_json:
        click.echo(json.dumps({"path": str(artifact.path), **artifact.manifest.to_dict()}, indent=2))
    else:
        _print_artifact(artifact)


def _print_inspection(info: dict[str, Any]) -> None:
    model = info.get("model", {})
    click.secho(f"{info['path']}  ({info['kind']})", bold=True)
    manifest = info.get("manifest")
    if manifest:
        click.echo(f"  name          {manifest['name']} v{manifest['version']}, profile "
                   f"{manifest['profile'].get('name')}, created {manifest['created_at']}")
        fid = manifest.get("fidelity", {})
        if fid:
            click.echo(f"  fidelity      top-1 agreement {fid.get('top1_agreement')}, "
                       f"max |err| {fid.get('max_abs_error'):.3g} on {fid.get('samples')} samples")
            _print_tensor_errors(fid)
    signature = info.get("signature")
    if signature:
        verdict = {True: "verifies", False: "does NOT verify", None: "not verified"}[signature["verifies"]]
        click.secho(f"  signature     {signature['signer'] or 'none'} ({verdict}): {signature['reason']}",
                    fg="red" if signature["verifies"] is False else None)
    if "flavor" in model:
        click.echo(f"  flavour       {model['flavor']}")
    if "quantization" in model:
        click.echo(f"  quantization  {model['quantization']}")
    if "params" in model:
        click.echo(f"  parameters    {model['params']:,}")
    if "bytes" in model:
        click.echo(f"  size          {_size(model['bytes'])} raw, {_size(model.get('gzip_bytes'))} gzipped")
    for t in model.get("inputs", []):
        click.echo(f"  input         {_tensor(t)}")
    for t in model.get("outputs", []):
        click.echo(f"  output        {_tensor(t)}")
    ops = model.get("ops")
    if ops:
        click.echo("  ops           " + ", ".join(f"{op} x{n}" for op, n in sorted(ops.items())))
    if model.get("custom_ops"):
        click.secho(f"  custom ops    {', '.join(model['custom_ops'])}", fg="yellow")
    if "activation_bytes" in model:
        click.echo(f"  weights       {_size(model['weight_bytes'])}, largest activation "
                   f"{_size(model['activation_bytes'])}")
    _print_mcu((manifest or {}).get("mcu"), model.get("mcu_estimates"))
    for note in (manifest or {}).get("notes", []) + model.get("notes", []):
        click.secho(f"  note          {note}", fg="yellow")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def _print_mcu(mcu: dict[str, Any] | None, estimates: list[dict[str, Any]] | None) -> None:
    """Microcontroller figures: measured beside estimated for a package; estimates per profile for a file."""
    if mcu:
        est, arena, agree = mcu.get("estimate", {}), mcu.get("arena", {}), mcu.get("micro_agreement", {})
        firmware = mcu.get("c_sources", {}).get("arena_bytes")
        click.echo(f"  arena         {_size(arena.get('minimum_bytes'))} measured on TFLite Micro (estimate "
                   f"{_size(est.get('arena_bytes'))}); firmware uses {_size(firmware)}")
        click.echo(f"  flash         {_size(mcu.get('measured', {}).get('flash_bytes'))} (estimate "
                   f"{_size(est.get('flash_bytes'))})")
        click.echo(f"  speed         {_ms(est.get('inference_ms'))} estimated from {est.get('macs', 0):,} MACs "
                   f"at {est.get('macs_per_cycle')} MAC/cycle, {(est.get('clock_hz') or 0) / 1e6:.0f} MHz")
        click.echo(f"  TFLite Micro  within {agree.get('max_lsb')} LSB of LiteRT on {agree.get('samples')} samples")
        vela = mcu.get("vela")
        if vela:
            click.echo(f"  Vela          {vela['accelerator']}: {vela['npu_ops']} NPU / {vela['cpu_ops']} CPU ops, "
                       f"SRAM {_size(vela['sram_bytes'])}, flash {_size(vela['flash_bytes'])}, "
                       f"{vela['cycles']:,} cycles = {_ms(vela['inference_ms'])} (Vela's estimate)")
        click.echo(f"  C sources     {', '.join(mcu.get('c_sources', {}).get('files', []))}")
    for row in [] if mcu else estimates or []:
        fits = "fits" if row["fits_flash"] and row["fits_ram"] else "does NOT fit"
        click.echo(f"  estimate      {row['profile']:<14} flash {_size(row['flash_bytes'])}, arena >= "
                   f"{_size(row['arena_bytes'])}, {_ms(row['inference_ms'])} ({row['macs']:,} MACs; {fits})")


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a report.")
@click.option("--trust-key", "trust_keys", multiple=True, type=click.Path(dir_okay=False, path_type=str),
              help="Public key or CA certificate (PEM) to verify a package's signature with (repeatable).")
def inspect_cmd(path: str, as_json: bool, trust_keys: tuple[str, ...]) -> None:
    """Show signature, ops, sizes and quantization of a package, a .tflite file or a Keras model.

    \b
    Examples:
      modelpress inspect build/rpi            # a package made by `modelpress convert`
      modelpress inspect model.tflite --json
      modelpress inspect model.keras
    """
    quiet_tensorflow()
    from modelpress.api.convert import inspect

    info = inspect(path, trust_keys)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
    else:
        _print_inspection(info)
