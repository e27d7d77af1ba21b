"""Palette steps on a 24x24 candidate: merge near-duplicate colours, snap to a palette, reduce to k colours.

Distances: merging is perceptual (CIE76 delta E in CIELAB, D65); snapping to a known palette is nearest
in RGB after removing a global colour cast (SD tints whole images; a shared offset is not a colour choice).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bespoke.errors import UsageError

DEFAULT_MERGE = 4.0  # delta E: below this two cell colours are one colour drawn twice


@dataclass(frozen=True)
class Palette:
    """A palette request: mode "dataset" | "folder" (fixed colours) or "k" (k colours chosen per image)."""

    mode: str
    colors: np.ndarray | None = None  # Nx3 uint8 for dataset/folder
    k: int | None = None

    def to_json(self) -> dict:
        return {"mode": self.mode, "size": int(len(self.colors)) if self.colors is not None else self.k}


def parse_hex(values, where: str) -> np.ndarray:
    """A list of "#rrggbb" strings as an Nx3 uint8 array."""
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


def palette_from_folder(folder: Path) -> np.ndarray:
    """Every RGB colour used by the images in `folder` (e.g. the 24 px training punks)."""
    from PIL import Image

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


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (uint8, ...x3) to CIELAB (float, D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def merge_near(arr24: np.ndarray, threshold: float = DEFAULT_MERGE) -> np.ndarray:
    """Merge colours closer than `threshold` delta E into the most frequent of them (greedy, by frequency)."""
    if threshold <= 0:
        return arr24
    flat = arr24.reshape(-1, 3)
    colors, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(-counts, kind="stable")
    lab = rgb_to_lab(colors)
    target = np.arange(len(colors))
    assigned = np.zeros(len(colors), dtype=bool)
    limit = threshold**2
    # one pass per cluster centre (a few dozen), not per colour pair
    for i in order:
        if assigned[i]:
            continue
        d = lab - lab[i]
        close = (~assigned) & ((d * d).sum(axis=1) < limit)
        target[close] = i
        assigned |= close
    return colors[target][inverse].reshape(arr24.shape)


def snap(arr24: np.ndarray, palette: np.ndarray, correct_cast: bool = True) -> np.ndarray:
    """Each pixel to a palette colour: nearest in RGB after removing a global colour cast, then a few
    rounds of MAP assignment where colours this image already uses are preferred over ones it does not
    (a cell halfway between its image's skin tone and another punk's is that skin tone)."""
    flat = arr24.reshape(-1, 3).astype(np.float64)
    colors, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    pal = palette.astype(np.float64)

    def sqdist(points):
        return ((points[:, None, :] - pal[None, :, :]) ** 2).sum(axis=2)

    d2 = sqdist(colors)
    idx = d2.argmin(axis=1)
    if correct_cast:
        cast = np.zeros(3)
        for _ in range(3):
            residual = flat - cast - pal[idx[inverse]]
            step = np.median(residual, axis=0)
            if np.abs(step).max() < 0.5:
                break
            trial = sqdist(colors - (cast + step))
            if (trial.min(axis=1) * counts).sum() >= (d2.min(axis=1) * counts).sum():
                break
            cast, d2, idx = cast + step, trial, trial.argmin(axis=1)
    # noise scale from the first assignment; median |3-D Gaussian| = 1.54 sigma
    sigma = max(1.0, float(np.median(np.sqrt(d2.min(axis=1))[inverse])) / 1.54)
    n = len(flat)
    for _ in range(3):
        used = np.bincount(idx, weights=counts, minlength=len(pal))
        cost = d2 / (2 * sigma**2) - np.log((used + 0.5) / n)[None, :]
        new = cost.argmin(axis=1)
        if np.array_equal(new, idx):
            break
        idx = new
    return palette[idx][inverse].reshape(arr24.shape)


def kmeans_colors(arr24: np.ndarray, k: int, iterations: int = 12) -> np.ndarray:
    """Reduce to at most k colours: k-means in CIELAB seeded by farthest-point; centres snap to the most
    frequent member colour, so every output colour is one the extraction actually found."""
    flat = arr24.reshape(-1, 3)
    colors, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if len(colors) <= k:
        return arr24
    lab = rgb_to_lab(colors)
    centres = [lab[int(np.argmax(counts))]]
    dmin = np.linalg.norm(lab - centres[0], axis=1)
    for _ in range(k - 1):
        centres.append(lab[int(np.argmax(dmin * np.sqrt(counts)))])
        dmin = np.minimum(dmin, np.linalg.norm(lab - centres[-1], axis=1))
    centres = np.array(centres)
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
    """`--palette` text -> ("dataset", None, None) | ("k", N, None) | ("folder", None, path) | None."""
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
