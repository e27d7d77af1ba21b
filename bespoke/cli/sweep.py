"""`bespoke sweep`: several runs (a resolution list or a sweep TOML), one after another, one per GPU, or as a
Slurm job array (`--slurm`); skips finished runs, continues past failures, ends with a comparison table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import click

from bespoke.cli.common import get_settings, quiet_option
from bespoke.cli.train import LoopFlags, loop_flags
from bespoke.errors import Interrupted, TrainerError, UsageError


def comparison_table(rows, labels: dict | None = None):
    """The end-of-sweep table: run (and its name), status, epochs, time, final loss, best epoch, mean colours.
    `labels` maps run ids to the name to show (bespoke.run.names.name_labels)."""
    from rich.table import Table

    labels = labels or {}
    table = Table(title="sweep results")
    table.add_column("run", no_wrap=True)
    named = any(labels.get(r.run_id) or r.name for r in rows)
    if named:
        table.add_column("name")
    costs = any(r.cost_usd is not None for r in rows)
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
        ("status", "left"), ("epochs", "right"), ("time", "right"), ("loss", "right"), ("best", "right"),
        ("colours", "right")) + (("cost", "right"),) * costs
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for row in rows:
        name = [labels.get(row.run_id) or row.name or "-"] if named else []
        table.add_row(
            row.run_id, *name, "skipped" if row.skipped else row.status,
            f"{row.epochs_done}/{row.epochs_total or '?'}",
            f"{row.duration:.1f}s" if row.duration is not None else "-",
            f"{row.final_loss:.4f}" if row.final_loss is not None else "-",
            str(row.best_epoch) if row.best_epoch is not None else "-",
            f"{row.mean_colors:.1f}" if row.mean_colors is not None else "-",
            *(usd(row.cost_usd),) * costs,
        )
    if costs:
        table.caption = f"sweep cost {usd(sweep_cost(rows))} (every attempt of these runs)"
    return table


def sweep_cost(rows) -> float:
    """What the sweep's runs cost, every attempt counted."""
    return round(sum(r.cost_usd or 0.0 for r in rows), 4)


def usd(value) -> str:
    from bespoke.run.cost import usd as as_usd

    return as_usd(value)


def rows_to_json(rows) -> list[dict]:
    """Rows as plain JSON data (for --json)."""
    return [{"run": r.run_id, "name": r.name, "path": str(r.run_dir) if r.run_dir else None, "status": r.status,
             "skipped": r.skipped, "resolution": r.resolution, "preset": r.preset, "epochs_done": r.epochs_done,
             "epochs_total": r.epochs_total, "duration_s": r.duration, "final_loss": r.final_loss,
             "best_epoch": r.best_epoch, "mean_colors": r.mean_colors, "reason": r.reason, "gpu": r.gpu,
             "cost_usd": r.cost_usd} for r in rows]


def row_labels(rows) -> tuple[dict, list[str]]:
    """Names to show for the rows' runs, and a note per name that several runs share (what differs)."""
    from bespoke.errors import BespokeError
    from bespoke.run.manifest import load_manifest
    from bespoke.run.names import name_labels, shared_name_notes

    manifests, folders = [], {}
    for row in rows:
        try:
            manifests.append(load_manifest(row.run_dir))
        except (BespokeError, TypeError):
            continue
        folders[row.run_id] = row.run_dir
    return name_labels(manifests, folders), shared_name_notes(manifests, folders)


def slurm_table(submission):
    """What `sweep --slurm` did, one row per run: name, bespoke's status, Slurm's view, and the action."""
    from rich.table import Table

    table = Table(title=f"sweep {submission.sweep_id} on Slurm")
    for column in ("task", "run", "name", "status", "slurm", "action"):
        table.add_column(column, no_wrap=column == "run")
    for row in submission.rows:
        state = f"{row.slurm.shown} {row.slurm.node or ''}".strip() if row.slurm else "-"
        table.add_row(str(row.task), row.run_id, row.name or "-", row.status, state, row.action)
    return table


def _render_slurm(submission, console, as_json: bool) -> None:
    from rich.markup import escape

    from bespoke.console import out

    if as_json:
        click.echo(json.dumps({"sweep": submission.sweep_id, "folder": str(submission.sweep_dir),
                               "script": str(submission.script), "job_id": submission.job_id,
                               "runs": [{"task": r.task, "run": r.run_id, "name": r.name, "status": r.status,
                                         "slurm": r.slurm.shown if r.slurm else None, "action": r.action}
                                        for r in submission.rows]}, indent=2))
    (console if as_json else out).print(slurm_table(submission))  # stdout: the JSON alone
    console.print(f"job-array script: {escape(str(submission.script))}", highlight=False)
    if submission.job_id:
        console.print(f"submitted array job {submission.job_id}; follow it with `bespoke runs` "
                      f"(or `squeue -j {submission.job_id}`), stop it with `bespoke cancel {submission.sweep_id}`")
    elif submission.all_finished:
        ids = " ".join(r.run_id for r in submission.rows)
        console.print(f"every run is finished: `bespoke sweep` without --slurm prints the comparison table, "
                      f"`bespoke review {ids}` compares them")
    else:
        console.print("nothing to submit: every unfinished run is already queued or running")


@click.command()
@click.option("-r", "--resolutions", help="Comma-separated resolutions (default 512,256,128,64).")
@click.option("--preset", help="Preset for runs that do not name one (a name or a TOML file).")
@click.option("--sweep", "sweep_file", type=click.Path(path_type=str),
              help="Sweep TOML listing [[run]] tables (e.g. kohya_configs/sweep-resolutions.toml).")
@click.option("--dataset", help="Source punks folder or a dataset name (default: datasets/bespoke_punks).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override for every run (TOML syntax).")
@click.option("--gpus", help="Run one run per GPU at once, e.g. --gpus 0,1.")
@click.option("--shard", help="This machine's share i/n of the sweep (runs sorted by id, every n-th from the i-th).")
@click.option("--slurm", "use_slurm", is_flag=True,
              help="Submit the runs as one Slurm job array (sbatch) instead of training here.")
@click.option("--partition", help="--slurm: partition (default: bespoke.toml [slurm] partition).")
@click.option("--account", help="--slurm: account to charge.")
@click.option("--time", "time_limit", help="--slurm: time limit per run, e.g. 04:00:00.")
@click.option("--gres", help="--slurm: generic resources per run, e.g. gpu:1.")
@click.option("--max-concurrent", type=int, help="--slurm: how many runs of the sweep run at once.")
@click.option("--restart", is_flag=True, help="Start every selected run over (old outputs kept aside).")
@click.option("--process/--no-process", "process", default=True, show_default=True,
              help="Process each finished run's samples (colour metrics, best epoch) for the comparison table.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@quiet_option
@click.option("--preflight/--no-preflight", default=True, show_default=True,
              help="Run `bespoke preflight` on every run (one probe) before launching any.")
@loop_flags
@click.pass_context
def sweep(ctx, resolutions, preset, sweep_file, dataset, overrides, gpus, shard, use_slurm, partition, account,
          time_limit, gres, max_concurrent, restart, process, as_json, quiet, preflight, stop_when, budget, gpu_price,
          notify, notify_epochs, on_finish, live_score):
    """Train several runs: skip finished ones, continue past failures, end with a comparison table.

    Here, one after another; with --gpus, one run per GPU of this machine at once; with --shard i/n, this
    machine's share of runs on a shared folder; with --slurm, as a Slurm job array (see README)."""
    from bespoke.console import console

    settings = get_settings(ctx)
    file = Path(sweep_file) if sweep_file else None
    if use_slurm:
        from bespoke.run.slurm import slurm_request
        from bespoke.run.sweep import submit_to_slurm

        if gpus or shard or restart:
            raise UsageError("--slurm lets Slurm place the runs: drop --gpus/--shard (ask for GPUs with --gres); "
                             "--restart a run with `bespoke train --run RUN --restart`")
        if any(v is not None for v in (stop_when, budget, gpu_price, notify_epochs, on_finish, live_score)) or notify:
            raise UsageError("with --slurm each task runs `bespoke train --run RUN` on its node: put --stop-when, "
                             "--budget, --gpu-price, --notify, --on-finish and --live-score in bespoke.toml's [train] "
                             "table, which every task reads")
        slurm = slurm_request(settings.slurm, partition=partition, account=account, time=time_limit, gres=gres,
                              max_concurrent=max_concurrent)
        submission = submit_to_slurm(settings, request=slurm, resolutions=resolutions, preset=preset,
                                     sweep_file=file, dataset=dataset, overrides=tuple(overrides))
        _render_slurm(submission, console, as_json)
        return
    if partition or account or time_limit or gres or max_concurrent:
        raise UsageError("--partition/--account/--time/--gres/--max-concurrent are for --slurm")
    from bespoke.run.sweep import SweepRequest

    request = SweepRequest(resolutions=resolutions, preset=preset, sweep_file=file, dataset=dataset,
                           overrides=tuple(overrides), gpus=gpus, shard=shard)
    flags = LoopFlags(stop_when, budget, gpu_price, tuple(notify), notify_epochs, on_finish, live_score)
    _local(settings, console, request, (restart, process, as_json, quiet, preflight), flags)


class SweepView:
    """The observer that shows a sweep: each run as `TrainView` shows one (one after another), or, with --gpus on
    a terminal, one live table of every run; after each run a line saying how it ended (why, if it failed)."""

    def __init__(self, console, quiet: bool, parallel: bool):
        from bespoke.cli.display import TrainView

        self.console, self.quiet = console, quiet
        self.table = console.is_terminal and parallel and not quiet
        self.runs = TrainView(console, quiet or self.table)  # the table replaces the per-run bars
        self.states: dict = {}
        self.live: Any = None  # a rich Live table while a parallel sweep runs

    def __call__(self, event) -> None:
        from rich.live import Live

        from bespoke.run import events

        if isinstance(event, events.SweepPlanned):
            self._planned(event)
            if self.table:
                self.states = {run_id: events.Snapshot(run_id, "queued") for run_id in event.run_ids}
                self.live = Live(progress_table(self.states), console=self.console, refresh_per_second=4)
                self.live.start()
        elif isinstance(event, events.RunDone):
            self._done(event.row)
        elif isinstance(event, events.Progress) and self.live is not None:
            self.states[event.run_id] = event.snapshot
            self.live.update(progress_table(self.states))
        elif not self.table or isinstance(event, events.Message) and event.level == "warning":
            self.runs(event)

    def _planned(self, event) -> None:
        if self.quiet:
            return
        note = f" (shard {event.shard[0]}/{event.shard[1]}: {len(event.run_ids)} of {event.planned})" if event.shard \
            else ""
        self.console.print(f"sweep: {len(event.run_ids)} run(s){note}: {', '.join(event.run_ids) or '-'}")

    def _done(self, row) -> None:
        if self.live is not None:
            from bespoke.run.events import Snapshot

            done = self.states.get(row.run_id)
            label = done.label if done is not None else ""
            self.states[row.run_id] = Snapshot(row.run_id, "skipped" if row.skipped else row.status, label=label,
                                               epoch=row.epochs_done, total_epochs=row.epochs_total)
            self.live.update(progress_table(self.states))
            if all(s.status not in ("queued", "starting", "preflight", "training") for s in self.states.values()):
                self.live.stop()
                self.live = None
        if not self.quiet:
            announce(self.console, row)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def announce(console, row) -> None:
    """How one run of a sweep ended, in a line (and the trainer's error with the log's path when it failed)."""
    from bespoke.kohya.output import trainer_error

    style = {"finished": "green", "stopped-early": "green", "failed": "red", "interrupted": "yellow",
             "error": "red"}.get(row.status, "")
    extra = f" ({row.reason})" if row.reason and row.status != "finished" and not row.skipped else ""
    skipped = f" (already {row.status}, skipped)" if row.skipped else ""
    text = f"{row.run_id}: {row.status}{skipped}{extra}"
    console.print(text, style=style or None, markup=False, highlight=False)
    if row.status == "failed" and row.log_tail:
        error = trainer_error(row.log_tail)
        if error:
            console.print(f"    {error}", markup=False, highlight=False)
        if row.run_dir is not None:
            console.print(f"    full log: {row.run_dir / 'logs' / 'train.log'}", markup=False, highlight=False)


def progress_table(states: dict):
    """The live table of a parallel sweep: one row per run."""
    from rich.table import Table

    table = Table(title="sweep", expand=False)
    for column in ("run", "where", "status", "epoch", "step", "loss"):
        table.add_column(column)
    for snap in states.values():
        table.add_row(snap.run_id, snap.label or "-", snap.status, f"{snap.epoch}/{snap.total_epochs or '?'}",
                      f"{snap.step}/{snap.total_steps or '?'}", f"{snap.loss:.4f}" if snap.loss is not None else "-")
    return table


def _local(settings, console, request, choices: tuple[bool, bool, bool, bool, bool], flags: LoopFlags) -> None:
    from bespoke.cli.train import loop_setup
    from bespoke.run.events import Broadcast
    from bespoke.run.train import TrainOptions

    restart, process, as_json, quiet, preflight = choices
    loop, notifier, finish = loop_setup(settings, flags, kind="sweep")
    view = SweepView(console, quiet, parallel=bool(request.gpus))
    options = TrainOptions(restart=restart, preflight=preflight, loop=loop)
    with finish:  # whatever happens from here on, the on-finish command runs once
        try:
            outcome = _run_local(settings, request, options, (view, Broadcast.of([view, notifier])), process)
        finally:
            view.close()
            notifier.close()
        finish.record("interrupted" if outcome.interrupted else _sweep_status(outcome.rows),
                      runs=" ".join(r.run_id for r in outcome.rows), cost_usd=sweep_cost(outcome.rows))
        _render_local(console, outcome, as_json)


def _sweep_status(rows) -> str:
    return "failed" if any(r.status not in ("finished", "stopped-early") for r in rows) else "finished"


def _run_local(settings, request, options, views, process: bool):
    from bespoke.pipeline.sweep import process_sweep_rows
    from bespoke.run.sweep import run_sweep

    view, observer = views
    try:
        outcome = run_sweep(settings, request, options, observer)
        view.close()  # the live table is gone before processing shows its own progress
        if process and not outcome.interrupted:
            process_sweep_rows(outcome.rows)
    except KeyboardInterrupt:
        raise Interrupted("sweep interrupted; run the same command again to resume where it stopped") from None
    return outcome


def _render_local(console, outcome, as_json: bool) -> None:
    from bespoke.console import out

    if as_json:
        click.echo(json.dumps(rows_to_json(outcome.rows), indent=2))
    labels, notes = row_labels(outcome.rows)
    (console if as_json else out).print(comparison_table(outcome.rows, labels))  # stdout: the JSON alone
    for note in notes:
        console.print(note, highlight=False)
    if outcome.interrupted:
        raise Interrupted("sweep interrupted; run the same command again to resume where it stopped")
    bad = [r.run_id for r in outcome.rows if r.status not in ("finished", "stopped-early")]
    if bad:
        raise TrainerError(f"{len(bad)} of {len(outcome.rows)} runs did not finish: {', '.join(bad)} "
                           "(see each run's logs/train.log)")
