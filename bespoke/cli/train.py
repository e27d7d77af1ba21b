"""`bespoke train`: plan (or find) a run, launch sd-scripts through accelerate, show live progress, keep
run.json current; a finished run's samples are processed right after."""

from __future__ import annotations

from pathlib import Path

import click

from bespoke.cli.common import RES_HELP, dataset_argument, get_settings, quiet_option, run_argument
from bespoke.errors import Interrupted, TrainerError, UsageError


def _detach_from_a_hung_up_terminal(signum) -> None:
    """After SIGHUP from a closed terminal every write to it fails (EIO), which would turn exit 129 into a
    traceback and exit 1: the last words go to /dev/null instead (train.log and run.json have them)."""
    import os
    import signal
    import stat

    if signum == getattr(signal, "SIGHUP", None):
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            try:  # a hung-up terminal is still a character device, though isatty() may say no by now
                if stat.S_ISCHR(os.fstat(fd).st_mode):
                    os.dup2(null, fd)
            except OSError:
                os.dup2(null, fd)


def render_outcome(result, console) -> None:
    """Render how a run ended; raise the matching error for anything but finished."""
    from bespoke.console import out
    from bespoke.kohya.output import trainer_error
    from bespoke.run.runner import signal_name

    _detach_from_a_hung_up_terminal(result.signum)

    where = result.run_dir
    if result.skipped:
        console.print(f"run {result.run_id} is {result.reason} ({result.epochs_done} epochs) in {where}; "
                      "nothing to do (use --restart to train it again)")
        return
    if result.status == "finished":
        loss = f", final loss {result.final_loss:.4f}" if result.final_loss is not None else ""
        out.print(f"[green]run {result.run_id} finished[/]: {result.epochs_done} epochs in "
                      f"{result.duration:.1f}s{loss}; checkpoints in {where / 'model'}")
        if result.reason:  # samples a hard stop lost for good (run.json samples.missing)
            console.print(f"[yellow]warning:[/] {result.reason}", highlight=False)
        if result.signum is not None:  # every epoch is on disk, but bespoke was asked to stop: no processing
            raise Interrupted(f"{signal_name(result.signum)} arrived after the last checkpoint; not processing the "
                              f"samples (run `bespoke process {where}`)", result.signum)
        return
    if result.status == "interrupted" or result.signum is not None:
        # the reason says where the resume starts (bespoke.run.resume.stop_note)
        how = result.reason or f"stopped by {signal_name(result.signum)} after {result.epochs_done} epoch(s)"
        marked = " and marked interrupted" if result.status == "interrupted" else ""
        raise Interrupted(f"run {result.run_id} {how}{marked}; run the same command again to resume", result.signum)
    if result.log_tail:
        console.print(f"[red]last lines of {where / 'logs' / 'train.log'}:[/]")
        for line in result.log_tail[-15:]:
            console.print(f"  {line}", markup=False, highlight=False)
        error = trainer_error(result.log_tail)
        if error:
            console.print(f"[red]trainer error:[/] {error}", highlight=False)
    raise TrainerError(f"run {result.run_id} failed: {result.reason}; full log: {where / 'logs' / 'train.log'}")


def _render_processing(outcome, console, quiet: bool) -> None:
    """The per-epoch table of a run that just finished and was processed (or why it was not)."""
    from bespoke.cli.process import render_table

    if outcome.process_error is not None:  # the training itself finished: say why there are no metrics, exit 0
        console.print(f"[yellow]training finished, but processing its samples failed:[/] {outcome.process_error}")
    elif outcome.report is not None and not quiet:
        render_table(outcome.report)
        console.print(f"next: bespoke review {outcome.result.run_dir}")


@click.command()
@click.option("-r", "--resolution", type=int, help=RES_HELP)
@click.option("--preset", help="A preset name (e.g. baseline-512, see `bespoke presets`) or a preset TOML file.")
@click.option("--name", help="Your label for the run (shown by `runs`, sweeps and review; the id stays the hash).")
@click.option("--dataset", help="Source punks folder or a dataset name (default: datasets/bespoke_punks).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a preset value (TOML syntax).")
@click.option("--prompts", type=click.Path(path_type=str, exists=True, dir_okay=False), help="Your sample prompt file.")
@click.option("--run", "run", help="Train an already planned run (folder, run id or unique id prefix) instead of planning one.")
@click.option("--gpus", help="GPU ids for this ONE run (several -> accelerate --multi_gpu).")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Resume an interrupted or failed run from its newest *-state folder.")
@click.option("--restart", is_flag=True, help="Start the run over in its folder (old model/ -> model.prev-N/, log rotated).")
@click.option("--process/--no-process", "process", default=True, show_default=True,
              help="After a finished run, process its samples: 24 px candidates, colour metrics, best epoch.")
@quiet_option
@click.option("--preflight/--no-preflight", default=True, show_default=True,
              help="Check the run with sd-scripts' own code (the stages of `bespoke preflight`) inside the launch, "
                   "before training starts.")
@click.pass_context
def train(ctx, resolution, preset, name, dataset, overrides, prompts, run, gpus, resume, restart, process, quiet,
          preflight):
    """Plan (or find) a run, launch sd-scripts through accelerate, show live progress, keep run.json current.

    \b
    Example:
      bespoke train -r 512 --preset baseline-512      # Ctrl-C, then the same command resumes
      bespoke train --run 512-baseline-1a2b --restart
    """
    from bespoke.cli.display import TrainView
    from bespoke.console import console
    from bespoke.pipeline.train import train_and_process
    from bespoke.run.plan import PlanRequest
    from bespoke.run.sweep_file import parse_gpus
    from bespoke.run.train import TrainOptions

    settings = get_settings(ctx)
    options = TrainOptions(restart=restart, resume=resume, gpu_ids=parse_gpus(gpus), preflight=preflight)
    target: PlanRequest | Path
    if run:
        if resolution or preset or overrides or prompts or dataset or name:
            raise UsageError("--run trains an existing run folder; -r/--preset/--set/--prompts/--dataset/--name "
                             "plan a new one")
        target = run_argument(ctx, run)
    elif resolution is None:
        raise UsageError("give -r RESOLUTION (512, 256, 128 or 64), or --run RUN")
    else:
        target = PlanRequest(resolution=resolution, dataset=dataset_argument(ctx, dataset), preset=preset,
                             overrides=tuple(overrides), prompts=Path(prompts) if prompts else None, name=name)
    try:
        outcome = train_and_process(settings, target, options, TrainView(console, quiet), process=process)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; run the same command again to resume") from None
    render_outcome(outcome.result, console)
    _render_processing(outcome, console, quiet)
