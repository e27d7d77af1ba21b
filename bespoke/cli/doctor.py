"""`bespoke doctor`: is this machine ready to train? Every problem comes with its fix."""

from __future__ import annotations

import json

import click

from bespoke.cli.common import get_settings
from bespoke.errors import BespokeError


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON on stdout.")
@click.pass_context
def doctor(ctx, as_json):
    """Is this machine ready to train? Checks sd-scripts, its Python, accelerate, torch/GPU, the optional trainer
    packages your presets and runs need (LyCORIS, DAdaptation, ...), base model, disk, keys, and preflights."""
    from bespoke.console import console, out
    from bespoke.run.doctor import run_checks

    checks = run_checks(get_settings(ctx))
    if as_json:
        click.echo(json.dumps([c.to_json() for c in checks], indent=2))
    report = console if as_json else out  # with --json, stdout carries the JSON alone
    style = {"ok": "green", "warning": "yellow", "error": "red", "info": "cyan"}
    for check in checks:
        report.print(f"[{style[check.level]}]{check.level:>7}[/] {check.name}: {check.message}", highlight=False)
        if check.fix and check.level in ("warning", "error"):
            report.print(f"          fix: {check.fix}", highlight=False, markup=False)
    errors = [c for c in checks if c.level == "error"]
    if errors:
        error = BespokeError(f"doctor found {len(errors)} problem(s); fix them as shown above")
        error.exit_code = 1
        raise error
    report.print("[green]ready to train[/]")
