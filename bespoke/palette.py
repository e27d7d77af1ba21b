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
MAX_SNAP = 40.0  # RGB distance: a merged colour farther than this from every palette colour stays off-palette
COLOR_COST = 4.0  # nats (plus ln(palette size) to name the colour): what one more colour must earn
SIGMA_MIN, SIGMA_MAX = 1.5, 16.0  # clamp of the measured per-channel cell noise


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


def _sqdist(points: np.ndarray, pal: np.ndarray) -> np.ndarray:
    """Squared RGB distances, points x palette, without the points x palette x 3 intermediate."""
    d2 = (points * points).sum(1)[:, None] + (pal * pal).sum(1)[None, :] - 2.0 * points @ pal.T
    return np.maximum(d2, 0.0)


def _noise_sigma(cells: np.ndarray) -> float:
    """Per-channel noise of the cell colours: in flat areas (most of a punk) a cell's closest 4-neighbour
    differs from it by noise alone, |difference| ~ sqrt(2) sigma * chi(3) -- median 2.18 sigma."""
    c = cells.astype(np.float64)
    big = np.full(cells.shape[:2], np.inf)
    best = big.copy()
    for axis in (0, 1):
        d = np.sqrt(((np.diff(c, axis=axis)) ** 2).sum(axis=2))
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        best[tuple(lo)] = np.minimum(best[tuple(lo)], d)
        best[tuple(hi)] = np.minimum(best[tuple(hi)], d)
    return float(np.clip(np.median(best) / 2.18, SIGMA_MIN, SIGMA_MAX))


def snap(arr24: np.ndarray, palette: np.ndarray, merged: np.ndarray | None = None, *, correct_cast: bool = True,
         max_distance: float | None = None) -> np.ndarray:
    """Snap a candidate's cell colours to a palette without ever adding colours.

    `arr24` are the raw cell colours, `merged` the same cells after merge_near (the `grid` candidate;
    computed with DEFAULT_MERGE when None). Its colour clusters bound the result: each cluster whose
    centre lies within `max_distance` (RGB, after the cast) of the palette is "on palette", the others
    keep their merged colour (they are counted off_palette: forcing them onto an unrelated palette colour
    would repaint the sample). The on-palette cells then choose a per-image sub-palette: the fewest palette
    colours that explain them -- greedy facility location where a colour joins only if it lowers the
    cells' Gaussian cost (noise sigma measured on the image) by more than the cost of one more colour,
    capped at the number of on-palette clusters -- then a few Lloyd rounds, and each cell takes the
    nearest sub-palette colour. With a palette of thousands of colours, noise can no longer scatter one
    drawn colour over its palette neighbours; with a small palette, distinct colours closer than the merge
    threshold are still told apart. A global colour cast (SD tints whole images) is removed first."""
    if merged is None:
        merged = merge_near(arr24)
    max_distance = MAX_SNAP if max_distance is None else float(max_distance)
    flat = arr24.reshape(-1, 3).astype(np.float64)
    colors, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    pal = palette.astype(np.float64)
    d2 = _sqdist(colors, pal)
    idx = d2.argmin(axis=1)
    cast = np.zeros(3)
    if correct_cast:
        for _ in range(3):
            residual = flat - cast - pal[idx[inverse]]
            step = np.median(residual, axis=0)
            if np.abs(step).max() < 0.5:
                break
            trial = _sqdist(colors - (cast + step), pal)
            if (trial.min(axis=1) * counts).sum() >= (d2.min(axis=1) * counts).sum():
                break
            cast, d2, idx = cast + step, trial, trial.argmin(axis=1)
    x = colors - cast

    # the merged clusters: every unique raw colour belongs to exactly one (merge_near maps colour -> colour)
    mflat = merged.reshape(-1, 3)
    mcolors, minv = np.unique(mflat, axis=0, return_inverse=True)
    minv = minv.reshape(-1)
    cluster_of = np.zeros(len(colors), dtype=np.intp)
    cluster_of[inverse] = minv
    weight = np.bincount(cluster_of, weights=counts, minlength=len(mcolors))
    centres = np.stack([np.bincount(cluster_of, weights=counts * x[:, c], minlength=len(mcolors))
                        for c in range(3)], axis=1) / np.maximum(weight, 1)[:, None]
    dc2 = _sqdist(centres, pal)
    on_cluster = dc2.min(axis=1) <= max_distance**2
    out_colors = mcolors[cluster_of].astype(np.uint8)  # off-palette cells keep their merged colour
    on = on_cluster[cluster_of]
    if on.any():
        cand = np.unique(np.concatenate([idx[on], dc2[on_cluster].argmin(axis=1)]))
        sigma = _noise_sigma(arr24)
        cost = d2[on][:, cand] / (2 * sigma**2)
        cap = max_distance**2 / (2 * sigma**2)  # a cell farther than this from every colour costs the same
        cost = np.minimum(cost, cap)
        w = counts[on]
        penalty = COLOR_COST + np.log(len(pal))
        chosen = _facility(cost, w, penalty, int(on_cluster.sum()), cap)
        pick = cand[chosen][cost[:, chosen].argmin(axis=1)]
        out_colors[on] = palette[pick]
    return out_colors[inverse].reshape(arr24.shape)


def _facility(cost: np.ndarray, w: np.ndarray, penalty: float, limit: int, cap: float) -> np.ndarray:
    """Columns of `cost` (cells x candidate colours) to open: greedy, each must save more than `penalty`
    (at most `limit`, at least one), then Lloyd rounds (each open colour moves to the candidate that best
    serves its cells) and a pruning pass (a colour whose cells are served almost as well by the others goes)."""
    cur = np.full(len(w), cap)
    chosen: list[int] = []
    while len(chosen) < limit:
        gain = (w[:, None] * np.maximum(cur[:, None] - cost, 0.0)).sum(axis=0)
        best = int(gain.argmax())
        if chosen and gain[best] <= penalty:
            break
        chosen.append(best)
        cur = np.minimum(cur, cost[:, best])
    chosen_arr = np.array(chosen, dtype=np.intp)
    for _ in range(3):
        label = cost[:, chosen_arr].argmin(axis=1)
        moved = chosen_arr.copy()
        for j in range(len(chosen_arr)):
            member = label == j
            if member.any():
                moved[j] = int((w[member, None] * cost[member]).sum(axis=0).argmin())
        moved = np.unique(moved)
        if np.array_equal(np.sort(chosen_arr), moved):
            break
        chosen_arr = moved
    # prune: drop the colour whose removal costs least while that is under the penalty
    while len(chosen_arr) > 1:
        sub = cost[:, chosen_arr]
        total = (w * sub.min(axis=1)).sum()
        losses = [(w * np.delete(sub, j, axis=1).min(axis=1)).sum() - total for j in range(len(chosen_arr))]
        j = int(np.argmin(losses))
        if losses[j] >= penalty:
            break
        chosen_arr = np.delete(chosen_arr, j)
    return chosen_arr


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
