"""Palette steps on a 24x24 candidate: merge near-duplicate colours, snap to a palette, reduce to k colours.

Distances: merging is perceptual (CIE76 delta E in CIELAB, D65); snapping to a known palette works in RGB
after removing a global colour cast (SD tints whole images; a shared offset is not a colour choice).

Snapping never adds colours to the merged candidate (a real dataset's union palette has thousands of
near-duplicate colours; nearest-colour snapping per cell would split what merging joined): each image
picks a small sub-palette from its merged clusters (see `snap`). A merged colour farther than MAX_SNAP
from every palette colour is kept as it is and counted off_palette rather than repainted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bespoke.errors import UsageError

DEFAULT_MERGE = 4.0  # delta E: below this two cell colours are one colour drawn twice
MAX_SNAP = 40.0  # RGB distance: a merged colour farther than this from every palette colour stays off-palette
COLOR_COST = 4.0  # nats (plus ln(palette size) to name the colour): what one more colour must earn
CANDIDATES_PER_CLUSTER = 4  # palette colours nearest each cluster centre the sub-palette may use
CAST_CANDIDATES = 16  # palette colours nearest each cluster centre the cast is measured against
HUBER = 2.0  # sigmas: beyond this a cell's cost grows linearly (robust to a cluster's minority)
SIGMA_MIN, SIGMA_MAX = 1.5, 16.0  # clamp of the measured per-channel cell noise


@dataclass(frozen=True)
class Palette:
    """A palette request: mode "dataset" | "folder" (fixed colours) or "k" (k colours chosen per image)."""

    mode: str
    colors: np.ndarray | None = None  # Nx3 uint8 for dataset/folder
    k: int | None = None

    def to_json(self) -> dict:
        data = {"mode": self.mode, "size": int(len(self.colors)) if self.colors is not None else self.k}
        if self.colors is not None:  # which colours, so a report can tell whether it used this very palette
            import hashlib

            data["sha256"] = hashlib.sha256(np.ascontiguousarray(self.colors, np.uint8).tobytes()).hexdigest()
        return data


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
    return float(np.clip(np.median(best) / 1.25, SIGMA_MIN, SIGMA_MAX))


def snap(arr24: np.ndarray, palette: np.ndarray, merged: np.ndarray | None = None, *, correct_cast: bool = True,
         max_distance: float | None = None) -> np.ndarray:
    """Snap a candidate's cell colours to a palette without ever adding colours.

    `arr24` are the raw cell colours, `merged` the same cells after merge_near (the `grid` candidate;
    computed with DEFAULT_MERGE when None). A global colour cast is removed first (SD tints whole images;
    a shared offset is not a colour choice). Then the merged colour clusters bound the result:

    - a cluster whose centre is farther than `max_distance` (RGB, MAX_SNAP by default) from every palette
      colour keeps its merged colour: forcing it onto an unrelated palette colour would repaint the
      sample, so it stays and counts as off_palette;
    - the other clusters choose a per-image sub-palette -- the fewest palette colours that explain them:
      greedy facility location where a cluster costs the sum over its cells of a robust (Huber) Gaussian
      cost of their distance to the colour (sigma = the cell noise measured on the image; a few cells of
      another colour in a cluster do not drag it to their mean) and a colour joins only if it saves more
      than COLOR_COST + ln(palette size) nats, at most one colour per cluster; then Lloyd rounds and pruning;
    - each cell takes the sub-palette colour with the best posterior (distance, and a prior for the
      colours the image uses more), so a cell the greedy merge put in the wrong cluster can leave it.

    The result has at most as many colours as `merged`. With a palette of thousands of colours (a real
    dataset's union), noise can no longer scatter one drawn colour over its palette neighbours; with a
    small one, a colour the merge swallowed comes back when another cluster chose it."""
    if merged is None:
        merged = merge_near(arr24)
    max_distance = MAX_SNAP if max_distance is None else float(max_distance)
    flat = arr24.reshape(-1, 3).astype(np.float64)
    pal = palette.astype(np.float64)
    # the merged clusters, their cell counts and mean raw colours
    mcolors, label0 = np.unique(merged.reshape(-1, 3), axis=0, return_inverse=True)
    label0 = label0.reshape(-1)
    weight = np.bincount(label0, minlength=len(mcolors)).astype(np.float64)
    raw_centres = np.stack([np.bincount(label0, weights=flat[:, c], minlength=len(mcolors)) for c in range(3)],
                           axis=1) / weight[:, None]
    cast = np.zeros(3)
    dc2 = _sqdist(raw_centres, pal)
    if correct_cast:
        # per cell, against the palette colours near the clusters (a cast is a few levels, not a new hue)
        near = min(CAST_CANDIDATES, len(pal))
        local = pal[np.unique(np.argpartition(dc2, near - 1, axis=1)[:, :near])]
        d2 = _sqdist(flat, local)
        limit2 = max_distance**2  # cells farther than this from the palette say nothing about a cast
        for _ in range(3):
            fit = d2.min(axis=1) <= limit2
            if not fit.any():
                break
            step = np.median(flat[fit] - cast - local[d2[fit].argmin(axis=1)], axis=0)
            if np.abs(step).max() < 0.5:
                break
            trial = _sqdist(flat - (cast + step), local)
            if np.minimum(trial.min(axis=1), limit2).sum() >= np.minimum(d2.min(axis=1), limit2).sum():
                break
            cast, d2 = cast + step, trial
        dc2 = _sqdist(raw_centres - cast, pal)
    on_cluster = dc2.min(axis=1) <= max_distance**2
    out_colors = mcolors[label0].astype(np.uint8)  # off-palette cells keep their merged colour
    on = on_cluster[label0]
    if on.any():
        units = np.flatnonzero(on_cluster)
        sigma = _noise_sigma(arr24)
        # the distinct cell colours of the on-palette clusters, and the cluster (unit) each belongs to
        colors, inverse, counts = np.unique(flat[on], axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        unit_of = np.zeros(len(colors), dtype=np.intp)
        unit_of[inverse] = np.searchsorted(units, label0[on])
        y = colors - cast
        # candidates: the palette colours nearest each cluster centre and the one nearest each cell colour
        wide = min(CAST_CANDIDATES, len(pal))
        nearby = np.argpartition(dc2[units], wide - 1, axis=1)[:, :wide]
        nearest = np.take_along_axis(nearby, np.argsort(np.take_along_axis(dc2[units], nearby, axis=1), axis=1),
                                     axis=1)[:, :CANDIDATES_PER_CLUSTER]
        local = np.unique(nearby)
        cand = np.unique(np.concatenate([nearest.ravel(), local[_sqdist(y, pal[local]).argmin(axis=1)]]))
        cost = _robust_cost(_sqdist(y, pal[cand]), sigma, max_distance)
        # 1. the sub-palette, from the merged clusters: all cells of a cluster on one colour
        ccost = np.zeros((len(units), len(cand)))
        np.add.at(ccost, unit_of, counts[:, None] * cost)
        empty = np.bincount(unit_of, weights=counts, minlength=len(units)) * _robust_cost(
            np.array(max_distance**2), sigma, max_distance)
        penalty = COLOR_COST + np.log(len(pal))
        chosen = _facility(ccost, penalty, len(units), empty)
        # 2. each cell takes one of those colours (so it can leave a cluster the greedy merge put it in);
        #    MAP: a cell between two of the image's colours goes to the one the image uses more
        sub = cost[:, chosen]
        label = sub.argmin(axis=1)
        for _ in range(3):
            used = np.bincount(label, weights=counts, minlength=len(chosen))
            new = (sub - np.log((used + 0.5) / counts.sum())[None, :]).argmin(axis=1)
            if np.array_equal(new, label):
                break
            label = new
        out_colors[on] = palette[cand[chosen][label]][inverse]
    return out_colors.reshape(arr24.shape)


def _robust_cost(d2: np.ndarray, sigma: float, max_distance: float) -> np.ndarray:
    """Negative log-likelihood (nats) of a cell at squared distance d2 from a colour: Gaussian up to
    HUBER sigma, linear beyond (a cluster holding a few cells of another colour keeps its own colour
    instead of moving to their mean), constant beyond max_distance."""
    r = np.sqrt(np.minimum(d2, max_distance**2)) / sigma
    return np.where(r <= HUBER, 0.5 * r * r, HUBER * r - 0.5 * HUBER * HUBER)


def _facility(cost: np.ndarray, penalty: float, limit: int, empty: np.ndarray) -> np.ndarray:
    """Columns of `cost` (units x candidate colours, each unit's total cost on that colour) to open:
    greedy from `empty` (each unit's cost with no colour), each must save more than `penalty` (at most
    `limit`, at least one); then Lloyd rounds (each open colour moves to the candidate that best serves
    its units) and pruning (a colour whose units the others serve almost as well goes)."""
    chosen: list[int] = []
    cur = empty.astype(np.float64)
    while len(chosen) < limit:
        gain = np.maximum(cur[:, None] - cost, 0.0).sum(axis=0)
        best = int(gain.argmax())
        if chosen and gain[best] <= penalty:
            break
        chosen.append(best)
        cur = np.minimum(cur, cost[:, best])
    chosen_arr = np.array(chosen, dtype=np.intp)
    for _ in range(3):
        label = cost[:, chosen_arr].argmin(axis=1)
        moved = np.unique([int(cost[label == j].sum(axis=0).argmin()) for j in range(len(chosen_arr))
                           if (label == j).any()])
        if np.array_equal(np.sort(chosen_arr), moved):
            break
        chosen_arr = moved
    while len(chosen_arr) > 1:
        sub = cost[:, chosen_arr]
        total = sub.min(axis=1).sum()
        losses = [np.delete(sub, j, axis=1).min(axis=1).sum() - total for j in range(len(chosen_arr))]
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
