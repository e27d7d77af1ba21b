"""`bespoke baseline plan|evaluate|compare`: the user's 512 px epoch-8 baseline — its preset, its 7-prompt
evaluation on any run, and a comparison with the recorded figures."""

from __future__ import annotations

import json

import click

from bespoke.cli.common import get_settings, run_argument
from bespoke.cli.plan import plan


@click.group()
def baseline():
    """The 512 px epoch-8 baseline (216.6 mean colours): plan it, evaluate a run with its protocol, compare."""


@baseline.command("plan")
@click.option("--dataset", help="Source punks folder (default: <datasets_dir>/bespoke_punks).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a preset value. Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout.")
@click.pass_context
def baseline_plan(ctx, dataset, overrides, as_json):
    """The baseline run, ready to train: the same as `bespoke plan -r 512 --preset baseline-512`."""
    ctx.invoke(plan, resolution=512, preset="baseline-512", dataset=dataset, overrides=overrides, prompts=None,
               layout=None, background=None, trigger=None, as_json=as_json)


def _fmt(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render_evaluation(result: dict, console) -> None:
    """Per-epoch table of an evaluation: n, mean ± sd [min, max], % clean, recorded, inside."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"baseline protocol on {result['run_id']} (via {result['via']}, "
                               f"{result['seeds_per_prompt']} seed(s) per prompt, sampler {result['sampler']})"),
                  title_justify="left")
    for column in ("epoch", "images", "mean", "± sd", "seed means min–max", "clean", "recorded", "inside?"):
        table.add_column(column, justify="left" if column == "inside?" else "right")
    for e in result["epochs"]:
        table.add_row(str(e["epoch"]), str(e["n"]), _fmt(e["mean"]), _fmt(e["sd"]),
                      f"{_fmt(e['min'])}–{_fmt(e['max'])}" if e["min"] is not None else "—",
                      f"{_fmt(e['clean_pct'])} %", _fmt(e["recorded_mean"]), _inside(e["inside"]))
    console.print(table)
    for line in result["deviations"]:
        console.print(f"[yellow]protocol deviation:[/yellow] {escape(line)}")
    for line in result["notes"]:
        console.print(f"note: {escape(line)}")


def _inside(value) -> str:
    return {True: "[green]yes[/green]", False: "[red]no[/red]", None: "—"}[value]


def render_compare(rows: list[dict], evaluation: dict, console) -> None:
    """The comparison table and its footnote."""
    from rich.markup import escape
    from rich.table import Table

    from bespoke.review.baseline import FOOTNOTE, INSIDE_RULE

    table = Table(title=escape(f"{evaluation['run_id']} vs the recorded 512 px baseline (colors_nearest, "
                               "mean over the 7 prompts)"), title_justify="left")
    for column in ("epoch", "recorded", "this run", "± sd", "diff", "clean rec.", "clean run", "n", "inside?"):
        table.add_column(column, justify="left" if column == "inside?" else "right")
    for row in rows:
        label = row["label"] if row["label"] != "final" else f"{row['epoch']} (final)"
        star = " *" if row["epoch"] == 8 else ""
        diff = row["difference"]
        table.add_row(label + star, _fmt(row["recorded_mean"]), _fmt(row["mean"]), _fmt(row["sd"]),
                      "—" if diff is None else f"{diff:+.1f}",
                      "—" if row["recorded_clean_pct"] is None else f"{row['recorded_clean_pct']:.0f} %",
                      "—" if row["clean_pct"] is None else f"{row['clean_pct']:.0f} %",
                      str(row["n"]) if row["n"] else "—", _inside(row["inside"]))
    console.print(table)
    console.print(f"* the headline figure (216.6). {escape(FOOTNOTE)}", soft_wrap=False)
    console.print(f"this run: via {evaluation['via']}, {evaluation['seeds_per_prompt']} seed(s) per prompt, "
                  f"sampler {escape(str(evaluation['sampler']))}; {escape(INSIDE_RULE)}.")
    for line in evaluation.get("notes", []):
        console.print(f"note: {escape(line)}")


@baseline.command("evaluate")
@click.argument("run")
@click.option("--seeds-per-prompt", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Fixed seeds per prompt and epoch (with --via generate).")
@click.option("--via", type=click.Choice(["samples", "generate"]), default="samples", show_default=True,
              help="samples: what sd-scripts drew during training; generate: gen_img.py with N seeds.")
@click.option("--force", is_flag=True, help="With --via generate: redo generations that differ (old ones kept).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.option("--json", "as_json", is_flag=True, help="Print baseline_eval.json on stdout.")
@click.pass_context
def evaluate_cmd(ctx, run, seeds_per_prompt, via, force, quiet, as_json):
    """The 7-prompt baseline protocol on every epoch of RUN; writes RUN/report/baseline_eval.json."""
    from bespoke.console import console, out
    from bespoke.review.baseline import evaluate_run

    settings = get_settings(ctx)
    run_dir = run_argument(ctx, run)
    result = evaluate_run(settings, run_dir, seeds_per_prompt=seeds_per_prompt, via=via, force=force,
                          quiet=quiet or as_json)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    render_evaluation(result, out)
    console.print(f"written: {run_dir / 'report' / 'baseline_eval.json'}")


@baseline.command("compare")
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON on stdout.")
@click.pass_context
def compare_cmd(ctx, run, as_json):
    """RUN vs the recorded baseline, epoch by epoch (evaluates RUN's training samples first if needed)."""
    from bespoke.console import console, out
    from bespoke.review.baseline import compare

    settings = get_settings(ctx)
    run_dir = run_argument(ctx, run)
    result = compare(run_dir, settings)
    evaluation, rows = result["evaluation"], result["rows"]
    if as_json:
        click.echo(json.dumps({"run": evaluation["run"], "via": evaluation["via"], "rows": rows,
                               "evaluated_now": result["evaluated_now"], "footnote": evaluation["footnote"],
                               "inside_rule": evaluation["inside_rule"]}, indent=2, ensure_ascii=False))
        return
    if result["evaluated_now"]:
        console.print("no baseline_eval.json yet: evaluated the run's training samples first")
    render_compare(rows, evaluation, out)
