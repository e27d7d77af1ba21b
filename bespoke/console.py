"""The two rich Consoles of the process, so that bespoke scripts well.

- `out` (stdout): results — launch commands, tables, report paths; `--json` output goes there alone
  (click.echo), so a command run with `--json` prints nothing else on stdout.
- `console` (stderr): progress bars, messages, warnings.

Written to a pipe or a file (not a terminal), neither wraps nor truncates: rich would otherwise lay everything
out for 80 columns, breaking long paths and launch commands over lines and cutting table headers. There they
get a wide virtual width (tables still take only the width they need) and plain text stays on one line; no
colour codes are written.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console

PIPE_WIDTH = 4000  # "no wrapping": wider than any line bespoke prints


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def make_console(stderr: bool) -> Console:
    """A Console on stderr or stdout: the terminal's width on a terminal, unwrapped in a pipe or file."""
    tty = _is_tty(sys.stderr if stderr else sys.stdout)
    return Console(stderr=stderr, highlight=False, width=None if tty else PIPE_WIDTH, soft_wrap=not tty)


console = make_console(stderr=True)
out = make_console(stderr=False)
