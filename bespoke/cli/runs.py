"""`bespoke runs`: every run folder with its status, resolution, preset, epochs and best epoch. A run.json
that says `running` while no bespoke holds the run shows as `stale` with the epochs on disk."""

from __future__ import annotations

import json

import click

from bespoke.cli.common import get_settings, short_path


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON on stdout.")
@click.pass_context
def runs(ctx, as_json):
    """Every run folder: status, resolution, preset, epochs, best epoch, path."""
    from rich.table import Table

    from bespoke.console import console
    from bespoke.pipeline import runs_overview
    from bespoke.run.manifest import load_manifest
    from bespoke.run.resume import live_status

    settings = get_settings(ctx)
    items = runs_overview(settings.outputs_dir)
    for item in items:  # a run whose bespoke is gone is `stale` (with its epochs on disk), never `running`
        if item["status"] == "running":
            item["status"], item["epochs_done"] = live_status(item["path"], load_manifest(item["path"]))
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        console.print(f"no runs in {settings.outputs_dir} (start one with `bespoke train -r 512`)")
        return
    table = Table(title=f"runs in {short_path(settings.outputs_dir)}")
    # every run folder is <outputs>/<run id> (the title says where); --json has the full paths
    table.add_column("run", no_wrap=True)
    for column in ("status", "res", "preset", "epochs", "best"):
        table.add_column(column)
    for item in items:
        status = item["status"] + (" [magenta](simulated)[/]" if item["simulated"] else "")
        table.add_row(item["id"], status, str(item["resolution"] or "-"), item["preset"] or "-",
                      f"{item['epochs_done']}/{item['epochs_total'] or '?'}",
                      str(item["best_epoch"]) if item["best_epoch"] is not None else "-")
    console.print(table)
