"""`bespoke runs`: every run folder with its status, resolution, preset, epochs and best epoch. A run.json
that says `running` while no bespoke holds the run shows as `stale` with the epochs on disk."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bespoke.cli.common import get_settings, short_path

WIDE = 100  # terminal columns from which `runs` shows the resolution and preset columns too


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON on stdout.")
@click.pass_context
def runs(ctx, as_json):
    """Every run folder: status, resolution, preset, epochs, best epoch, path."""
    from rich.markup import escape
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
    # every run folder is <outputs>/<run id> (the title says where); --json has the full paths. A run's name goes
    # under its id and Slurm's view under its status, so nothing wraps mid-word; the run id starts with the
    # resolution and preset, so a terminal under WIDE columns leaves those two columns out.
    named, on_slurm = any(i["name"] for i in items), any(i["slurm"] for i in items)
    wide = out.width >= WIDE
    table.add_column("run · name" if named else "run", no_wrap=True)
    table.add_column("status · slurm" if on_slurm else "status", no_wrap=True)
    for column in ("res", "preset") * wide + ("epochs", "best"):
        table.add_column(column, no_wrap=True)
    for item in items:
        run = item["id"] + (f"\n[dim]{escape(item['label'])}[/]" if item["label"] else "")
        status = item["status"] + (" [magenta](simulated)[/]" if item["simulated"] else "")
        slurm = item["slurm"]
        if slurm:
            status += "\n[dim]" + " ".join(v for v in (slurm["state"], slurm["node"], slurm["elapsed"]) if v) + "[/]"
        table.add_row(run, status, *(str(item["resolution"] or "-"), item["preset"] or "-") * wide,
                      f"{item['epochs_done']}/{item['epochs_total'] or '?'}",
                      str(item["best_epoch"]) if item["best_epoch"] is not None else "-")
    out.print(table)
