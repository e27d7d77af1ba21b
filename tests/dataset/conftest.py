"""Fixtures for the dataset tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cache(tmp_path) -> Path:
    """An empty cache folder for prepared datasets."""
    return tmp_path / "cache"
