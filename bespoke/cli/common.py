"""What every command shares: the settings of this invocation, the one-line error for domain exceptions, and
the resolution of run and dataset arguments (one resolver each: bespoke.run.paths)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bespoke.errors import BespokeError

if TYPE_CHECKING:  # the settings and run folders load when a command runs, not for --help
    from bespoke.settings import Settings

RES_HELP = "Training resolution (512, 256, 128 or 64)."


class BespokeClickError(click.ClickException):
    """A BespokeError shown as `Error: <message>` with the domain exit code."""

    def __init__(self, error: BespokeError):
        super().__init__(str(error))
        # click annotates exit_code as ClassVar[int] but only ever reads it from the raised instance
        # (`e.exit_code` in Command.main), so a per-error code set here is what click acts on.
        self.exit_code = error.exit_code  # type: ignore[misc]


class BespokeGroup(click.Group):
    """Turns every BespokeError raised by a command into a clean one-line error (the one place this happens)."""

    def invoke(self, ctx: click.Context) -> Any:
        from bespoke import progress
        from bespoke.cli.display import display_for

        try:
            with progress.use_display(display_for(quiet=False)):  # a command's --quiet replaces it (quiet_option)
                return super().invoke(ctx)
        except BespokeError as error:
            raise BespokeClickError(error) from error


def get_settings(ctx: click.Context) -> Settings:
    """Settings of this invocation, resolved once: flags over BESPOKE_* env over bespoke.toml over defaults."""
    from bespoke.settings import load_settings

    obj = ctx.find_root().obj
    if "settings" not in obj:
        flags = obj["flags"]
        changes: dict[str, object] = {}
        for key in ("outputs_dir", "sd_scripts"):
            if flags.get(key):
                changes[key] = Path(flags[key]).expanduser().resolve()
        for key in ("sd_python", "base_model"):
            if flags.get(key):
                changes[key] = flags[key]
        obj["settings"] = load_settings().with_overrides(**changes)
    return obj["settings"]


def run_argument(ctx: click.Context, arg: str) -> Path:
    """A RUN argument: a run folder, a run id in the outputs folder, or a unique prefix of one."""
    from bespoke.run.paths import resolve_run

    return resolve_run(arg, get_settings(ctx).outputs_dir)


def dataset_argument(ctx: click.Context, arg: str | None) -> Path:
    """A --dataset / DATASET argument: a folder, or a name in the datasets folder (default bespoke_punks)."""
    from bespoke.run.paths import resolve_dataset

    return resolve_dataset(arg, get_settings(ctx).datasets_dir)


def short_path(path: Path | str) -> str:
    """A folder relative to the current directory when it is below it (with a trailing slash)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve())) + "/"
    except ValueError:
        return str(path)


def quiet_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`-q/--quiet` for a command, with the display it asks for installed while the command runs (rich is
    imported only then: `bespoke --help` stays quick)."""

    @click.option("-q", "--quiet", is_flag=True, help="Print only the result (no progress bars or messages).")
    @functools.wraps(func)
    def wrapper(*args: Any, quiet: bool, **kwargs: Any) -> Any:
        from bespoke import progress
        from bespoke.cli.display import display_for

        with progress.use_display(display_for(quiet)):
            return func(*args, quiet=quiet, **kwargs)

    return wrapper


def profile_option(func):
    """`--profile NAME`: score with a profile of score_profiles.toml (default: score_profile in bespoke.toml)."""
    return click.option("--profile", "profile_name", default=None,
                        help="Score with this score profile of score_profiles.toml (`bespoke vote --calibrate` "
                             "makes one; default: score_profile in bespoke.toml, else the stated weights; "
                             "`default` = the stated weights).")(func)


def chosen_profile(ctx, name: str | None):
    """The Profile asked for by --profile or bespoke.toml's score_profile; None for the stated weights."""
    from bespoke.review.profiles import DEFAULT_PROFILE, load_profile

    settings = get_settings(ctx)
    name = name or settings.score_profile
    return None if name in (None, DEFAULT_PROFILE) else load_profile(settings.project_root, name)
