"""`bespoke prepare DATASET -r R`: validated, cached training images at R px, and a report of what was done."""

from __future__ import annotations

import json

import click

from bespoke.cli.common import dataset_argument, get_settings, quiet_option


def _parse_resolutions(values: tuple[str, ...]) -> list[int]:
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                number = int(part)
            except ValueError:
                raise click.BadParameter(f"{part!r} is not a number (e.g. -r 512 or -r 512,256)",
                                         param_hint="-r/--resolution") from None
            if number not in out:
                out.append(number)
    return out or [512]


def _summary(prepared) -> dict:
    report = prepared.report
    return {
        "resolution": prepared.resolution,
        "dir": str(prepared.dir),
        "sha256": prepared.sha256,
        "cached": prepared.cached,
        "source": str(prepared.source),
        "layout": prepared.layout.to_json(),
        "background": report["background"],
        "trigger": report["trigger"],
        "summary": report["summary"],
        "caption_stats": report["caption_stats"],
        "warnings": report["warnings"],
        "report": str(prepared.dir / "prepare.json"),
    }


def _render(prepared_list, console) -> None:
    from rich.table import Table

    first = prepared_list[0].report
    summary, stats = first["summary"], first["caption_stats"]
    colours = summary["colors"]
    table = Table(title=f"prepared {prepared_list[0].source}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    modes = ", ".join(f"{mode} {count}" for mode, count in summary["modes"].items())
    table.add_row("images", f"{summary['images']} ({modes})")
    table.add_row(
        "alpha",
        f"{summary['with_alpha']} with alpha, {summary['alpha_all_opaque']} fully opaque, "
        f"{summary['composited']} composited ({summary['transparent_pixels']} transparent px); "
        f"background {first['background']}",
    )
    table.add_row("colours", f"min {colours['min']} / median {colours['median']:g} / max {colours['max']} per image; "
                             f"palette {summary['palette_size']}")
    table.add_row(
        "captions",
        f"{stats['chars']['min']}-{stats['chars']['max']} chars (mean {stats['chars']['mean']}), "
        f"{stats['tags']['min']}-{stats['tags']['max']} tags, ~{stats['tokens_approx']['mean']} tokens mean, "
        f"{stats['over_75_tokens']} over 75" + (f", trigger {first['trigger']!r} added to {stats['trigger_added']}"
                                                if first["trigger"] else ""),
    )
    for prepared in prepared_list:
        state = "[green]cached[/]" if prepared.cached else "[cyan]new[/]"
        table.add_row(f"{prepared.resolution} px", f"{prepared.layout.describe()}\n{prepared.dir} ({state})")
    console.print(table)
    warnings = []
    for prepared in prepared_list:
        for warning in prepared.report["warnings"]:
            if warning not in warnings:
                warnings.append(warning)
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")


@click.command("prepare")
@click.argument("dataset")
@click.option("-r", "--resolution", "resolutions", multiple=True, metavar="R",
              help="Training size in px: 512, 256, 128 or 64 (repeat or comma-separate for several; default 512).")
@click.option("--layout", type=click.Choice(["stretch", "pad"]), default="stretch", show_default=True,
              help="stretch: NEAREST 24->R like the baseline (uneven cells); pad: integer cells, centred, border-coloured margin.")
@click.option("--background", default="auto", show_default=True, metavar="COLOR",
              help="Colour under transparent pixels: auto (each image's border colour, else white), #rrggbb or a name.")
@click.option("--trigger", metavar="TEXT", help='Prepend "TEXT, " to every caption that does not start with it.')
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@quiet_option
@click.pass_context
def prepare(ctx, dataset, resolutions, layout, background, trigger, as_json, quiet):
    """Validate DATASET (a folder or a name under datasets/) and cache its training images at R px."""
    from bespoke.console import console, out
    from bespoke.dataset.prepare import prepare_dataset
    from bespoke.errors import DatasetError

    settings = get_settings(ctx)
    sizes = _parse_resolutions(resolutions)
    source = dataset_argument(ctx, dataset)
    done = []
    for size in sizes:
        try:
            done.append(prepare_dataset(source, size, cache_dir=settings.cache_dir, layout=layout,
                                        background=background, trigger=trigger))
        except DatasetError as error:
            problems = getattr(error, "problems", [])
            if len(problems) > 1 and not quiet:
                for line in problems:
                    console.print(f"[red]-[/] {line}", soft_wrap=True)
            raise
    if as_json:
        click.echo(json.dumps({"source": str(done[0].source), "prepared": [_summary(p) for p in done]}, indent=2))
    elif not quiet:
        _render(done, out)
