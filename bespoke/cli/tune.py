"""`bespoke tune SPACE`: search settings with Optuna (bespoke.tune), each trial an ordinary run `trial-N`;
`bespoke tune report STUDY`: the trials, the best and its margin, importances, a review of the top trials."""

from __future__ import annotations

import json

import click

from bespoke.cli.common import get_settings, quiet_option
from bespoke.errors import Interrupted, UsageError


class TuneGroup(click.Group):
    """`tune SPACE ...` runs the study; `tune report STUDY` reports it."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=TuneGroup)
def tune():
    """Search a run's settings with Optuna: `bespoke tune SPACE.toml [--gpus 0,1 | --slurm N]`, then
    `bespoke tune report STUDY`. A trial is an ordinary run named trial-N; hopeless trials are pruned after an
    epoch; `tune` again continues the same study (see README "Searching settings")."""


def trials_table(report):
    from rich.table import Table

    from bespoke.run.cost import usd

    table = Table(title=f"study {report.study} ({report.objective}, {report.direction})")
    for column in ("trial", "state", "settings", "value", "interval", "best epoch", "pruned at", "cost", "run"):
        table.add_column(column, no_wrap=column in ("trial", "run"))
    for row in report.rows:
        interval = f"{row.low:.3f}-{row.high:.3f}" if row.low is not None and row.high is not None else "-"
        table.add_row(str(row.number), row.state, ", ".join(f"{k}={_short(v)}" for k, v in row.params.items()),
                      f"{row.value:.4f}" if row.value is not None else "-", interval,
                      str(row.best_epoch) if row.best_epoch is not None else "-",
                      str(row.pruned_at) if row.pruned_at is not None else "-",
                      usd(row.cost_usd) if row.cost_usd is not None else "-", row.run_id or "-")
    return table


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def render_report(report, console, as_json: bool) -> None:
    from rich.markup import escape

    from bespoke.console import out

    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    (console if as_json else out).print(trials_table(report))
    if report.best is not None:
        margin = f", {report.margin:.4f} ahead of trial {report.runner_up}" if report.margin is not None else ""
        console.print(f"best: trial {report.best}{margin}", highlight=False)
    if report.importances:
        console.print("importances: " + ", ".join(f"{k} {v:.2f}" for k, v in report.importances.items()),
                      highlight=False)
    if report.importance_note:
        console.print(report.importance_note, highlight=False)
    if report.review is not None:
        console.print(f"review of the top trials: {escape(str(report.review))}", highlight=False)


@tune.command("run")
@click.argument("space_file", metavar="SPACE", type=click.Path(path_type=str))
@click.option("--gpus", help="One worker per GPU of this machine, e.g. --gpus 0,1.")
@click.option("--slurm", "slurm_tasks", type=int, metavar="N",
              help="Submit N Slurm array tasks, each a worker pulling trials from the shared storage.")
@click.option("--storage", help="Optuna storage URL (e.g. sqlite:///study.db) or a journal file "
                                "(default: <outputs>/tunes/<study>/journal.log).")
@click.option("--partition", help="--slurm: partition (default: bespoke.toml [slurm] partition).")
@click.option("--time", "time_limit", help="--slurm: time limit per task, e.g. 12:00:00.")
@click.option("--gres", help="--slurm: generic resources per task, e.g. gpu:1.")
@click.option("--preflight/--no-preflight", default=True, show_default=True,
              help="Check each trial's run with sd-scripts' own code inside its launch.")
@click.option("--study-name", hidden=True, help="The study's name when SPACE has no [study] name (Slurm workers "
                                                 "run the study's copy of the space).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@quiet_option
@click.pass_context
def run(ctx, space_file, gpus, slurm_tasks, storage, partition, time_limit, gres, preflight, study_name, as_json,
        quiet):
    """Run (or continue) the study of SPACE here, or on Slurm (`bespoke tune SPACE` is the same)."""
    from bespoke.console import console
    from bespoke.tune.space import load_space

    settings = get_settings(ctx)
    space = load_space(space_file, study_name)
    if slurm_tasks is not None:
        from bespoke.run.slurm import slurm_request
        from bespoke.tune.slurm import submit_study

        if gpus:
            raise UsageError("--slurm lets Slurm place the workers: drop --gpus (ask for GPUs with --gres)")
        request = slurm_request(settings.slurm, partition=partition, time=time_limit, gres=gres)
        submitted = submit_study(settings, space, slurm_tasks, request, storage)
        console.print(f"submitted {slurm_tasks} worker task(s) of study {space.name} as array job {submitted.job_id}"
                      f" ({submitted.script}); follow it with `bespoke tune report {space.name}`, stop it with "
                      f"`bespoke cancel {space.name}`", highlight=False)
        return
    if partition or time_limit or gres:
        raise UsageError("--partition/--time/--gres are for --slurm")
    _here(settings, space, (storage, gpus, preflight), console, (as_json, quiet))


def _here(settings, space, how, console, shown) -> None:
    from bespoke.cli.display import TrainView
    from bespoke.tune.report import tune_report
    from bespoke.tune.worker import tune_here

    storage, gpus, preflight = how
    as_json, quiet = shown
    try:
        outcome = tune_here(settings, space, storage=storage, gpus=gpus, preflight=preflight,
                            observer=TrainView(console, quiet or bool(gpus)))
    except KeyboardInterrupt:
        raise Interrupted("tune interrupted; run the same command again to continue the study") from None
    if outcome.interrupted:
        raise Interrupted(f"study {space.name} interrupted; its running trial is kept: run the same command again "
                          "to resume it and continue the study", outcome.signum)
    render_report(tune_report(outcome.study), console, as_json)
    if outcome.ended:
        console.print(f"budget spent: {outcome.ended}", highlight=False)


@tune.command("report")
@click.argument("study_name", metavar="STUDY")
@click.option("--storage", help="The study's storage, when it is not the journal in its folder.")
@click.option("--review/--no-review", "review", default=True, show_default=True,
              help="Write a review page of the top trials.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.pass_context
def report(ctx, study_name, storage, review, as_json):
    """The trials of STUDY, the best and its margin over the runner-up, importances, a review of the top."""
    from bespoke.console import console
    from bespoke.tune.report import tune_report
    from bespoke.tune.study import load_study

    study = load_study(get_settings(ctx), study_name, storage)
    render_report(tune_report(study, review=review), console, as_json)
