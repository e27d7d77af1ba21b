"""`bespoke runs`: every run folder with its status, resolution, preset, epochs and best epoch. A run.json
that says `running` while no bespoke holds the run shows as `stale` with the epochs on disk."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bespoke.cli.common import get_settings, short_path


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON on stdout.")
@click.pass_context
def runs(ctx, as_json):
    """Every run folder: status, resolution, preset, epochs, best epoch, path."""
    from rich.table import Table

    from bespoke.console import console, out
    from bespoke.pipeline import runs_overview
    from bespoke.run.manifest import load_manifest
    from bespoke.run.resume import live_status
    from bespoke.run.slurm_sweep import slurm_columns

    settings = get_settings(ctx)
    items = runs_overview(settings.outputs_dir)
    for item in items:  # a run whose bespoke is gone is `stale` (with its epochs on disk), never `running`
        if item["status"] == "running":
            item["status"], item["epochs_done"] = live_status(item["path"], load_manifest(item["path"]))
    extra = slurm_columns([Path(item["path"]) for item in items])  # name, and Slurm's view of submitted runs
    for item in items:
        item.update(extra.get(item["id"], {"name": None, "label": None, "slurm": None}))
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        console.print(f"no runs in {settings.outputs_dir} (start one with `bespoke train -r 512`)")
        return
    table = Table(title=f"runs in {short_path(settings.outputs_dir)}")
    # every run folder is <outputs>/<run id> (the title says where); --json has the full paths
    table.add_column("run", no_wrap=True)
    named, on_slurm = any(i["name"] for i in items), any(i["slurm"] for i in items)
    for column in ("name",) * named + ("status",) + ("slurm",) * on_slurm + (
            "res", "preset", "epochs", "best"):
        table.add_column(column)
    for item in items:
        status = item["status"] + (" [magenta](simulated)[/]" if item["simulated"] else "")
        slurm = item["slurm"]
        where = " ".join(v for v in (slurm["state"], slurm["node"], slurm["elapsed"]) if v) if slurm else "-"
        table.add_row(item["id"], *[item["label"] or "-"] * named, status, *[where] * on_slurm,
                      str(item["resolution"] or "-"), item["preset"] or "-",
                      f"{item['epochs_done']}/{item['epochs_total'] or '?'}",
                      str(item["best_epoch"]) if item["best_epoch"] is not None else "-")
    out.print(table)
