"""`bespoke sweep`: several runs (a resolution list or a sweep TOML), one after another or one per GPU; skips
finished runs, continues past failures, ends with a comparison table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import click

from bespoke.cli.common import get_settings
from bespoke.errors import Interrupted, TrainerError


def comparison_table(rows):
    """The end-of-sweep table: run, status, epochs, time, final loss, best epoch and mean colours."""
    from rich.table import Table

    table = Table(title="sweep results")
    table.add_column("run", no_wrap=True)
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
        ("status", "left"), ("epochs", "right"), ("time", "right"), ("loss", "right"), ("best", "right"),
        ("colours", "right"))
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(
            row.run_id, "skipped" if row.skipped else row.status,
            f"{row.epochs_done}/{row.epochs_total or '?'}",
            f"{row.duration:.1f}s" if row.duration is not None else "-",
            f"{row.final_loss:.4f}" if row.final_loss is not None else "-",
            str(row.best_epoch) if row.best_epoch is not None else "-",
            f"{row.mean_colors:.1f}" if row.mean_colors is not None else "-",
        )
    return table


def rows_to_json(rows) -> list[dict]:
    """Rows as plain JSON data (for --json)."""
    return [{"run": r.run_id, "path": str(r.run_dir) if r.run_dir else None, "status": r.status,
             "skipped": r.skipped, "resolution": r.resolution, "preset": r.preset, "epochs_done": r.epochs_done,
             "epochs_total": r.epochs_total, "duration_s": r.duration, "final_loss": r.final_loss,
             "best_epoch": r.best_epoch, "mean_colors": r.mean_colors, "reason": r.reason, "gpu": r.gpu}
            for r in rows]


@click.command()
@click.option("-r", "--resolutions", help="Comma-separated resolutions (default 512,256,128,64).")
@click.option("--preset", help="Preset for runs that do not name one.")
@click.option("--sweep", "sweep_file", type=click.Path(path_type=str),
              help="Sweep TOML listing [[run]] tables (e.g. kohya_configs/sweep-resolutions.toml).")
@click.option("--dataset", help="Source punks folder or a dataset name (default: datasets/bespoke_punks).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override for every run (TOML syntax).")
@click.option("--gpus", help="Run one run per GPU at once, e.g. --gpus 0,1.")
@click.option("--shard", help="This machine's share i/n of the sweep (runs sorted by id, every n-th from the i-th).")
@click.option("--restart", is_flag=True, help="Start every selected run over (old outputs kept aside).")
@click.option("--process/--no-process", "process", default=True, show_default=True,
              help="Process each finished run's samples (colour metrics, best epoch) for the comparison table.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the final table.")
@click.option("--preflight/--no-preflight", default=True, show_default=True,
              help="Run `bespoke preflight` on every run (one probe) before launching any.")
@click.pass_context
def sweep(ctx, resolutions, preset, sweep_file, dataset, overrides, gpus, shard, restart, process, as_json, quiet,
          preflight):
    """Train several runs: skip finished ones, continue past failures, end with a comparison table."""
    from bespoke.console import console
    from bespoke.pipeline import process_sweep_rows
    from bespoke.run.sweep import run_sweep

    settings = get_settings(ctx)
    try:
        outcome = run_sweep(settings, console, resolutions=resolutions, preset=preset,
                            sweep_file=Path(sweep_file) if sweep_file else None,
                            dataset=dataset, overrides=tuple(overrides), gpus=gpus,
                            shard=shard, restart=restart, quiet=quiet, preflight=preflight)
        if process and not outcome.interrupted:
            process_sweep_rows(outcome.rows, console, quiet)
    except KeyboardInterrupt:
        raise Interrupted("sweep interrupted; run the same command again to resume where it stopped") from None
    if as_json:
        click.echo(json.dumps(rows_to_json(outcome.rows), indent=2))
    console.print(comparison_table(outcome.rows))
    if outcome.interrupted:
        raise Interrupted("sweep interrupted; run the same command again to resume where it stopped")
    bad = [r.run_id for r in outcome.rows if r.status not in ("finished",)]
    if bad:
        raise TrainerError(f"{len(bad)} of {len(outcome.rows)} runs did not finish: {', '.join(bad)} "
                           "(see each run's logs/train.log)")
