"""``modelpress demo``: the main job on the built-in example (see :mod:`modelpress.demo.trip`)."""

from __future__ import annotations

from pathlib import Path

import click

from modelpress.cli.main import quiet_tensorflow
from modelpress.demo.trip import DEFAULT_PROFILES


@click.command()
@click.option("-o", "--out", default="runs/demo", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the trained model, the artifacts and results.json.")
@click.option("-p", "--profile", "profiles", multiple=True, metavar="NAME",
              help=f"Device profile to convert for (repeatable; default: {', '.join(DEFAULT_PROFILES)}).")
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(1, 200),
              help="Training epochs for the example CNN.")
@click.option("--quick", is_flag=True, help="A reduced run (3 epochs, few timing runs) to check the set-up.")
def demo(out: Path, profiles: tuple[str, ...], epochs: int, quick: bool) -> None:
    """Run the whole trip on the built-in example and print a comparison table.

    Trains a small CNN on scikit-learn's real 8x8 digits (seeded, well under a minute on 2 cores),
    converts it for several device profiles, verifies every artifact and compares size, accuracy,
    agreement with the source and single-sample latency.

    \b
    Examples:
      modelpress demo
      modelpress demo --profile coral-edgetpu --profile cortex-m --out runs/mcu
    """
    quiet_tensorflow()
    from modelpress.demo.trip import TripOptions, run_trip

    options = TripOptions(out=out, profiles=profiles or DEFAULT_PROFILES, epochs=epochs, quick=quick)
    run_trip(options, echo=click.echo)
