"""`bespoke demo`: the whole pipeline on generated data, with simulated training, in seconds."""

from __future__ import annotations

import time

import click

from bespoke.cli.common import get_settings, quiet_option
from bespoke.cli.review import epoch_table, open_report


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str),
              help="Demo folder (default: ./bespoke_demo). Re-running reuses what is there.")
@click.option("--epochs", type=click.IntRange(1, 100), help="Epochs per run (default 10; 4 with --quick).")
@click.option("--prompts", type=click.IntRange(1, 64), help="Sample prompts per epoch (default 8; 4 with --quick).")
@click.option("--quick", is_flag=True, help="A smaller demo: 4 epochs x 4 prompts.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic dataset and the simulator.")
@click.option("--open", "open_browser", is_flag=True, help="Open the report in your web browser.")
@quiet_option
@click.pass_context
def demo(ctx, out_dir, epochs, prompts, quick, seed, open_browser, quiet):
    """Everything bespoke does, on data it makes itself, without a GPU.

    Generates synthetic punks, prepares them at 512/256/128/64 px, writes the four real run configs
    (validated as for training; the launch commands are printed but never run), makes per-epoch samples
    with a SIMULATOR instead of training, processes them into 24 px candidates and builds the review.
    """
    from rich.markup import escape

    from bespoke.console import console, out
    from bespoke.demo.demo import run_demo
    from bespoke.review.build import best_rules

    settings = get_settings(ctx)
    console.print("[bold]bespoke demo[/] — [bold white on red] SIMULATED TRAINING [/] the configs and commands are "
                  "real; the samples come from bespoke's simulator, not from a model.")
    started = time.perf_counter()

    result = run_demo(settings, out_dir, epochs=epochs, prompts=prompts, quick=quick, seed=seed)
    if result.sd_scripts_placeholder and not quiet:
        console.print("[yellow]No sd-scripts checkout configured:[/] the commands above point at ./sd-scripts as a "
                      "placeholder. Set it with --sd-scripts, BESPOKE_SD_SCRIPTS or bespoke.toml to train for real.")
    if not quiet:
        review = result.review
        for view in review.views:
            out.print(epoch_table(view))
        for rule in best_rules(review.views):
            console.print(f"[dim]best-epoch rule: {rule}[/]")
        stages = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result.timings.items())
        console.print(f"time: {stages}; total {time.perf_counter() - started:.1f}s")
    out.print(f"[bold]report:[/] {escape(str(result.html))}", soft_wrap=True)
    if open_browser:
        open_report(result.html, lambda text: console.print(escape(text), soft_wrap=True))
