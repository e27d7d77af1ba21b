"""`bespoke review RUN...`: HTML report + contact sheets + per-epoch tables for one run or a sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bespoke.cli.common import chosen_profile, get_settings, profile_option, quiet_option, run_argument

if TYPE_CHECKING:
    from rich.table import Table

    from bespoke.review.html_data import RunView


def epoch_table(view: RunView) -> Table:
    """A rich table of the per-epoch numbers of one run (best epoch marked)."""
    from rich.table import Table

    method = view.method or "-"
    best = view.report.best.epoch if view.report.best is not None else None
    tied = set(view.report.best.tied) if view.report.best is not None else set()
    sim = " [bold white on red] SIMULATED [/]" if view.simulated else ""
    name = f" ({view.name})" if view.name else ""
    table = Table(title=f"{view.run_id}{name}{sim}  candidates: {method}", title_justify="left")
    for column in ("epoch", "samples", "raw colours", "degenerate %", "cand colours", "moved > tol", "off-palette",
                   "near copies %", "diversity", "score", "95 % interval"):
        table.add_column(column, justify="right")

    def fmt(value, spec="{:.1f}"):
        return "-" if value is None else spec.format(value)

    for stats in view.report.epochs:
        ms = stats.methods.get(view.method) if view.method else None
        is_best = best is not None and stats.epoch == best
        mark = " *" if is_best else (" ~" if stats.epoch in tied else "")
        interval = stats.score.interval
        table.add_row(
            f"{'?' if stats.epoch is None else stats.epoch}{mark}",
            str(stats.samples), fmt(stats.colors_nearest_mean), fmt(stats.degenerate_pct, "{:.0f}"),
            fmt(ms.colors_mean if ms else None), fmt(ms.moved_beyond if ms else None, "{}"),
            fmt(ms.off_palette_mean if ms else None, "{:.1%}"), fmt(stats.near_copy_pct, "{:.0f}"),
            fmt(stats.diversity, "{:.2f}"), fmt(stats.score.total, "{:.3f}"),
            "-" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}",
            style="bold" if is_best else None,
        )
    if best is not None:
        table.caption = (f"* the pick, epoch {best}; ~ indistinguishable from the highest score (README: "
                         "Candidates and the best epoch); raw colours = colors_nearest, the plain NEAREST "
                         "downscale's count (compare with 216.6), not a candidate's")
        table.caption_justify = "left"
    return table


def print_score_checks(views, request, profile, results) -> None:
    """The score (under `profile`, else the stated weights) against the votes of each run that has some."""
    from rich.markup import escape

    from bespoke.review.vote_agreement import check_lines
    from bespoke.review.voting import gather_votes, score_checks

    weights = profile.score_weights() if profile is not None else None
    runs = [(v.label, v.run_id, v.report) for v in views]
    for label, check in score_checks(runs, gather_votes(request), weights):
        for line in check_lines(check):
            results.print(escape(line) if line.startswith(" ") else f"{escape(label)}: {escape(line)}",
                          soft_wrap=True)


def review_argument(ctx, arg: str) -> Path:
    """A REVIEW argument: a folder of sample images (or its bespoke_process/ output) as it is, else a run."""
    from bespoke.review.build import plain_folder

    folder = Path(arg).expanduser()
    if plain_folder(folder) is not None:
        return folder
    return run_argument(ctx, arg)


def open_report(html: Path, echo) -> None:
    """Open the report in a browser; say where it is when this machine has none (a headless box)."""
    import webbrowser

    try:
        opened = webbrowser.open(html.resolve().as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        echo(f"no web browser here: copy {html.parent} to a machine with one and open {html.name} "
             f"(e.g. scp -r host:{html.parent} .)")


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str),
              help="Folder for index.html and its images (default: <run>/report/ for one run, "
                   "<folder>/bespoke_process/report/ for a folder of samples, review-<hash>/ beside several).")
@click.option("--method", help="Candidate method to show (default: the report's best, else grid).")
@click.option("--single-file", is_flag=True, help="Also inline every image into one review.html to mail or attach.")
@click.option("--open", "open_browser", is_flag=True, help="Open the report in your web browser.")
@click.option("--no-process", is_flag=True, help="Use existing reports as they are; never run `process` first.")
@click.option("--training", default=None, help="For a folder that is not a run: the 24 px training images and "
              "their .txt captions to score against (a run uses its own dataset).")
@click.option("--palette", default=None, help="grid-palette's palette when processing: dataset, k:<N> or a "
              "folder of 24 px PNGs (the score never depends on it).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout (and nothing else there).")
@profile_option
@quiet_option
@click.pass_context
def review(ctx, runs, out_dir, method, single_file, open_browser, no_process, training, palette, as_json,
           profile_name, quiet):
    """Review runs: RUN is a run folder, a run id, a unique prefix of one, an sd-scripts output_dir, or any
    folder of sample images (24 px pictures are their own candidates).

    Runs (and folders) whose report is missing or older than their samples are processed first; one folder
    reviewed with --out has its results written there (a read-only folder needs it). The report folder holds
    the page and every image it shows: copy it alone.
    """
    from rich.markup import escape

    from bespoke.console import console, out
    from bespoke.review.build import Inputs, best_rules, review_runs, summary
    from bespoke.review.selection import describe_best
    from bespoke.review.voting import VoteRequest

    settings = get_settings(ctx)
    run_dirs = [review_argument(ctx, arg) for arg in runs]
    profile = chosen_profile(ctx, profile_name)
    result = review_runs(run_dirs, out_dir=Path(out_dir) if out_dir else None, method=method,
                         outputs_dir=settings.outputs_dir, process=not no_process, single_file=single_file,
                         inputs=Inputs(training=training, palette=palette, profile=profile))
    results = console if as_json else out  # with --json, stdout carries the JSON alone
    if not quiet:
        for view in result.views:
            results.print(epoch_table(view))
            if view.report.best is not None:
                for line in describe_best(view.report.best):
                    results.print(escape(line), soft_wrap=True)
        for rule in best_rules(result.views):
            console.print(f"[dim]best-epoch rule: {escape(rule)}[/]")
        print_score_checks(result.views, VoteRequest(tuple(run_dirs), out_dir=Path(out_dir) if out_dir else None,
                                                     outputs_dir=settings.outputs_dir), profile, results)
        if any(v.simulated for v in result.views):
            console.print("[bold white on red] SIMULATED [/] samples made by bespoke's simulator; no model was trained.")
        for run_id, sheets in result.sheets.items():
            for sheet in sheets:
                console.print(escape(f"contact sheet ({run_id}): {sheet}"), soft_wrap=True)
    results.print(f"[bold]report:[/] {escape(str(result.html))}", soft_wrap=True)
    if result.single_file:
        results.print(f"[bold]single file:[/] {escape(str(result.single_file))}", soft_wrap=True)
    if as_json:
        click.echo(json.dumps(summary(result), indent=2))
    if open_browser:
        open_report(result.html, lambda text: console.print(escape(text), soft_wrap=True))
