"""`bespoke import kohya-gui CONFIG.json`: bring settings tuned in other tools in as a bespoke preset.

The module is `import_` because `import` is a Python keyword; the command is `bespoke import`."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("import")
def import_() -> None:
    """Import settings from other tools as a bespoke preset (kohya_configs/<name>.toml)."""


@import_.command("kohya-gui")
@click.argument("config", type=click.Path(path_type=str))
@click.option("--name", help="Preset name (default: from the file name, e.g. loha-sd15).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str),
              help="Folder to write the preset to (default: ./kohya_configs).")
@click.option("--force", is_flag=True, help="Replace a preset of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print what was imported and skipped as JSON on stdout.")
def kohya_gui(config, name, out_dir, force, as_json):
    """A kohya_ss GUI (bmaltais) LoRA config JSON -> a validated preset TOML; every setting it does not
    take (bespoke sets it, no sd-scripts equivalent, secrets) is listed, here and in the file's header."""
    from rich.markup import escape
    from rich.table import Table

    from bespoke.console import out
    from bespoke.kohya.gui_import import SECRETS, import_gui_config

    result = import_gui_config(Path(config).expanduser(), out_dir=Path(out_dir or "kohya_configs").expanduser(),
                               name=name, force=force)
    skipped = [{"key": k, "value": "<hidden>" if k in SECRETS else v, "why": w} for k, v, w in result.imported.skipped]
    if as_json:
        click.echo(json.dumps({"preset": str(result.path), "name": result.name, "training": result.imported.training,
                               "dataset": result.imported.dataset, "not_imported": skipped,
                               "validated_at": result.resolutions}, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"not imported from {escape(Path(config).name)}", title_justify="left")
    for column in ("setting", "value", "why"):
        table.add_column(column)
    for item in skipped:
        table.add_row(escape(str(item["key"])), escape(json.dumps(item["value"], ensure_ascii=False)),
                      escape(str(item["why"])))
    out.print(table)
    out.print(f"imported {len(result.imported.training)} training and {len(result.imported.dataset)} dataset "
              f"settings; validated at {', '.join(f'{r} px' for r in result.resolutions)}")
    out.print(f"[bold]preset:[/] {escape(str(result.path))}  (use: bespoke plan -r 512 --preset {result.name})",
              soft_wrap=True)
