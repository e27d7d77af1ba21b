"""`bespoke preflight RUN…`: would the installed sd-scripts train these runs on this box? Its own code, up to
the model load; a table of stages (stdout), each problem with the trainer's message and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bespoke.cli.common import get_settings, run_argument

STYLE = {"PASS": "green", "FAIL": "red", "NEEDS-HARDWARE": "yellow", "SKIPPED": "dim"}


SHORT = {"PASS": "ok", "FAIL": "X", "NEEDS-HARDWARE": "hw", "SKIPPED": "-"}
LEGEND = "ok = PASS, X = FAIL (the trainer would stop), hw = NEEDS-HARDWARE this box lacks, - = skipped"


def stage_table(report, title: str = "preflight"):
    """One run: its stages with status and message. Several: runs x stages, short statuses (see LEGEND)."""
    from rich.table import Table

    from bespoke.kohya.preflight import STAGE_NAMES

    table = Table(title=title)
    if len(report.runs) == 1 and not report.runs[0].error:
        for column in ("stage", "status", "message"):
            table.add_column(column, no_wrap=column != "message")
        for stage in report.runs[0].stages:
            table.add_row(stage.name, f"[{STYLE.get(stage.status, '')}]{stage.status}[/]", stage.message)
        return table
    table.add_column("run", no_wrap=True)
    for index, _ in enumerate(STAGE_NAMES, 1):
        table.add_column(str(index), justify="center")
    for run in report.runs:
        by_name = {s.name: s for s in run.stages}
        cells = [f"[{STYLE.get(by_name[n].status, '')}]{SHORT.get(by_name[n].status, '?')}[/]" if n in by_name else
                 ("[red]ERROR[/]" if run.error else "-") for n in STAGE_NAMES]
        table.add_row(Path(run.run).name, *cells)
    table.caption = "stages: " + ", ".join(f"{i} {n}" for i, n in enumerate(STAGE_NAMES, 1)) + ". " + LEGEND
    return table


def render_problems(report, console) -> None:
    """Each stage that would stop the trainer: the trainer's message and the fix (on stderr)."""
    from rich.markup import escape

    for run in report.runs:
        if run.error:
            console.print(f"[red]{escape(Path(run.run).name)}[/]: {escape(run.error)}", soft_wrap=True)
        for stage in run.problems:
            console.print(f"[{STYLE[stage.status]}]{escape(Path(run.run).name)} {stage.name} {stage.status}[/]: "
                          f"{escape(stage.message)}", soft_wrap=True)
            if stage.fix:
                console.print(f"    fix: {escape(stage.fix)}", soft_wrap=True)


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the stages as JSON on stdout instead of the table.")
@click.pass_context
def preflight(ctx, runs, as_json):
    """Run the installed sd-scripts' own checks on RUN's exact configs, in the trainer's Python, up to the model
    load: arguments, tokenizer, dataset, buckets, data loader, optimizer, attention, mixed precision, sample
    prompts, network module. Exit 0 when every stage passes, 7 when one FAILs or NEEDS-HARDWARE this box
    lacks, 5 when the probe cannot run in the trainer's Python."""
    from rich.console import Console

    from bespoke.console import console
    from bespoke.errors import PreflightError, TrainerError
    from bespoke.run.preflight import preflight_runs

    settings = get_settings(ctx)
    folders = [run_argument(ctx, run) for run in runs]
    console.print(f"preflight of {len(folders)} run(s) in {settings.trainer_python} (imports sd-scripts once)...")
    report = preflight_runs(settings, folders)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        Console(highlight=False).print(stage_table(report, f"preflight ({report.seconds:.1f} s)"))
    render_problems(report, console)
    broken = [r for r in report.runs if r.error]
    if broken:
        raise TrainerError(f"the preflight probe could not run: {broken[0].error}")
    bad = [r for r in report.runs if not r.ok]
    if bad:
        raise PreflightError(f"{len(bad)} of {len(report.runs)} run(s) would not train on this box; "
                             "fix them as shown above")
    console.print("[green]every stage passed[/]")
