"""`bespoke runs`: every run folder with its status, resolution, preset, epochs and best epoch. A run.json
that says `running` while no bespoke holds the run shows as `stale` with the epochs on disk."""

from __future__ import annotations

import json

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
    from bespoke.pipeline.runs import runs_overview

    settings = get_settings(ctx)
    rows = runs_overview(settings.outputs_dir)
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], indent=2))
        return
    if not rows:
        console.print(f"no runs in {settings.outputs_dir} (start one with `bespoke train -r 512`)")
        return
    table = Table(title=f"runs in {short_path(settings.outputs_dir)}")
    # every run folder is <outputs>/<run id> (the title says where); --json has the full paths. A run's name goes
    # under its id and Slurm's view under its status, so nothing wraps mid-word; the run id starts with the
    # resolution and preset, so a terminal under WIDE columns leaves those two columns out.
    named, on_slurm = any(row.name for row in rows), any(row.slurm for row in rows)
    wide = out.width >= WIDE
    table.add_column("run · name" if named else "run", no_wrap=True)
    table.add_column("status · slurm" if on_slurm else "status", no_wrap=True)
    for column in ("res", "preset") * wide + ("epochs", "best"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        run = row.id + (f"\n[dim]{escape(row.label)}[/]" if row.label else "")
        status = row.status + (" [magenta](simulated)[/]" if row.simulated else "")
        if row.slurm:
            shown = (row.slurm.get("state"), row.slurm.get("node"), row.slurm.get("elapsed"))
            status += "\n[dim]" + " ".join(v for v in shown if v) + "[/]"
        table.add_row(run, status, *(str(row.resolution or "-"), row.preset or "-") * wide,
                      f"{row.epochs_done}/{row.epochs_total or '?'}",
                      str(row.best_epoch) if row.best_epoch is not None else "-")
    out.print(table)
