"""`bespoke import kohya-gui CONFIG.json`: bring settings tuned in other tools in as a bespoke preset.

The module is `import_` because `import` is a Python keyword; the command is `bespoke import`."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("import")
def import_() -> None:
    """Import settings from other tools as a bespoke preset (kohya_configs/<name>.toml)."""


def _as_json(result, skipped: list[dict]) -> str:
    imported = result.imported
    return json.dumps({"preset": str(result.path), "name": result.name, "training": imported.training,
                       "dataset": imported.dataset, "bespoke": imported.bespoke, "translated": imported.translated,
                       "not_imported": skipped, "ignored": imported.ignored, "overrides": imported.overrides,
                       "validated_at": result.resolutions, "warnings": result.warnings,
                       "trainer_packages": [{"pypi": p.pypi, "module": p.module, "needed_for": p.needed_for}
                                            for p in result.packages]}, indent=2, ensure_ascii=False)


@import_.command("kohya-gui")
@click.argument("config", type=click.Path(path_type=str))
@click.option("--name", help="Preset name (default: from the file name, e.g. loha-sd15).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str),
              help="Folder to write the preset to (default: ./kohya_configs).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override an imported value (TOML syntax, checked like train's --set), e.g. --set "
                   "noise_offset=0.05. Repeatable.")
@click.option("--force", is_flag=True, help="Replace a preset of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print what was imported and skipped as JSON on stdout.")
def kohya_gui(config, name, out_dir, overrides, force, as_json):
    """A kohya_ss GUI (bmaltais) LoRA config JSON -> a validated preset TOML that trains what the GUI would
    (its own translations: LoRA type, noise, learning rates, warmup, attention). Every setting it does not take
    (bespoke sets it, an accelerate launch setting, a file on the GUI's machine, a secret) is listed, here and
    in the file's header; SDXL, FLUX.1, DreamBooth, fine-tuning and Textual Inversion configs are refused."""
    from rich.markup import escape
    from rich.table import Table

    from bespoke.console import console, out
    from bespoke.kohya.gui_import import SECRETS, import_gui_config

    result = import_gui_config(Path(config).expanduser(), out_dir=Path(out_dir or "kohya_configs").expanduser(),
                               name=name, force=force, overrides=tuple(overrides))
    imported = result.imported
    skipped = [{"key": k, "value": "<hidden>" if k in SECRETS else v, "why": w} for k, v, w in imported.skipped]
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if as_json:
        click.echo(_as_json(result, skipped))
        return
    if imported.translated:
        out.print("translated as the kohya_ss GUI does:")
        for line in imported.translated:
            out.print(f"  {escape(line)}", soft_wrap=True)
    if skipped:
        table = Table(title=f"not imported from {escape(Path(config).name)}", title_justify="left")
        for column in ("setting", "value", "why"):
            table.add_column(column)
        for item in skipped:
            table.add_row(escape(str(item["key"])), escape(json.dumps(item["value"], ensure_ascii=False)),
                          escape(str(item["why"])))
        out.print(table)
    if imported.ignored:
        out.print(f"{len(imported.ignored)} fields the GUI itself does not pass for an SD 1.x LoRA were ignored "
                  f"(listed in the preset's header)")
    out.print(f"imported {len(imported.training)} training and {len(imported.dataset)} dataset settings"
              f"{' with ' + ' '.join(imported.overrides) if imported.overrides else ''}; validated at "
              f"{', '.join(f'{r} px' for r in result.resolutions)}", soft_wrap=True)
    for package in result.packages:
        gpu = "; works only on a CUDA GPU" if package.gpu_only else ""
        out.print(f"needs `{package.pypi}` in the trainer's venv ({escape(package.needed_for)}{gpu})", soft_wrap=True)
    out.print(f"[bold]preset:[/] {escape(str(result.path))}  (use: bespoke plan -r 512 --preset {result.name})",
              soft_wrap=True)
