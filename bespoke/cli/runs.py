"""`bespoke runs`: every run folder with its status, resolution, preset, epochs and best epoch. A run.json
that says `running` while no bespoke holds the run shows as `stale` with the epochs on disk."""

from __future__ import annotations

import json

import click

from bespoke.cli.common import get_settings, short_path

WIDE = 100  # terminal columns from which `runs` shows the resolution, preset, score and cost columns too


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON on stdout.")
@click.pass_context
def runs(ctx, as_json):
    """Every run folder: status, resolution, preset, epochs, best epoch and its score, cost, path."""
    from rich.markup import escape
    from rich.table import Table

    from bespoke.console import console, out
    from bespoke.pipeline.runs import runs_overview
    from bespoke.run.cost import usd

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
    # the score and the cost need the width too (80 columns hold run, status, epochs and best; --json has all)
    scores = wide and any(row.score is not None for row in rows)
    costs = wide and any(row.cost_usd is not None for row in rows)
    for column in ("res", "preset") * wide + ("epochs", "best") + ("score",) * scores + ("cost",) * costs:
        table.add_column(column, no_wrap=True)
    for row in rows:
        run = row.id + (f"\n[dim]{escape(row.label)}[/]" if row.label else "")
        status = row.status + (" [magenta](simulated)[/]" if row.simulated else "")
        if row.slurm:
            shown = (row.slurm.get("state"), row.slurm.get("node"), row.slurm.get("elapsed"))
            status += "\n[dim]" + " ".join(v for v in shown if v) + "[/]"
        table.add_row(run, status, *(str(row.resolution or "-"), row.preset or "-") * wide,
                      f"{row.epochs_done}/{row.epochs_total or '?'}",
                      str(row.best_epoch) + (" [dim](live)[/]" if row.best_from == "live" else "")
                      if row.best_epoch is not None else "-", *(_score(row),) * scores,
                      *(usd(row.cost_usd),) * costs)
    out.print(table)
    for row in rows:
        if row.stop_reason:
            console.print(f"{row.id}: stopped early: {row.stop_reason}", markup=False, highlight=False)


def _score(row) -> str:
    """'0.612' or, with an interval, '0.612 ±0.030' (half its width)."""
    if row.score is None:
        return "-"
    if row.score_low is not None and row.score_high is not None:
        return f"{row.score:.3f} ±{(row.score_high - row.score_low) / 2:.3f}"
    return f"{row.score:.3f}"
