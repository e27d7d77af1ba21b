"""Helpers for the dataset tests: source pairs on disk, colour sets, and checks written independently of bespoke."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

RESOLUTIONS = (512, 256, 128, 64)



def tree(folder: Path) -> dict[str, str]:
    """name -> sha256 of every file below `folder` (to prove nothing changed)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def assert_nothing_written(cache: Path) -> None:
    prepared = cache / "prepared"
    leftovers = sorted(p.name for p in prepared.iterdir()) if prepared.exists() else []
    assert leftovers == [], f"cache not clean: {leftovers}"


def colours(array: np.ndarray) -> set[tuple[int, int, int]]:
    flat = array.reshape(-1, array.shape[-1])[:, :3].astype(np.uint32)
    packed = np.unique((flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2])
    return {(int(v) >> 16, (int(v) >> 8) & 255, int(v) & 255) for v in packed}


def png_bytes(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **params)
    return buffer.getvalue()


def write_pair(folder: Path, name: str, image: Image.Image | bytes, caption: bytes | str = "pixel art, punk") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = image if isinstance(image, bytes) else png_bytes(image)
    (folder / f"{name}.png").write_bytes(data)
    (folder / f"{name}.txt").write_bytes(caption.encode() if isinstance(caption, str) else caption)


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "RGB"
        return np.asarray(img).copy()


def expected_cells(out: np.ndarray, edges) -> np.ndarray:
    """Check in the test, independently of the module, that every cell is one flat colour; return the 24x24 grid."""
    grid = np.zeros((24, 24, 3), np.uint8)
    for i in range(24):
        for j in range(24):
            cell = out[edges[i]:edges[i + 1], edges[j]:edges[j + 1]].reshape(-1, 3)
            assert (cell == cell[0]).all(), f"cell {i},{j} is not flat"
            grid[i, j] = cell[0]
    return grid
