"""The one rich Console of the process. It writes to stderr so stdout stays clean for data (--json)."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True, highlight=False)
