"""``modelpress profiles``: list, show and validate device profiles."""

from __future__ import annotations

import json

import click
import yaml

from modelpress.device_profiles import builtin_profiles, load_profile, load_profile_file


def _mb(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1024:.0f} KB" if value < 1024 * 1024 else f"{value / 1024 / 1024:.0f} MB"


@click.group()
def profiles() -> None:
    """Device profiles: what each target demands of an artifact.

    \b
    Examples:
      modelpress profiles list
      modelpress profiles show coral-edgetpu
      modelpress profiles validate my-board.yaml
    """


@profiles.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(as_json: bool) -> None:
    """List the built-in device profiles."""
    items = builtin_profiles()
    if as_json:
        click.echo(json.dumps([p.get_config() for p in items], indent=2))
        return
    header = f"{'name':<16} {'hardware':<8} {'formats':<20} {'quant':<8} {'I/O':<14} {'flash':>7}  description"
    click.echo(header)
    click.echo("-" * len(header))
    for p in items:
        io = f"{p.input_dtype}/{p.output_dtype}"
        click.echo(f"{p.name:<16} {p.hardware:<8} {','.join(p.formats):<20} {p.quantization:<8} {io:<14} "
                   f"{_mb(p.max_artifact_bytes):>7}  {p.description}")


@profiles.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def show(name: str, as_json: bool) -> None:
    """Show one profile (a built-in NAME or a YAML file path) in full."""
    config = load_profile(name).get_config()
    click.echo(json.dumps(config, indent=2) if as_json else yaml.safe_dump(config, sort_keys=False).rstrip())


@profiles.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file: str) -> None:
    """Check a profile YAML FILE; exits non-zero with the bad field named."""
    profile = load_profile_file(file)
    click.echo(f"{file}: valid profile {profile.name!r} ({profile.hardware}, {profile.quantization})")
