"""``modelpress report``: JSON results of a run rendered as Markdown and HTML with plots."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md, report.html and the PNGs (default: RUN_DIR/report).")
def report(run_dir: Path, out: Path | None) -> None:
    """Render RUN_DIR's results (demo, compress, deploy) as Markdown and HTML with plots.

    Plots: size vs accuracy, latency vs accuracy, and per-layer sparsity for each compression report.

    \b
    Examples:
      modelpress report runs/demo
      modelpress deploy model.keras -p server-cpu -r repo --json > runs/d1/deploy.json && modelpress report runs/d1
    """
    from modelpress.report import render_report

    paths = render_report(run_dir, out)
    click.echo(f"Wrote {paths.html}")
    click.echo(f"      {paths.markdown}")
    for image in paths.images:
        click.echo(f"      {image}")
