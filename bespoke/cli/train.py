"""Commands `train`, `sweep`, `runs`, `doctor`: parse flags, call one library function, render."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bespoke.cli import get_settings

_RES_HELP = "Training resolution (512, 256, 128 or 64)."


def _dataset(settings, dataset: str | None) -> Path:
    return Path(dataset).expanduser().resolve() if dataset else settings.datasets_dir / "bespoke_punks"


def _short(path) -> str:
    """A path relative to the current directory when it is below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve())) + "/"
    except ValueError:
        return str(path)


def _finish(result, console, quiet: bool) -> None:
    """Render how a run ended; raise the matching error for anything but finished."""
    from bespoke.errors import Interrupted, TrainerError

    where = result.run_dir
    if result.skipped:
        console.print(f"run {result.run_id} is already finished ({result.epochs_done} epochs) in {where}; "
                      "nothing to do (use --restart to train it again)")
        return
    if result.status == "finished":
        loss = f", final loss {result.final_loss:.4f}" if result.final_loss is not None else ""
        console.print(f"[green]run {result.run_id} finished[/]: {result.epochs_done} epochs in "
                      f"{result.duration:.1f}s{loss}; checkpoints in {where / 'model'}")
        return
    if result.status == "interrupted":
        raise Interrupted(f"run {result.run_id} interrupted after {result.epochs_done} epoch(s); "
                          "run the same command again to resume")
    if result.log_tail:
        from bespoke.run.progress import trainer_error

        console.print(f"[red]last lines of {where / 'logs' / 'train.log'}:[/]")
        for line in result.log_tail[-15:]:
            console.print(f"  {line}", markup=False, highlight=False)
        error = trainer_error(result.log_tail)
        if error:
            console.print(f"[red]trainer error:[/] {error}", highlight=False)
    raise TrainerError(f"run {result.run_id} failed: {result.reason}; full log: {where / 'logs' / 'train.log'}")


@click.command()
@click.option("-r", "--resolution", type=int, help=_RES_HELP)
@click.option("--preset", help="Named preset in kohya_configs (e.g. baseline-512).")
@click.option("--dataset", type=click.Path(path_type=str), help="Source dataset folder (default: datasets/bespoke_punks).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a preset value (TOML syntax).")
@click.option("--prompts", type=click.Path(path_type=str, exists=True, dir_okay=False), help="Your sample prompt file.")
@click.option("--run", "run_dir", type=click.Path(path_type=str, file_okay=False),
              help="Train an already planned run folder instead of planning one.")
@click.option("--gpus", help="GPU ids for this ONE run (several -> accelerate --multi_gpu).")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Resume an interrupted or failed run from its newest *-state folder.")
@click.option("--restart", is_flag=True, help="Start the run over in its folder (old model/ -> model.prev-N/, log rotated).")
@click.option("--process/--no-process", "process", default=True, show_default=True,
              help="After a finished run, process its samples: 24 px candidates, colour metrics, best epoch.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the final result.")
@click.pass_context
def train(ctx, resolution, preset, dataset, overrides, prompts, run_dir, gpus, resume, restart, process, quiet):
    """Plan (or find) a run, launch sd-scripts through accelerate, show live progress, keep run.json current."""
    from bespoke.console import console
    from bespoke.errors import Interrupted
    from bespoke.run.progress import ProgressView
    from bespoke.run.sweep import parse_gpus

    settings = get_settings(ctx)
    gpu_ids = parse_gpus(gpus)
    view = ProgressView(console, quiet=quiet)
    say = None if quiet else console.print
    try:
        result = _train(settings, resolution, preset, dataset, overrides, prompts, run_dir, gpu_ids, resume,
                        restart, view, say)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; run the same command again to resume") from None
    _finish(result, console, quiet)
    if process and not result.skipped:
        _process(result.run_dir, console, quiet)


def _process(run_dir: Path, console, quiet: bool) -> None:
    """`bespoke process RUN --palette dataset` on a run that just finished, with its per-epoch table."""
    from bespoke.cli.process import render_table
    from bespoke.errors import BespokeError
    from bespoke.review.process import default_palette, process_path

    if not any((run_dir / "model" / "sample").glob("*.png")):
        return  # sampling was off: nothing to process
    try:
        report = process_path(run_dir, palette=default_palette(run_dir), progress=not quiet)
    except BespokeError as error:  # the training itself finished: say why there are no metrics, exit 0
        console.print(f"[yellow]training finished, but processing its samples failed:[/] {error}")
        return
    if not quiet:
        render_table(report)
        console.print(f"next: bespoke review {run_dir}")


def _train(settings, resolution, preset, dataset, overrides, prompts, run_dir, gpu_ids, resume, restart, view, say):
    from bespoke.errors import RunError, UsageError
    from bespoke.run.paths import read_manifest
    from bespoke.run.train import train_request, train_run

    if run_dir:
        if resolution or preset or overrides or prompts or dataset:
            raise UsageError("--run trains an existing run folder; -r/--preset/--set/--prompts/--dataset plan a new one")
        folder = Path(run_dir).resolve()
        if not resume and not restart and read_manifest(folder).get("status") in ("interrupted", "failed"):
            raise RunError(f"run {folder.name} is {read_manifest(folder)['status']}; drop --no-resume or use --restart")
        result = train_run(settings, folder, restart=restart, gpu_ids=gpu_ids, view=view, on_message=say)
    else:
        if resolution is None:
            raise UsageError("give -r RESOLUTION (512, 256, 128 or 64), or --run RUN_FOLDER")
        result = train_request(settings, resolution=resolution, dataset=_dataset(settings, dataset), preset=preset,
                               overrides=tuple(overrides), prompts=Path(prompts) if prompts else None,
                               restart=restart, resume=resume, gpu_ids=gpu_ids, view=view, on_message=say)
    return result


@click.command()
@click.option("-r", "--resolutions", help="Comma-separated resolutions (default 512,256,128,64).")
@click.option("--preset", help="Preset for runs that do not name one.")
@click.option("--sweep", "sweep_file", type=click.Path(path_type=str),
              help="Sweep TOML listing [[run]] tables (e.g. kohya_configs/sweep-resolutions.toml).")
@click.option("--dataset", type=click.Path(path_type=str), help="Source dataset folder (default: datasets/bespoke_punks).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override for every run (TOML syntax).")
@click.option("--gpus", help="Run one run per GPU at once, e.g. --gpus 0,1.")
@click.option("--shard", help="This machine's share i/n of the sweep (runs sorted by id, every n-th from the i-th).")
@click.option("--restart", is_flag=True, help="Start every selected run over (old outputs kept aside).")
@click.option("--process/--no-process", "process", default=True, show_default=True,
              help="Process each finished run's samples (colour metrics, best epoch) for the comparison table.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the final table.")
@click.pass_context
def sweep(ctx, resolutions, preset, sweep_file, dataset, overrides, gpus, shard, restart, process, as_json, quiet):
    """Train several runs: skip finished ones, continue past failures, end with a comparison table."""
    from bespoke.console import console
    from bespoke.errors import Interrupted, TrainerError
    from bespoke.run.sweep import run_sweep

    settings = get_settings(ctx)
    try:
        outcome = run_sweep(settings, console, resolutions=resolutions, preset=preset,
                            sweep_file=Path(sweep_file) if sweep_file else None,
                            dataset=_dataset(settings, dataset),
                            overrides=tuple(overrides), gpus=gpus, shard=shard, restart=restart, quiet=quiet,
                            process=process)
    except KeyboardInterrupt:
        raise Interrupted("sweep interrupted; run the same command again to resume where it stopped") from None
    from bespoke.run.sweep import comparison_table, rows_to_json

    if as_json:
        click.echo(json.dumps(rows_to_json(outcome.rows), indent=2))
    console.print(comparison_table(outcome.rows))
    if outcome.interrupted:
        raise Interrupted("sweep interrupted; run the same command again to resume where it stopped")
    bad = [r.run_id for r in outcome.rows if r.status not in ("finished",)]
    if bad:
        raise TrainerError(f"{len(bad)} of {len(outcome.rows)} runs did not finish: {', '.join(bad)} "
                           "(see each run's logs/train.log)")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON on stdout.")
@click.pass_context
def runs(ctx, as_json):
    """Every run folder: status, resolution, preset, epochs, best epoch, path."""
    from rich.table import Table

    from bespoke.console import console
    from bespoke.run.sweep import runs_overview

    settings = get_settings(ctx)
    items = runs_overview(settings.outputs_dir)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        console.print(f"no runs in {settings.outputs_dir} (start one with `bespoke train -r 512`)")
        return
    table = Table(title=f"runs in {_short(settings.outputs_dir)}")
    # every run folder is <outputs>/<run id> (the title says where); --json has the full paths
    table.add_column("run", no_wrap=True)
    for column in ("status", "res", "preset", "epochs", "best"):
        table.add_column(column)
    for item in items:
        status = item["status"] + (" [magenta](simulated)[/]" if item["simulated"] else "")
        table.add_row(item["id"], status, str(item["resolution"] or "-"), item["preset"] or "-",
                      f"{item['epochs_done']}/{item['epochs_total'] or '?'}",
                      str(item["best_epoch"]) if item["best_epoch"] is not None else "-")
    console.print(table)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON on stdout.")
@click.pass_context
def doctor(ctx, as_json):
    """Is this machine ready to train? Checks sd-scripts, its Python, accelerate, torch/GPU, base model, disk, keys."""
    from bespoke.console import console
    from bespoke.run.doctor import run_checks
    from bespoke.errors import BespokeError

    settings = get_settings(ctx)
    checks = run_checks(settings)
    if as_json:
        click.echo(json.dumps([c.to_json() for c in checks], indent=2))
    style = {"ok": "green", "warning": "yellow", "error": "red", "info": "cyan"}
    for check in checks:
        console.print(f"[{style[check.level]}]{check.level:>7}[/] {check.name}: {check.message}", highlight=False)
        if check.fix and check.level in ("warning", "error"):
            console.print(f"          fix: {check.fix}", highlight=False, markup=False)
    errors = [c for c in checks if c.level == "error"]
    if errors:
        error = BespokeError(f"doctor found {len(errors)} problem(s); fix them as shown above")
        error.exit_code = 1
        raise error
    console.print("[green]ready to train[/]")


def register(main):
    """Add train, sweep, runs and doctor to the bespoke group."""
    for command in (train, sweep, runs, doctor):
        main.add_command(command)
