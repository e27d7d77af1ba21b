"""Atomic writes and content hashes. Every file bespoke writes goes through here.

Files and folders honour the umask like `open()` and `mkdir()` do (0644 / 0755 under the usual 022):
`tempfile` creates its files 0600 and its folders 0700 whatever the umask, so they are widened here.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read from /proc on Linux; elsewhere set and restored under a lock)."""
    if sys.platform.startswith("linux"):
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
        except (OSError, ValueError, IndexError):
            pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from `open()`: 0666 minus the umask."""
    return 0o666 & ~current_umask()


def make_temp_dir(parent: Path, prefix: str, suffix: str = "") -> Path:
    """`tempfile.mkdtemp` in `parent`, widened to what `mkdir` gives under the umask (0755 by default)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    os.chmod(folder, 0o777 & ~current_umask())
    return folder


def atomic_write_stream(path: Path, write: Callable[[IO[Any]], object], *, text: bool = False) -> None:
    """Atomically write `path` by calling `write(handle)`: temp file in the same folder, fsync, `os.replace`.

    Streaming writers (a 10 000-sample CSV) never build the whole content in memory. `text=True` opens the
    handle as UTF-8 text with no newline translation.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, file_mode())
        else:  # Windows: only the read-only bit exists
            os.chmod(tmp, file_mode())
        handle: IO[Any] = os.fdopen(fd, "w", encoding="utf-8", newline="") if text else os.fdopen(fd, "wb")
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and `os.replace`."""
    atomic_write_stream(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data) -> None:
    """Write JSON (indented, UTF-8, trailing newline) atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: Path) -> dict | None:
    """A JSON object from `path`, or None when it is missing, unreadable or not an object (for derived files
    bespoke can rebuild; its own records are read with their own strict loaders)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: Path) -> str:
    """Hash of every file below `root` (relative names + contents), independent of walk order."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(sha256_file(path).encode("ascii"))
    return digest.hexdigest()


def move_aside(path: Path, name_for) -> Path:
    """Rename `path` to the first `name_for(n)` (n = 1, 2, ...) that does not exist yet; never overwrites."""
    path = Path(path)
    n = 1
    while (target := path.with_name(name_for(n))).exists():
        n += 1
    os.rename(path, target)
    return target
