"""bespoke's one reader of its own TOML files (bespoke.toml, presets, sweep files): the standard library's
`tomllib` (`tomli` before Python 3.11), with a syntax error reported as one line naming the file and line.

The files bespoke hands to sd-scripts are read back with the `toml` package instead (bespoke.kohya.config),
because that is the parser sd-scripts itself uses.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bespoke.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
TOMLDecodeError = tomllib.TOMLDecodeError


def syntax_message(source: str, exc: Exception) -> str:
    """`<source>, line L, column C: <what tomllib found>` (the position moved to the front)."""
    text = str(exc)
    match = _WHERE.search(text)
    if match:
        text = text[: match.start()]
        return f"{source}, line {match.group(1)}, column {match.group(2)}: not valid TOML: {text}"
    return f"{source}: not valid TOML: {text}"


def parse_toml(text: str, source: str) -> dict:
    """Parse TOML text; a syntax error is a ConfigError naming `source` and the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(syntax_message(source, exc)) from None


def strict_error(text: str) -> str | None:
    """What the strict parser (tomllib) finds wrong with a TOML text, position included; None if it parses."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return str(exc)
    return None


def read_toml(path: Path, what: str = "file") -> dict:
    """Read a TOML file of bespoke's; missing, unreadable, non-UTF-8 or malformed files are one-line
    ConfigErrors naming the file (and the line for syntax errors)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the {what} as UTF-8") from None
    return parse_toml(text, str(path))
