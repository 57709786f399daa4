"""``modelpress demo``: the main job on the built-in example (see :mod:`modelpress.demo.trip`)."""

from __future__ import annotations

from pathlib import Path

import click

from modelpress.cli.main import quiet_tensorflow
from modelpress.demo.trip import DEFAULT_PROFILES, DEFAULT_RECIPES


@click.command()
@click.option("-o", "--out", default="runs/demo", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the trained model, the artifacts and results.json.")
@click.option("-p", "--profile", "profiles", multiple=True, metavar="NAME",
              help=f"Device profile to convert for (repeatable; default: {', '.join(DEFAULT_PROFILES)}).")
@click.option("-r", "--recipe", "recipes", multiple=True, metavar="NAME",
              help=f"Compression recipe to compare (repeatable; default: {', '.join(DEFAULT_RECIPES)}; "
                   "`none` for none).")
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(1, 200),
              help="Training epochs for the example CNN.")
@click.option("--quick", is_flag=True, help="A reduced run (3 epochs, few timing runs) to check the set-up.")
def demo(out: Path, profiles: tuple[str, ...], recipes: tuple[str, ...], epochs: int, quick: bool) -> None:
    """Run the whole trip on the built-in example and print a comparison table.

    Trains a small CNN on scikit-learn's real 8x8 digits (seeded, well under a minute on 2 cores),
    compresses it with two recipes, converts every variant for several device profiles, verifies every
    artifact, prints one table (size, accuracy, agreement with the source, single-sample latency), writes
    an HTML report, then serves one artifact and asks it through TF Serving v1 and Open Inference v2.

    \b
    Examples:
      modelpress demo
      modelpress demo --profile coral-edgetpu --profile cortex-m --recipe deep-compression --out runs/mcu
    """
    quiet_tensorflow()
    from modelpress.demo.trip import TripOptions, run_trip

    chosen = tuple(r for r in recipes if r != "none") if recipes else DEFAULT_RECIPES
    options = TripOptions(out=out, profiles=profiles or DEFAULT_PROFILES, recipes=chosen, epochs=epochs, quick=quick)
    run_trip(options, echo=click.echo)
