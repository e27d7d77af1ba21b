"""Domain exceptions. The CLI turns every `BespokeError` into a one-line message and its exit code."""

from __future__ import annotations

from collections.abc import Iterable
from difflib import SequenceMatcher
from os.path import commonprefix


class BespokeError(Exception):
    """Base class: a problem the user can fix. `str(err)` is the one-line message."""

    exit_code = 1


class UsageError(BespokeError):
    """Bad flags or arguments (exit 2, like click)."""

    exit_code = 2


class ConfigError(BespokeError):
    """A preset, training TOML, dataset TOML, prompt file or bespoke.toml is wrong."""

    exit_code = 2


class DatasetError(BespokeError):
    """A source dataset cannot be prepared (bad image, missing caption, ...)."""

    exit_code = 3


class RunError(BespokeError):
    """A run folder is missing, locked, or in a state that does not allow the action."""

    exit_code = 4


class TrainerError(BespokeError):
    """The external trainer (sd-scripts) failed or produced nothing."""

    exit_code = 5


class PreflightError(BespokeError):
    """Preflight refused: the installed sd-scripts would stop on this run's configs on this box (exit 7).

    Its own code, apart from 1 (a crash, or doctor's "not ready") and 5 (the trainer failed, or the probe could not
    run): a script or a Slurm array (`sacct` shows ExitCode 7:0) can tell "fix the config or the box, nothing ran"
    from "bespoke or the trainer broke". 7 is the first code bespoke had not used; it stays clear of click's 2,
    the shell's 126/127 and 128 + signal."""

    exit_code = 7


class ProcessError(BespokeError):
    """Post-processing samples failed for every input (no samples, nothing readable)."""

    exit_code = 6


class Interrupted(BespokeError):
    """A signal stopped bespoke (Ctrl-C, SIGTERM, SIGHUP); the run was marked interrupted. The exit code is the
    conventional 128 + signal number: 130 for SIGINT (the default), 143 for SIGTERM, 129 for SIGHUP."""

    exit_code = 130

    def __init__(self, message: str, signum: int | None = None):
        super().__init__(message)
        if signum is not None:
            self.exit_code = 128 + int(signum)


def close_matches(word: str, choices: Iterable[str], cutoff: float = 0.6) -> list[str]:
    """The choices close to `word`, the likeliest first. Case is ignored (option names mix it: AdamW,
    cosine); a choice that starts with what was typed (a name cut short: "adamw8") comes first, then the
    most similar (difflib's ratio), favouring a longer shared beginning ("adamw9": AdamW before Adam)."""
    typed = word.lower()
    scored = []
    for choice in dict.fromkeys(choices):
        name = choice.lower()
        ratio = SequenceMatcher(None, typed, name).ratio()
        if ratio >= cutoff:
            shared = len(commonprefix([typed, name])) / max(len(typed), 1)
            scored.append((name.startswith(typed), ratio + shared / 2, choice))
    return [choice for *_, choice in sorted(scored, key=lambda item: item[:2], reverse=True)]


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """Return ' (did you mean "x"?)' for the closest choice, or '' when nothing is close."""
    close = close_matches(word, choices, cutoff)
    return f' (did you mean "{close[0]}"?)' if close else ""
