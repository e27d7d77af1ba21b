"""`bespoke presets`: the presets in kohya_configs/ with what they are for."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON on stdout.")
def presets(as_json):
    """List the presets in kohya_configs/ (base, per resolution, named) with their descriptions."""
    from rich.markup import escape
    from rich.table import Table

    from bespoke.console import out
    from bespoke.kohya.presets import list_presets, presets_folder

    rows = list_presets()
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"presets in {presets_folder()}", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("role")
    table.add_column("description")
    for row in rows:
        table.add_row(row["name"], row["role"], escape(row["description"]))
    out.print(table)
    out.print("layers: base <- res-R <- --preset NAME <- --set key=value")
