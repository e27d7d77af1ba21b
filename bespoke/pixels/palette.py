"""Palettes: the `--palette` request, reading one (hex list, folder of 24 px images), and k colours.

Snapping to a fixed palette lives in bespoke.pixels.merge (only ever within the tolerance of what the model
drew); `kmeans_colors` is the explicit "give me k colours" request, which may move cells farther (every
candidate reports how far: `moved_beyond`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from bespoke.errors import UsageError
from bespoke.pixels.colour import BoxIndex, box_index, rgb_to_lab


@dataclass(frozen=True)
class Palette:
    """A palette request: mode "dataset" | "folder" (fixed colours) or "k" (k colours chosen per image)."""

    mode: str
    colors: NDArray[np.uint8] | None = None  # Nx3 uint8 RGB for dataset/folder
    k: int | None = None

    @cached_property
    def lab(self) -> NDArray[np.float64] | None:
        """The fixed colours in CIELAB (computed once per process), None for a "k" palette."""
        return None if self.colors is None else rgb_to_lab(self.colors)

    def index(self, radius: float) -> BoxIndex | None:
        """The fixed colours' BoxIndex for searches within `radius` (built once per radius and process)."""
        if self.lab is None:
            return None
        cache = self._indexes
        if radius not in cache:
            cache[radius] = box_index(self.lab, radius)
        return cache[radius]

    @cached_property
    def codes(self) -> NDArray[np.integer[Any]] | None:
        """The fixed colours as sorted 0xRRGGBB codes (metrics.off_palette), None for a "k" palette."""
        if self.colors is None:
            return None
        c = self.colors.astype(np.int64)
        return np.unique((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2])

    @cached_property
    def _indexes(self) -> dict[float, BoxIndex]:
        return {}

    def to_json(self) -> dict[str, Any]:
        """The report's "palette" entry: mode, size (colours, or k) and, with fixed colours, their sha256."""
        data: dict[str, Any] = {"mode": self.mode,
                                "size": int(len(self.colors)) if self.colors is not None else self.k}
        if self.colors is not None:  # which colours, so a report can tell whether it used this very palette
            data["sha256"] = hashlib.sha256(np.ascontiguousarray(self.colors, np.uint8).tobytes()).hexdigest()
        return data


def parse_hex(values: Iterable[object], where: str) -> NDArray[np.uint8]:
    """A list of "#rrggbb" strings as an Nx3 uint8 RGB array (sorted, duplicates dropped).

    Raises UsageError naming `where` for a malformed entry or an empty list."""
    out = []
    for value in values:
        text = str(value).strip().lstrip("#")
        if len(text) != 6:
            raise UsageError(f"{where}: palette entry {value!r} is not #rrggbb")
        try:
            out.append([int(text[i:i + 2], 16) for i in (0, 2, 4)])
        except ValueError as exc:
            raise UsageError(f"{where}: palette entry {value!r} is not #rrggbb") from exc
    if not out:
        raise UsageError(f"{where}: the palette is empty")
    return np.unique(np.array(out, dtype=np.uint8), axis=0)


def palette_from_folder(folder: Path) -> NDArray[np.uint8]:
    """Every RGB colour used by the images in `folder` (e.g. the 24 px training punks): Nx3 uint8, sorted.

    Unreadable images are skipped; raises UsageError when none is readable."""
    colors = []
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() not in (".png", ".gif", ".bmp", ".webp"):
            continue
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB")).reshape(-1, 3)
        except OSError:
            continue
        colors.append(np.unique(arr, axis=0))
    if not colors:
        raise UsageError(f"{folder}: no readable images to build a palette from; pass a folder of 24 px PNGs")
    return np.unique(np.concatenate(colors), axis=0)


def kmeans_colors(arr24: NDArray[np.uint8], k: int, iterations: int = 12) -> NDArray[np.uint8]:
    """Reduce to at most k colours: k-means in CIELAB seeded by farthest-point; centres snap to the most
    frequent member colour, so every output colour is one the extraction actually found. Returns an array
    of `arr24`'s shape (RGB 0-255), `arr24` itself when it has at most k colours."""
    flat = arr24.reshape(-1, 3)
    colors, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if len(colors) <= k:
        return arr24
    lab = rgb_to_lab(colors)
    seeds = [lab[int(np.argmax(counts))]]
    dmin = np.linalg.norm(lab - seeds[0], axis=1)
    for _ in range(k - 1):
        seeds.append(lab[int(np.argmax(dmin * np.sqrt(counts)))])
        dmin = np.minimum(dmin, np.linalg.norm(lab - seeds[-1], axis=1))
    centres = np.array(seeds)
    for _ in range(iterations):
        label = np.linalg.norm(lab[:, None] - centres[None], axis=2).argmin(axis=1)
        for c in range(k):
            member = label == c
            if member.any():
                centres[c] = np.average(lab[member], axis=0, weights=counts[member])
    label = np.linalg.norm(lab[:, None] - centres[None], axis=2).argmin(axis=1)
    rep = np.arange(len(colors))
    for c in range(k):
        members = np.flatnonzero(label == c)
        if len(members):
            rep[members] = members[np.argmax(counts[members])]
    return colors[rep][inverse].reshape(arr24.shape)


def parse_spec(spec: str | None) -> tuple[str, int | None, Path | None] | None:
    """`--palette` text -> ("dataset", None, None) | ("k", N, None) | ("folder", None, path) | None (no
    palette, for None or ""). Raises UsageError for k outside 2-256 or a path that is not a folder."""
    if spec is None or spec == "":
        return None
    if spec == "dataset":
        return ("dataset", None, None)
    if spec.startswith("k:"):
        try:
            k = int(spec[2:])
        except ValueError:
            k = 0
        if not 2 <= k <= 256:
            raise UsageError(f"--palette {spec}: k must be a whole number from 2 to 256, e.g. k:16")
        return ("k", k, None)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise UsageError(f"--palette {spec}: not 'dataset', 'k:<N>' or a folder of 24 px images")
    return ("folder", None, path)
