"""Where the test suite finds things: the repository, ../shared (the user's data, optional) and the fake trainer."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED = REPO.parent / "shared"
FAKE_DIR = TESTS / "fakes" / "sd_scripts"
ARTIFACTS = TESTS / "artifacts"
