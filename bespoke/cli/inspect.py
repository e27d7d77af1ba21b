"""`bespoke inspect PATH`: a LoRA's settings read back from its safetensors metadata (no torch)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from bespoke.cli.common import get_settings, run_argument


def _fmt_size(size_bytes: int) -> str:
    size = float(size_bytes)
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
    console.print(Panel(table, title=escape(entry["file"]), title_align="left", expand=False))


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


@click.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
def inspect(ctx, path, as_json):
    """A LoRA's settings read back from its safetensors metadata (no torch).

    PATH is a .safetensors file (full summary), a run (folder, run id or unique id prefix) or a folder of
    checkpoints (one line per checkpoint). Inside a run, each checkpoint is checked against the run's config.
    """
    from bespoke.console import console, out
    from bespoke.run.inspect import inspect_path
    from bespoke.run.paths import find_run

    target = find_run(path, get_settings(ctx).outputs_dir) or Path(path).expanduser().resolve()
    if not target.exists() and target.suffix != ".safetensors":
        target = run_argument(ctx, path)  # not a file: it was meant as a run; say which runs there are
    result = inspect_path(target)
    if as_json:
        click.echo(json.dumps(_to_json(result), indent=2, ensure_ascii=False))
    elif result["kind"] == "file":
        render_summary(result, out)
    else:
        render_folder(result, out)
    bad = [e for e in ([result] if result["kind"] == "file" else result["checkpoints"]) if e.get("mismatches")]
    if bad and not as_json:
        console.print(f"[yellow]{len(bad)} checkpoint(s) disagree with the run's config[/yellow]")
