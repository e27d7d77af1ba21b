"""`bespoke cancel SWEEP|STUDY|RUN`: cancel a Slurm sweep's (a tune study's workers, or one run's) queued and
running tasks; the runs stay resumable (interrupted), and `bespoke sweep ... --slurm` (`bespoke tune`) again
resubmits (resumes) them."""

from __future__ import annotations

import click

from bespoke.cli.common import get_settings


@click.command()
@click.argument("target")
@click.option("--wait", default=120.0, show_default=True, type=float,
              help="Seconds to wait for the cancelled tasks to leave the queue.")
def cancel(target, wait):
    """Cancel through Slurm (scancel) the tasks of SWEEP (a sweep id, folder or prefix), of a tune STUDY (its
    workers) or of one RUN."""
    from rich.table import Table

    from bespoke.console import console
    from bespoke.run.slurm_sweep import cancel_runs
    from bespoke.tune.slurm import cancel_study

    settings = get_settings(click.get_current_context())
    cancelled = cancel_study(settings, target, wait=wait)
    if cancelled is not None:  # a study of `bespoke tune --slurm`: its workers
        console.print(f"cancelled {len(cancelled)} worker task(s) of study {target}: {' '.join(cancelled) or '-'}; "
                      "their trials' runs are interrupted and `bespoke tune` again resumes them", highlight=False)
        return
    rows = cancel_runs(settings, target, wait=wait)
    table = Table(title=f"cancel {target}")
    for column in ("run", "name", "slurm task", "status", "action"):
        table.add_column(column, no_wrap=column == "run")
    for row in rows:
        table.add_row(row.run_id, row.name or "-", row.slurm.job if row.slurm else "-", row.status, row.action)
    console.print(table)
    if any(row.action == "cancelled" for row in rows):
        console.print("resume with the same `bespoke sweep ... --slurm` command (or `bespoke train --run RUN`)")
