"""The `bespoke` click group. Commands live in one module per area (bespoke/cli/*.py); each parses its
flags, calls one library function and renders the result. Domain errors become one-line messages here.
Heavy imports (numpy, the pipeline modules) happen inside commands so `bespoke --help` stays fast.
"""

from __future__ import annotations

import click

from bespoke import __version__
from bespoke.errors import BespokeError


class BespokeClickError(click.ClickException):
    """A BespokeError shown as `Error: <message>` with the domain exit code."""

    def __init__(self, error: BespokeError):
        super().__init__(str(error))
        self.exit_code = error.exit_code


class BespokeGroup(click.Group):
    """Turns every BespokeError raised by a command into a clean one-line error."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BespokeError as error:
            raise BespokeClickError(error) from error


@click.group(cls=BespokeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bespoke")
@click.option("--outputs", "outputs_dir", type=click.Path(path_type=str), help="Runs folder (default: ./outputs).")
@click.option("--sd-scripts", "sd_scripts", type=click.Path(path_type=str), help="Your kohya-ss sd-scripts checkout.")
@click.option("--python", "sd_python", help="The Python of that checkout (default: its venv, else this one).")
@click.option("--base-model", "base_model", help="SD 1.5 base model: a local file/folder or a hub id.")
@click.pass_context
def main(ctx, outputs_dir, sd_scripts, sd_python, base_model):
    """bespoke: 24x24 punks -> SD 1.5 LoRA (kohya-ss sd-scripts) -> clean 24 px candidates.

    Settings come from these flags, then BESPOKE_* environment variables, then bespoke.toml in the
    project root, then defaults.
    """
    ctx.obj = {
        "flags": {
            "outputs_dir": outputs_dir,
            "sd_scripts": sd_scripts,
            "sd_python": sd_python,
            "base_model": base_model,
        }
    }


def get_settings(ctx: click.Context):
    """Resolve settings once per invocation (flags over env over bespoke.toml over defaults)."""
    from pathlib import Path

    from bespoke.settings import load_settings

    obj = ctx.find_root().obj
    if "settings" not in obj:
        settings = load_settings()
        flags = obj["flags"]
        changes = {}
        for key in ("outputs_dir", "sd_scripts"):
            if flags.get(key):
                changes[key] = Path(flags[key]).expanduser().resolve()
        for key in ("sd_python", "base_model"):
            if flags.get(key):
                changes[key] = flags[key]
        obj["settings"] = settings.with_overrides(**changes)
    return obj["settings"]


def _register() -> None:
    # Each area module adds its commands to `main`; a missing module simply means that area is not built.
    import importlib

    for name in ("prepare", "plan", "train", "process", "review", "baseline", "inspect", "demo"):
        try:
            module = importlib.import_module(f"bespoke.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bespoke.cli.{name}":
                raise
            continue
        module.register(main)


_register()
