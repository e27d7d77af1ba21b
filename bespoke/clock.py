"""Timestamps as bespoke writes them into manifests and reports."""

from __future__ import annotations

import datetime as _dt


def now_iso() -> str:
    """Local time with its UTC offset, seconds precision (e.g. 2026-12-01T20:36:25+00:00)."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")
