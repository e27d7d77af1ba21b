"""`bespoke generate RUN`: images from a run's checkpoint through sd-scripts gen_img.py, then `process`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bespoke.cli.common import get_settings, quiet_option, run_argument


@click.command()
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
@quiet_option
@click.option("--json", "as_json", is_flag=True, help="Print generate.json (+ process summary) on stdout.")
@click.option("--preflight/--no-preflight", default=True, show_default=True,
              help="Check gen_img.py's arguments, the tokenizer (offline too), attention backend and files first.")
@click.pass_context
def generate(ctx, run, epoch, prompts_file, seeds, mul, steps, scale, sampler, force, no_process, quiet, as_json,
             preflight):
    """Images from RUN's LoRA checkpoint via sd-scripts gen_img.py, named <prompt>_s<seed>.png in
    RUN/generated/e<epoch>/ with generate.json beside them, then `process` on that folder."""
    from rich.markup import escape

    from bespoke.console import out
    from bespoke.pipeline.generate import generate_and_process
    from bespoke.run.generate import GenerateRequest, parse_seeds

    settings = get_settings(ctx)
    run_dir = run_argument(ctx, run)
    request = GenerateRequest(epoch=epoch, prompts_file=Path(prompts_file) if prompts_file else None,
                              seeds=parse_seeds(seeds), mul=mul, steps=steps, scale=scale, sampler=sampler,
                              force=force, preflight=preflight)
    result = generate_and_process(settings, run_dir, request, process=not no_process)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    out.print(f"epoch {result['epoch']}: {len(result['images'])} images "
                  f"({len(result['prompts'])} prompts x {len(result['seeds'])} seeds) in {escape(result['outdir'])}"
                  + (" (reused)" if result.get("reused") else ""))
    report = result.get("report")
    if report:
        for row in report["epochs"]:
            out.print(f"  processed {row['samples']} images: colors_nearest mean "
                          f"{row['colors_nearest_mean']:.1f}, clean {row['clean_pct']:.0f} %; "
                          f"report {escape(report['report'])}")
