"""`bespoke review RUN...`: HTML report + contact sheets + per-epoch tables for one run or a sweep."""

from __future__ import annotations

import json
import webbrowser
from pathlib import Path

import click

from bespoke.cli.common import get_settings, run_argument


def epoch_table(view):
    """A rich table of the per-epoch numbers of one run (best epoch marked)."""
    from rich.table import Table

    method = view.method or "-"
    best = (view.report.get("best") or {}).get("epoch")
    sim = " [bold white on red] SIMULATED [/]" if view.simulated else ""
    table = Table(title=f"{view.run_id}{sim}  candidates: {method}", title_justify="left")
    for name in ("epoch", "samples", "colours", "clean %", "cand colours", "cand clean %", "off-palette",
                 "grid err"):
        table.add_column(name, justify="right")

    def fmt(value, spec="{:.1f}"):
        return "-" if value is None else spec.format(value)

    for stats in view.report.get("epochs") or []:
        ms = ((stats.get("methods") or {}).get(view.method) or {}) if view.method else {}
        is_best = best is not None and stats.get("epoch") == best
        table.add_row(
            f"{stats.get('epoch', '?')}{' *' if is_best else ''}", str(stats.get("samples", "-")),
            fmt(stats.get("colors_nearest_mean")), fmt(stats.get("clean_pct"), "{:.0f}"),
            fmt(ms.get("colors_mean")), fmt(ms.get("clean_pct"), "{:.0f}"),
            fmt(ms.get("off_palette_mean"), "{:.1%}"), fmt(ms.get("grid_error_mean")),
            style="bold" if is_best else None,
        )
    if best is not None:
        table.caption = f"* best epoch {best} ({method}); colours = colors_nearest of the samples"
        table.caption_justify = "left"
    return table


@click.command()
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
    """Review runs: RUN is a run folder, a run id or a unique prefix of one.

    Runs whose report is missing or older than their samples are processed first.
    """
    from rich.markup import escape

    from bespoke.console import console
    from bespoke.review.build import best_rules, review_runs, summary

    settings = get_settings(ctx)
    run_dirs = [run_argument(ctx, arg) for arg in runs]
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
