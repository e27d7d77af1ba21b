"""The fault table: every fault test adds its row (case | on disk afterwards | exit code | stop time | re-run);
with BESPOKE_FAULT_TABLE=path the rows are appended there as Markdown when the session ends."""

from __future__ import annotations

import os

import pytest

ROWS: list[str] = []


@pytest.fixture(scope="session")
def fault_table():
    yield ROWS
    if os.environ.get("BESPOKE_FAULT_TABLE") and ROWS:
        with open(os.environ["BESPOKE_FAULT_TABLE"], "a", encoding="utf-8") as handle:
            handle.write("\n".join(ROWS) + "\n")
