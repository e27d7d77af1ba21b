"""`bespoke plan -r R [--preset P]`: write and validate a run folder's configs, print the launch command."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bespoke.cli.common import dataset_argument, get_settings

KEY_SETTINGS = (
    ("network", lambda t, d: f"{t.get('network_module')} dim {t.get('network_dim')} / alpha {t.get('network_alpha')}"),
    ("optimizer", lambda t, d: f"{t.get('optimizer_type') or 'AdamW'} lr {t.get('learning_rate')}"
                               + (f" (unet {t['unet_lr']}, te {t['text_encoder_lr']})" if "text_encoder_lr" in t else "")),
    ("schedule", lambda t, d: f"{t.get('lr_scheduler')}"
                              + (f" x{t['lr_scheduler_num_cycles']}" if "lr_scheduler_num_cycles" in t else "")
                              + f", warmup {t.get('lr_warmup_steps', 0)}"),
    ("epochs", lambda t, d: f"{t.get('max_train_epochs')} (save every {t.get('save_every_n_epochs')}, "
                            f"sample every {t.get('sample_every_n_epochs')})"),
    ("batch / repeats", lambda t, d: f"{d['datasets'][0].get('batch_size', 1)} / "
                                     f"{d['datasets'][0]['subsets'][0].get('num_repeats', 1)}"),
    ("precision", lambda t, d: f"{t.get('mixed_precision')} (save {t.get('save_precision')})"),
    ("buckets", lambda t, d: "off" if not d["datasets"][0].get("enable_bucket") else
                             f"{d['datasets'][0].get('min_bucket_reso')}..{d['datasets'][0].get('max_bucket_reso')} "
                             f"step {d['datasets'][0].get('bucket_reso_steps')}"),
    ("base model", lambda t, d: t.get("pretrained_model_name_or_path")),
    ("images", lambda t, d: d["datasets"][0]["subsets"][0]["image_dir"]),
)


def plan_summary(plan) -> dict:
    """The JSON form of a RunPlan (what `plan --json` prints)."""
    import shlex

    from bespoke.run.plan import modified_configs

    return {
        "run_id": plan.run_id,
        "name": plan.manifest.name,
        "run_dir": str(plan.paths.root),
        "created": plan.created,
        "renamed_from": plan.renamed_from,
        "modified_configs": [] if plan.created else modified_configs(plan.paths, plan.manifest),
        "status": plan.manifest.status,
        "training_toml": str(plan.paths.training_toml),
        "dataset_toml": str(plan.paths.dataset_toml),
        "prompts_txt": str(plan.paths.prompts_txt),
        "cwd": str(plan.paths.root),
        "argv": plan.argv,
        "command": shlex.join(plan.argv),
        "env_overrides": plan.env_overrides,
        "training": plan.training,
        "dataset_config": plan.dataset_config,
        "prompts": [p.to_json() for p in plan.prompts],
    }


def _folder_state(plan) -> str:
    """What plan did to the run folder: made it, found it untouched, or relabelled it (its configs untouched)."""
    if plan.created:
        return "[green]new run folder[/green]"
    if plan.renamed_from is not None:
        from rich.markup import escape

        return (f"[yellow]existing run folder (configs unchanged; renamed {escape(repr(plan.renamed_from))} -> "
                f"{escape(repr(plan.manifest.name))})[/yellow]")
    return "[yellow]existing run folder (unchanged)[/yellow]"


def render_plan(plan, console, messages, sd_scripts=None) -> None:
    """Human summary of a plan on `console` (stdout: it is the command's result); notes and warnings on
    `messages` (stderr)."""
    from rich.markup import escape
    from rich.table import Table

    from bespoke.kohya.launch import format_command
    from bespoke.run.plan import modified_configs

    console.print(f"{_folder_state(plan)}: [bold]{escape(str(plan.paths.root))}[/bold]")
    if not plan.created:
        console.print(f"  status {plan.manifest.status}; the same config always finds this folder")
        changed = modified_configs(plan.paths, plan.manifest)
        if changed:
            messages.print(f"[yellow]warning:[/yellow] {', '.join(changed)} changed since planning (edited by "
                           f"hand?); the trainer reads the files as they are now — check them with `bespoke check`")
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("run id", plan.run_id)
    if plan.manifest.name:
        table.add_row("name", escape(plan.manifest.name))
    for label, value in KEY_SETTINGS:
        try:
            text = str(value(plan.training, plan.dataset_config))
        except (KeyError, IndexError, TypeError):
            continue
        table.add_row(label, escape(text))
    sizes = sorted({(p.width, p.height) for p in plan.prompts}, key=str)
    table.add_row("samples", f"{len(plan.prompts)} prompts at " + ", ".join(f"{w}x{h}" for w, h in sizes))
    console.print(table)
    console.print("launch command: (it starts in the run folder; the configs' paths are relative to it)")
    console.print(escape(format_command(plan.argv, plan.env_overrides, cwd=plan.paths.root)), soft_wrap=True,
                  highlight=False)
    if sd_scripts is None:
        messages.print("[yellow]note:[/yellow] no sd-scripts checkout configured (the command assumes ./sd-scripts); "
                       "set --sd-scripts, BESPOKE_SD_SCRIPTS or sd_scripts in bespoke.toml before `bespoke train`")


@click.command()
@click.option("-r", "--resolution", type=int, required=True, help="Training resolution: 512, 256, 128 or 64.")
@click.option("--preset", help="A preset name (see `bespoke presets`) or a preset TOML file of yours.")
@click.option("--name", help="Your label for the run, shown by `runs`, sweeps and review (the id stays the hash).")
@click.option("--dataset", help="Source punks folder (default: <datasets_dir>/bespoke_punks).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a preset value (TOML syntax), e.g. --set network_dim=8. Repeatable.")
@click.option("--prompts", type=click.Path(path_type=str), help="Your own sample prompt file (sd-scripts syntax).")
@click.option("--layout", type=click.Choice(["stretch", "pad"]), help="How 24 px maps to R px (default: preset's).")
@click.option("--background", help="Background colour for transparent pixels (passed to prepare).")
@click.option("--trigger", help="Trigger phrase prepended to every caption (passed to prepare).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout.")
@click.pass_context
def plan(ctx, resolution, preset, name, dataset, overrides, prompts, layout, background, trigger, as_json):
    """Write outputs/<run-id>/ with validated training.toml, dataset.toml, prompts.txt and run.json
    (status planned), and print the exact launch command. Nothing is trained."""
    from bespoke.console import console, out
    from bespoke.run.plan import PlanRequest, plan_run

    settings = get_settings(ctx)
    request = PlanRequest(
        resolution=resolution,
        dataset=dataset_argument(ctx, dataset),
        preset=preset,
        overrides=tuple(overrides),
        prompts=Path(prompts) if prompts else None,
        layout=layout,
        background=background,
        trigger=trigger,
        name=name,
    )
    planned = plan_run(settings, request)
    if as_json:
        click.echo(json.dumps(plan_summary(planned), indent=2, ensure_ascii=False))
    else:
        render_plan(planned, out, console, settings.sd_scripts)
