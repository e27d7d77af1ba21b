"""`bespoke review RUN...`: HTML report + contact sheets + per-epoch tables for one run or a sweep."""

from __future__ import annotations

import click


@click.command("review")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str),
              help="Folder for index.html (default: <run>/report/ for one run, review-<hash>/ beside several).")
@click.option("--method", help="Candidate method to show (default: the report's best, else grid).")
@click.option("--open", "open_browser", is_flag=True, help="Open the report in your web browser.")
@click.option("--no-process", is_flag=True, help="Use existing reports as they are; never run `process` first.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or tables.")
@click.pass_context
def review(ctx, runs, out_dir, method, open_browser, no_process, as_json, quiet):
    """Review runs: RUN is a run folder or a run id under the outputs folder.

    Runs whose report is missing or older than their samples are processed first.
    """
    import json
    import webbrowser
    from pathlib import Path

    from rich.markup import escape

    from bespoke.cli import get_settings
    from bespoke.console import console
    from bespoke.review.build import best_rules, epoch_table, resolve_run, review_runs, summary

    settings = get_settings(ctx)
    run_dirs = [resolve_run(arg, settings.outputs_dir) for arg in runs]
    result = review_runs(run_dirs, out_dir=Path(out_dir) if out_dir else None, method=method,
                         outputs_dir=settings.outputs_dir, process=not no_process, progress=not quiet)
    if not quiet:
        for view in result.views:
            console.print(epoch_table(view))
        for rule in best_rules(result.views):
            console.print(f"[dim]best-epoch rule: {rule}[/]")
        if any(v.simulated for v in result.views):
            console.print("[bold white on red] SIMULATED [/] samples made by bespoke's simulator; no model was trained.")
        for run_id, sheets in result.sheets.items():
            for sheet in sheets:
                console.print(escape(f"contact sheet ({run_id}): {sheet}"), soft_wrap=True)
    console.print(f"[bold]report:[/] {escape(str(result.html))}", soft_wrap=True)
    if as_json:
        click.echo(json.dumps(summary(result), indent=2))
    if open_browser:
        webbrowser.open(result.html.resolve().as_uri())


def register(main):
    main.add_command(review)
