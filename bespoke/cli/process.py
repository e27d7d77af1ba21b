"""`bespoke process RUN_OR_DIR`: 24 px candidates + colour metrics per sample; a per-epoch table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bespoke.cli.common import chosen_profile, profile_option, quiet_option, run_argument
from bespoke.errors import Interrupted, UsageError

if TYPE_CHECKING:
    from bespoke.review.records import ProcessReport


def _interval(interval: list[float] | None) -> str:
    return "-" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}"


def render_table(report: ProcessReport) -> None:
    """The per-epoch table: samples, the raw NEAREST colour count, the shown candidate's colours and moves,
    near copies, diversity, the score with its interval; the pick, the epochs tied with the highest and the
    rule stated."""
    from rich.table import Table

    from bespoke.console import console, out
    from bespoke.review.selection import describe_best, display_method

    best = report.best
    method = (best.method if best else None) or display_method(report.methods)
    title = "bespoke process" + (" (SIMULATED samples)" if report.simulated else "")
    table = Table(title=title, caption=f"raw colours = colors_nearest, the raw Pillow NEAREST downscale's count "
                                       f"(not a candidate); moved > tol = cells moved beyond delta E "
                                       f"{report.tolerance:g}; ~ = indistinguishable from the highest score")
    for name in ("epoch", "samples", "raw colours", "degenerate %"):
        table.add_column(name, justify="right")
    if method:
        table.add_column(f"{method}\ncolours", justify="right")
        table.add_column(f"{method}\nmoved > tol", justify="right")
    for name in ("near copies %", "diversity", "score", "95 % interval", ""):
        table.add_column(name, justify="right")
    tied = set(best.tied) if best else set()
    for row in report.epochs:
        epoch = row.epoch
        label = "?" if epoch is None else ("0 (before)" if epoch == 0 else str(epoch))
        cells = [label, str(row.samples), f"{row.colors_nearest_mean or 0:.1f}", f"{row.degenerate_pct or 0:.0f}"]
        if method:
            stats = row.methods.get(method)
            cells += [f"{(stats.colors_mean if stats else None) or 0:.1f}", str(stats.moved_beyond if stats else 0)]
        near = row.near_copy_pct
        mark = "pick" if best and epoch == best.epoch else ("~" if epoch in tied else "")
        cells += ["-" if near is None else f"{near:.0f}", f"{row.diversity:.2f}", f"{row.score.total:.3f}",
                  _interval(row.score.interval), mark]
        table.add_row(*cells, style="bold green" if mark == "pick" else None)
    out.print(table)
    if best:
        for line in describe_best(best):
            out.print(line, soft_wrap=True)
        out.print(f"rule: {best.rule}", soft_wrap=True)
    for error in report.errors:
        console.print(f"[yellow]skipped[/] {error.file}: {error.error}")


@click.command()
@click.argument("run_or_dir")
@click.option("--methods", default=None, help="Comma list of nearest,box,bilinear,lanczos,grid,grid-palette "
              "(default: nearest,grid; grid-palette is added when --palette is given).")
@click.option("--palette", default=None, help="dataset (the run's training palette), k:<N>, or a folder of 24 px PNGs.")
@click.option("--tolerance", type=float, default=None,
              help="How far (CIE76 delta E) grid/grid-palette may move a cell from the colour the model drew "
                   "(default 5; 0 = keep every drawn colour).")
@click.option("--training", default=None, help="Folder of the 24 px training images and their .txt captions: "
              "novelty, the training palette and the score's terms (a run uses its own prepared dataset).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Folder for the candidates and the report (default: the run's own; for any other folder "
                   "<folder>/bespoke_process/; needed when the samples' folder is read-only).")
@click.option("--workers", type=int, default=None,
              help="Worker processes (default: the CPUs this process may use: its CPU affinity, cgroup quota and "
                   "SLURM_CPUS_PER_TASK).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--force", is_flag=True, help="Process again even when the report is up to date for these options.")
@profile_option
@quiet_option
@click.pass_context
def process(ctx, run_or_dir, methods, palette, tolerance, training, out_dir, workers, force, as_json, profile_name,
            quiet):
    """24 px candidates per sample and method, report.json + report.csv, per-epoch table.

    RUN_OR_DIR is a run (folder, run id or unique id prefix), an sd-scripts output_dir (sample/ inside), or any
    folder of images (24 px pictures are their own candidates; a .txt beside an image is its prompt)."""
    from rich.markup import escape

    from bespoke.console import out
    from bespoke.review.process import process_path
    from bespoke.review.report import output_dirs
    from bespoke.review.request import DEFAULT_METHODS, ProcessOptions
    from bespoke.review.selection import rescored
    from bespoke.review.vote_agreement import check_lines
    from bespoke.review.votes import VOTES_FILE, read_votes
    from bespoke.review.voting import score_checks

    if workers is not None and workers < 1:
        raise UsageError(f"--workers {workers}: must be 1 or more")
    folder = Path(run_or_dir).expanduser()
    path = folder if folder.is_dir() else run_argument(ctx, run_or_dir)
    try:
        processed = process_path(path, ProcessOptions(methods=methods or DEFAULT_METHODS, palette=palette,
                                                      tolerance=tolerance, training=training, out=out_dir,
                                                      workers=workers, force=force))
    except KeyboardInterrupt:  # before its samples (reading the training set): process_path says the rest
        raise Interrupted("process interrupted; what it finished is kept: run the same command again") from None
    report = processed.report
    if as_json:
        click.echo(json.dumps({**report.to_json(), **({"reused": True} if processed.reused else {})}, indent=2))
        return
    if not quiet:
        profile = chosen_profile(ctx, profile_name)
        if profile is not None:  # report.json keeps the stated weights' score; the table shows the profile's
            report = rescored(report, profile.score_weights(), profile.name)
        render_table(report)
        done = "up to date, nothing rewritten (--force to redo)" if processed.reused else "processed"
        where = output_dirs(path, Path(out_dir).expanduser() if out_dir else None)
        out.print(f"{len(report.samples)} samples {done}, {len(report.errors)} skipped; "
                  f"report: {where[1] / 'report.json'}; candidates: {where[0]}", soft_wrap=True)
        run_id = report.run_id or path.name
        weights = profile.score_weights() if profile is not None else None
        for _, check in score_checks([(run_id, run_id, report)], read_votes(where[1] / VOTES_FILE), weights):
            for line in check_lines(check):
                out.print(escape(line), soft_wrap=True)
        out.print(f"next: bespoke review {path}", soft_wrap=True)
