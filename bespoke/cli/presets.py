"""`bespoke presets`: every preset bespoke can use, where it comes from (your project's folder or bespoke's
own), and what it is for."""

from __future__ import annotations

import json

import click

from bespoke.cli.common import get_settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON on stdout.")
@click.pass_context
def presets(ctx, as_json):
    """List the presets (base, per resolution, named, sweeps): your kohya_configs/ (or bespoke.toml's
    presets_dir) first, then bespoke's own; a name in your folder replaces bespoke's."""
    from rich.markup import escape
    from rich.table import Table

    from bespoke.console import out
    from bespoke.kohya.presets import list_presets, search_path

    settings = get_settings(ctx)
    rows = list_presets(user_dir=settings.presets_dir)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    folders = search_path(settings.presets_dir)
    table = Table(title="presets", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("role")
    table.add_column("from")
    table.add_column("description")
    for row in rows:
        source = row["source"] + (" [dim](replaced by project's)[/]" if row["shadowed_by"] else "")
        table.add_row(row["name"], row["role"], source, escape(row["description"]))
    out.print(table)
    for folder in folders:
        out.print(f"  {'project' if len(folders) > 1 and folder == folders[0] else 'bespoke'}: "
                      f"{escape(str(folder))}", highlight=False)
    out.print("layers: base <- res-R <- --preset NAME|FILE <- --set key=value; "
                  "a kohya_configs/ folder in the project is searched first")
