"""`bespoke inspect PATH`: a LoRA's settings read back from its safetensors metadata (no torch).
`bespoke generate RUN`: images from a run's checkpoint through sd-scripts gen_img.py, then `process`."""

from __future__ import annotations

import os

import click


def resolve_run_arg(arg: str, settings):
    """A run folder from a path or a run id under outputs_dir."""
    from pathlib import Path

    from bespoke.errors import RunError, did_you_mean
    from bespoke.run.paths import is_run_dir, list_run_dirs

    path = Path(arg).expanduser()
    if path.is_dir() and is_run_dir(path):
        return path.resolve()
    candidate = settings.outputs_dir / arg
    if candidate.is_dir() and is_run_dir(candidate):
        return candidate.resolve()
    if path.is_dir():
        raise RunError(f"{path}: not a bespoke run folder (no run.json); see `bespoke runs`")
    known = [p.name for p in list_run_dirs(settings.outputs_dir)]
    raise RunError(f"{arg}: no such run folder nor a run id in {settings.outputs_dir}"
                   f"{did_you_mean(arg, known)}; see `bespoke runs`")


def _fmt_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _g(value) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _to_json(result: dict) -> dict:
    def one(entry):
        out = {k: v for k, v in entry.items() if k != "summary"}
        if entry.get("summary") is not None:
            out["summary"] = entry["summary"].to_json()
        return out

    if result["kind"] == "file":
        return one(result)
    return {**{k: v for k, v in result.items() if k != "checkpoints"}, "checkpoints": [one(e) for e in result["checkpoints"]]}


def render_summary(entry: dict, console) -> None:
    """The full summary of one checkpoint as a rich panel."""
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    s = entry["summary"]
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    d = s.dataset
    rows = [
        ("file", f"{_fmt_size(s.file_size)}, {s.tensor_count} tensors, {s.metadata_keys} metadata keys"),
        ("output name", s.output_name or s.title or "-"),
        ("epoch", f"{_g(s.epoch)} of {_g(s.num_epochs)}" + (" (final file)" if s.is_final_name else "")),
        ("steps", f"{_g(s.steps)} of {_g(s.max_train_steps)}"),
        ("network", f"{_g(s.network_module)} dim {_g(s.dim)} / alpha {_g(s.alpha)}"
                    f" (tensors: rank {_g(s.tensor_dim)}, alpha {_g(s.tensor_alpha)})"
                    + (f" args {s.network_args}" if s.network_args else "")),
        ("learning rate", f"{_g(s.learning_rate)} (unet {_g(s.unet_lr)}, text encoder {_g(s.text_encoder_lr)})"),
        ("scheduler", f"{_g(s.lr_scheduler)}, warmup {_g(s.lr_warmup_steps)}"),
        ("optimizer", _g(s.optimizer)),
        ("precision / seed", f"{_g(s.mixed_precision)} / {_g(s.seed)}"),
        ("base model", f"{_g(s.base_model_name)} ({_g(s.base_model_version)})"),
        ("base model sha256", f"{_g(s.base_model_hash)} (legacy {_g(s.base_model_legacy_hash)})"),
        ("resolution", "x".join(str(v) for v in s.resolution) if s.resolution else "-"),
        ("dataset", f"{_g(d.images)} images incl. repeats" + (f" (+{d.reg_images} reg)" if d.reg_images else "")
                    + f", batch {_g(d.batch_size)}, {_g(d.batches_per_epoch)} batches/epoch, "
                    f"repeats {', '.join(map(str, d.repeats)) or '-'}"),
        ("buckets", ", ".join(f"{'x'.join(map(str, b['resolution']))}: {b['count']}" for b in d.buckets) or "-"),
        ("image dirs", ", ".join(f"{x.get('image_dir')} ({x.get('img_count')} x {x.get('num_repeats')})"
                                 for x in d.subsets) or "-"),
        ("tags", (", ".join(f"{t} {c}" for t, c in s.tag_frequency) or "-")
         + (f" (top {len(s.tag_frequency)} of {s.tags_total})" if s.tags_total > len(s.tag_frequency) else "")),
        ("sd-scripts commit", _g(s.sd_scripts_commit)),
        ("trained", f"{_g(s.training_started_at)} -> {_g(s.training_finished_at)}"),
    ]
    for label, value in rows:
        table.add_row(label, escape(value))
    if entry.get("run"):
        mismatches = entry.get("mismatches") or []
        table.add_row("vs run config", "[green]agrees[/green]" if not mismatches else
                      "[red]" + escape("; ".join(mismatches)) + "[/red]")
    console.print(Panel(table, title=escape(entry["file"]), title_align="left"))


def _short(name: str, prefix: str) -> str:
    return "…" + name[len(prefix):] if prefix and name.startswith(prefix) else name


def render_folder(result: dict, console) -> None:
    """One line per checkpoint: file, epoch, steps, dim/alpha, lr, mismatches."""
    from rich.markup import escape
    from rich.table import Table

    title = f"checkpoints in {result['folder']}" + ("" if result.get("run") else " (not a run folder: no config check)")
    # checkpoint names share the long output_name: show it once, so the table fits an 80-column terminal
    names = [e["file"] for e in result["checkpoints"]]
    prefix = os.path.commonprefix(names) if len(names) > 1 else ""
    if len(prefix) > 8:
        title += f"\nfiles: {prefix}…"
    else:
        prefix = ""
    table = Table(title=escape(title), title_justify="left")
    summaries = [e["summary"] for e in result["checkpoints"] if e.get("summary") is not None]
    schedulers = sorted({str(s.lr_scheduler) for s in summaries})
    table.caption = escape(f"lr scheduler: {', '.join(schedulers)}") if schedulers else None
    table.caption_justify = "left"
    table.add_column("file", no_wrap=True)
    for column in ("epoch", "steps", "dim/alpha", "lr / te lr", "check"):
        table.add_column(column, justify="right" if column in ("epoch", "steps") else "left",
                         no_wrap=column != "check")
    for entry in result["checkpoints"]:
        s = entry.get("summary")
        if s is None:
            table.add_row(escape(_short(entry["file"], prefix)), "-", "-", "-", "-", f"[red]{escape(entry['error'])}[/red]")
            continue
        check = "-" if not result.get("run") else (
            "[green]ok[/green]" if not entry["mismatches"] else "[red]" + escape("; ".join(entry["mismatches"])) + "[/red]")
        table.add_row(escape(_short(entry["file"], prefix)), _g(s.epoch), _g(s.steps), f"{_g(s.dim)}/{_g(s.alpha)}",
                      f"{_g(s.unet_lr or s.learning_rate)} / {_g(s.text_encoder_lr)}", check)
    console.print(table)


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
def inspect_cmd(ctx, path, as_json):
    """A LoRA's settings read back from its safetensors metadata (no torch).

    PATH is a .safetensors file (full summary) or a run folder / folder of checkpoints (one line per
    checkpoint). Inside a run, each checkpoint is checked against the run's training config.
    """
    import json

    from bespoke.console import console
    from bespoke.kohya.metadata import inspect_path

    result = inspect_path(path)
    if as_json:
        click.echo(json.dumps(_to_json(result), indent=2, ensure_ascii=False))
    elif result["kind"] == "file":
        render_summary(result, console)
    else:
        render_folder(result, console)
    bad = [e for e in ([result] if result["kind"] == "file" else result["checkpoints"]) if e.get("mismatches")]
    if bad and not as_json:
        console.print(f"[yellow]{len(bad)} checkpoint(s) disagree with the run's config[/yellow]")


@click.command("generate")
@click.argument("run")
@click.option("--epoch", type=int, help="Checkpoint epoch (default: the last one on disk).")
@click.option("--prompts", "prompts_file", type=click.Path(path_type=str),
              help="sd-scripts prompt file (.txt/.toml/.json); default: the 7 baseline prompts.")
@click.option("--seeds", default="1-4", show_default=True, help="Fixed seeds for every prompt: 1-8, 1,2,5, or mixed.")
@click.option("--mul", type=float, default=1.0, show_default=True, help="LoRA multiplier (--network_mul).")
@click.option("--steps", type=click.IntRange(1, 1000), help="Sampling steps for every prompt (default: per prompt).")
@click.option("--scale", type=float, help="CFG scale for every prompt (default: per prompt).")
@click.option("--sampler", help="gen_img.py sampler (default: the run's sample_sampler).")
@click.option("--force", is_flag=True, help="Move an existing, different generation aside and generate again.")
@click.option("--no-process", is_flag=True, help="Only generate; do not run `process` on the images.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.option("--json", "as_json", is_flag=True, help="Print generate.json (+ process summary) on stdout.")
@click.pass_context
def generate_cmd(ctx, run, epoch, prompts_file, seeds, mul, steps, scale, sampler, force, no_process, quiet, as_json):
    """Images from RUN's LoRA checkpoint via sd-scripts gen_img.py, named <prompt>_s<seed>.png in
    RUN/generated/e<epoch>/ with generate.json beside them, then `process` on that folder."""
    import json
    from pathlib import Path

    from rich.markup import escape

    from bespoke.cli import get_settings
    from bespoke.console import console
    from bespoke.run.generate import GenerateRequest, generate, parse_seeds

    settings = get_settings(ctx)
    run_dir = resolve_run_arg(run, settings)
    request = GenerateRequest(epoch=epoch, prompts_file=Path(prompts_file) if prompts_file else None,
                              seeds=parse_seeds(seeds), mul=mul, steps=steps, scale=scale, sampler=sampler,
                              force=force, process=not no_process)
    result = generate(settings, run_dir, request, quiet=quiet or as_json)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    console.print(f"epoch {result['epoch']}: {len(result['images'])} images "
                  f"({len(result['prompts'])} prompts x {len(result['seeds'])} seeds) in {escape(result['outdir'])}"
                  + (" (reused)" if result.get("reused") else ""))
    report = result.get("report")
    if report:
        for row in report["epochs"]:
            console.print(f"  processed {row['samples']} images: colors_nearest mean "
                          f"{row['colors_nearest_mean']:.1f}, clean {row['clean_pct']:.0f} %; "
                          f"report {escape(report['report'])}")


def register(main) -> None:
    main.add_command(inspect_cmd)
    main.add_command(generate_cmd)
