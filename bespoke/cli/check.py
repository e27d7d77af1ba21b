"""`bespoke check FILE|RUN…`: validate sd-scripts files edited by hand (or a run folder's), the way `plan`
validates its own."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
def check(files):
    """Validate sd-scripts files you edited by hand (training TOML, dataset TOML, sample prompts) or a whole run
    folder the way `plan` validates its own: every key, type and choice, with "did you mean", and the rules the
    trainer enforces across keys and files (bucket steps and bounds, workers, ranges, images and captions in
    image_dir, network_weights). A file inside a run folder is checked together with its sibling config."""
    from rich.markup import escape

    from bespoke.console import console, out
    from bespoke.errors import BespokeError, ConfigError
    from bespoke.kohya.check import file_problems

    failed, count = [], 0
    for name in files:
        try:
            kind, summary, problems = file_problems(Path(name))
        except BespokeError as error:  # not readable as a config at all
            kind, summary, problems = "", "", [error]
        if problems:
            failed.append(name)
            count += len(problems)
            for problem in problems:
                console.print(f"[red]error[/red] {escape(str(problem))}", soft_wrap=True)
            continue
        out.print(f"[green]ok[/green]    {escape(name)}: {kind}, {summary}", soft_wrap=True)
    if failed:
        raise ConfigError(f"{len(failed)} of {len(files)} file(s) failed the check ({count} problem"
                          f"{'s' if count != 1 else ''})")
