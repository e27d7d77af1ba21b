"""`bespoke export RUN [--epoch N]`: the chosen candidates as PNG (x1 and xS), palette files, a sprite sheet and a
manifest."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bespoke.cli.common import chosen_profile, get_settings, profile_option
from bespoke.cli.review import review_argument


@click.command()
@click.argument("run")
@click.option("--epoch", type=int, help="Epoch to export (default: the run's best epoch; a folder of samples whose "
              "names carry no epoch is one set, epoch 0).")
@click.option("--method", help="Candidate method (default: the one the review shows: the report's best).")
@click.option("--scale", type=int, help="Integer upscale of the second PNG set and the sheet (nearest neighbour: "
              "each pixel an SxS block; default 8: 24 -> 192 px).")
@click.option("--columns", type=click.IntRange(1, 1000), help="Sprite sheet columns (default: a square-ish grid).")
@click.option("--out", "out_dir", type=click.Path(path_type=str),
              help="Folder to write (default: <run>/export/e<N>_<method>/). Must be new, empty or an earlier export.")
@click.option("--kept", is_flag=True, help="Export exactly the candidates marked keep on the vote page (`bespoke "
              "vote`), whatever their epoch (default folder: <run>/export/kept/).")
@click.option("--no-process", is_flag=True, help="Use the existing report as it is; never run `process` first.")
@click.option("--json", "as_json", is_flag=True, help="Print the export manifest as JSON on stdout.")
@profile_option
@click.pass_context
def export(ctx, run, epoch, method, scale, columns, out_dir, kept, no_process, as_json, profile_name):
    """Export RUN's candidates of one epoch for pixel-art tools: png/ (24 px), png_x<S>/, palette.gpl and
    palette.hex, sheet.png (+ sheet_x<S>.png) and manifest.json naming each image's sample, prompt and seed.

    RUN is a run folder, run id, unique prefix, or a folder of samples reviewed with `bespoke review`."""
    from rich.markup import escape

    from bespoke.console import out
    from bespoke.review.export import DEFAULT_SCALE, ExportOptions, export_run
    from bespoke.review.voting import kept_candidates

    get_settings(ctx)
    scale = DEFAULT_SCALE if scale is None else scale
    options = ExportOptions(scale=scale, columns=columns, out_dir=Path(out_dir).expanduser() if out_dir else None)
    path = review_argument(ctx, run)
    result = export_run(path, epoch=epoch, method=method, options=options, process=not no_process,
                        kept=kept_candidates(path) if kept else None, profile=chosen_profile(ctx, profile_name))
    if as_json:
        click.echo(json.dumps({"out_dir": str(result.out_dir), **result.manifest}, indent=2, ensure_ascii=False))
        return
    left = result.manifest["left_out"]
    what = "kept candidates" if result.epoch is None else f"epoch {result.epoch}"
    out.print(f"{what} ({result.method}): {result.images} images at x1 and x{scale}, "
              f"palette of {result.colours} colours (the {result.manifest['image_colours']} colours of the images, "
              f"near-identical ones merged), sprite sheet {result.manifest['columns']} columns"
              + (f"; {len(left)} left out ({escape(left[0]['reason'])}…)" if left else ""), soft_wrap=True)
    out.print(f"[bold]export:[/] {escape(str(result.out_dir))}", soft_wrap=True)
