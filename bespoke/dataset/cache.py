"""Where prepared datasets live: `<cache_dir>/prepared/<hash16>/`, keyed by every input byte and option.

A finished folder is only ever created by renaming a complete `.tmp-*` folder into place, so a crash leaves at
most a `.tmp-*` folder behind, never a final one; abandoned ones are cleaned up by the next run.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

from bespoke.dataset.sources import SourceFile
from bespoke.fsutil import make_temp_dir

PREPARE_VERSION = 1  # bump when the produced bytes change: it is part of the cache key
PREPARED_SUBDIR = "prepared"
STALE_TMP_SECONDS = 3600


def dataset_key(files: list[SourceFile], resolution: int, layout: str, background: str, trigger: str | None) -> str:
    """sha256 over every source's bytes and every option that changes the output (the cache key)."""
    digest = hashlib.sha256()
    header = f"bespoke-prepare v{PREPARE_VERSION}\0{resolution}\0{layout}\0{background}\0{trigger or ''}\0"
    digest.update(header.encode("utf-8"))
    for file in sorted(files, key=lambda f: f.name):
        digest.update(f"{file.name}\0{file.image_sha256}\0{file.caption_sha256}\0".encode())
    return digest.hexdigest()


def prepared_root(cache_dir: Path) -> Path:
    """The folder that holds one sub-folder per prepared dataset."""
    return Path(cache_dir).expanduser().resolve() / PREPARED_SUBDIR


def prepared_folder(root: Path, key: str) -> Path:
    """The final folder of the dataset with cache key `key`."""
    return root / key[:16]


def make_tmp_folder(root: Path, key: str) -> Path:
    """A fresh `.tmp-<hash16>-*` folder inside `root` to build a dataset in before it is renamed into place."""
    return make_temp_dir(root, prefix=f".tmp-{key[:16]}-")


def clean_stale_tmp(root: Path) -> None:
    """Remove `.tmp-*` folders under `root` that a killed run left behind more than STALE_TMP_SECONDS ago."""
    now = time.time()
    for entry in root.glob(".tmp-*"):
        try:
            if entry.is_dir() and now - entry.stat().st_mtime > STALE_TMP_SECONDS:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass
