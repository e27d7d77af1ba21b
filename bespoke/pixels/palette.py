"""Palette steps on a 24x24 candidate: merge near-duplicate colours, snap to a palette, reduce to k colours.

Distances: merging is perceptual (CIE76 delta E in CIELAB, D65); snapping to a known palette works in RGB
after removing a global colour cast (SD tints whole images; a shared offset is not a colour choice).

Snapping never adds colours to the merged candidate (a real dataset's union palette has thousands of
near-duplicate colours; nearest-colour snapping per cell would split what merging joined): each image
picks a small sub-palette from its merged clusters (see `snap`). A merged colour farther than MAX_SNAP
from every palette colour is kept as it is and counted off_palette rather than repainted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from PIL import Image

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
    colors: NDArray[np.uint8] | None = None  # Nx3 uint8 RGB for dataset/folder
    k: int | None = None

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


def rgb_to_lab(rgb: NDArray[Any]) -> NDArray[np.float64]:
    """sRGB (0-255, ...x3) to CIELAB (L* a* b*, float64, D65): Euclidean distances there are CIE76 delta E."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def merge_near(arr24: NDArray[np.uint8], threshold: float = DEFAULT_MERGE) -> NDArray[np.uint8]:
    """Merge colours closer than `threshold` (CIE76 delta E) into the most frequent of them (greedy, by
    frequency); returns an array of `arr24`'s shape (RGB 0-255), `arr24` itself when threshold <= 0."""
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


def _sqdist(points: NDArray[np.float64], pal: NDArray[np.float64]) -> NDArray[np.float64]:
    """Squared RGB distances, points x palette, without the points x palette x 3 intermediate."""
    d2 = (points * points).sum(1)[:, None] + (pal * pal).sum(1)[None, :] - 2.0 * points @ pal.T
    return np.maximum(d2, 0.0)


def _noise_sigma(cells: NDArray[np.uint8]) -> float:
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


def snap(arr24: NDArray[np.uint8], palette: NDArray[np.uint8], merged: NDArray[np.uint8] | None = None, *,
         correct_cast: bool = True, max_distance: float | None = None) -> NDArray[np.uint8]:
    """Snap a candidate's cell colours to a palette without ever adding colours; returns uint8 RGB (0-255)
    in `arr24`'s shape.

    `arr24` are the raw cell colours, `merged` the same cells after merge_near (the `grid` candidate;
    computed with DEFAULT_MERGE when None), `palette` Nx3 uint8 RGB. A global colour cast is removed first
    (SD tints whole images; a shared offset is not a colour choice). Then the merged colour clusters bound
    the result:

    - a cluster whose centre is farther than `max_distance` (RGB 0-255 distance, MAX_SNAP by default) from
      every palette colour keeps its merged colour: forcing it onto an unrelated palette colour would
      repaint the sample, so it stays and counts as off_palette;
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
    clusters = _clusters(flat, merged)
    cast = _estimate_cast(flat, pal, clusters.centres, max_distance) if correct_cast else np.zeros(3)
    dc2 = _sqdist(clusters.centres - cast, pal)
    on_cluster = dc2.min(axis=1) <= max_distance**2
    out_colors = clusters.colors[clusters.label].astype(np.uint8)  # off-palette cells keep their merged colour
    on = on_cluster[clusters.label]
    if on.any():
        units = np.flatnonzero(on_cluster)
        cells = _distinct_cells(flat[on], clusters.label[on], units, cast)
        choice = _choose_colors(cells, dc2[units], pal, _noise_sigma(arr24), max_distance)
        out_colors[on] = palette[choice][cells.inverse]
    return out_colors.reshape(arr24.shape)


class _Clusters(NamedTuple):
    """The merged colour clusters of a candidate."""

    colors: NDArray[np.uint8]  # the merged colour of each cluster
    label: NDArray[np.intp]  # the cluster of each cell, in flat cell order
    centres: NDArray[np.float64]  # the mean raw RGB colour of each cluster's cells


def _clusters(flat: NDArray[np.float64], merged: NDArray[np.uint8]) -> _Clusters:
    """The clusters of `merged` (one per distinct colour) with the mean of their raw cells `flat` (Nx3)."""
    colors, label = np.unique(merged.reshape(-1, 3), axis=0, return_inverse=True)
    label = label.reshape(-1)
    weight = np.bincount(label, minlength=len(colors)).astype(np.float64)
    centres = np.stack([np.bincount(label, weights=flat[:, c], minlength=len(colors)) for c in range(3)],
                       axis=1) / weight[:, None]
    return _Clusters(colors, label, centres)


def _estimate_cast(flat: NDArray[np.float64], pal: NDArray[np.float64], centres: NDArray[np.float64],
                   max_distance: float) -> NDArray[np.float64]:
    """The global colour cast (RGB offset, float, 3) of the cells `flat` (Nx3) against the palette `pal`.

    Median offset of the cells from their nearest palette colour, a few rounds, each kept only if it brings
    the cells closer; cells farther than `max_distance` from the palette say nothing about a cast."""
    cast = np.zeros(3)
    # against the palette colours near the clusters only: a cast is a few levels, not a new hue
    near = min(CAST_CANDIDATES, len(pal))
    local = pal[np.unique(np.argpartition(_sqdist(centres, pal), near - 1, axis=1)[:, :near])]
    d2 = _sqdist(flat, local)
    limit2 = max_distance**2
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
    return cast


class _Cells(NamedTuple):
    """The distinct colours of the cells in on-palette clusters."""

    y: NDArray[np.float64]  # each distinct RGB colour, the cast removed
    counts: NDArray[np.intp]  # how many cells have it
    unit: NDArray[np.intp]  # the on-palette cluster it belongs to (an index into `units`)
    inverse: NDArray[np.intp]  # for each on-palette cell, its distinct colour


def _distinct_cells(cells: NDArray[np.float64], cluster: NDArray[np.intp], units: NDArray[np.intp],
                    cast: NDArray[np.float64]) -> _Cells:
    """The distinct colours of the on-palette `cells` (Nx3 RGB), whose clusters are `cluster` (N)."""
    colors, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    unit = np.zeros(len(colors), dtype=np.intp)
    unit[inverse] = np.searchsorted(units, cluster)
    return _Cells(colors - cast, counts, unit, inverse)


def _choose_colors(cells: _Cells, dc2: NDArray[np.float64], pal: NDArray[np.float64], sigma: float,
                   max_distance: float) -> NDArray[np.intp]:
    """The palette index each distinct cell colour takes: first the image's sub-palette from the clusters
    (all cells of a cluster on one colour), then each cell the best sub-palette colour for itself (so it can
    leave a cluster the greedy merge put it in). `dc2` are the clusters' squared distances to `pal`."""
    cand = _candidates(dc2, pal, cells.y)
    cost = _robust_cost(_sqdist(cells.y, pal[cand]), sigma, max_distance)
    far = _robust_cost(np.array(max_distance**2), sigma, max_distance)  # a cell's cost with no colour near
    chosen = _sub_palette(cost, cells, len(dc2), len(pal), far)
    return cand[chosen][_assign_cells(cost[:, chosen], cells.counts)]


def _candidates(dc2: NDArray[np.float64], pal: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.intp]:
    """Palette indices a cell may take: the CANDIDATES_PER_CLUSTER nearest each cluster centre and, among
    the CAST_CANDIDATES nearest some centre, the one nearest each distinct cell colour `y`."""
    wide = min(CAST_CANDIDATES, len(pal))
    nearby = np.argpartition(dc2, wide - 1, axis=1)[:, :wide]
    nearest = np.take_along_axis(nearby, np.argsort(np.take_along_axis(dc2, nearby, axis=1), axis=1),
                                 axis=1)[:, :CANDIDATES_PER_CLUSTER]
    local = np.unique(nearby)
    return np.unique(np.concatenate([nearest.ravel(), local[_sqdist(y, pal[local]).argmin(axis=1)]]))


def _sub_palette(cost: NDArray[np.float64], cells: _Cells, units: int, palette_size: int,
                 far: NDArray[np.float64]) -> NDArray[np.intp]:
    """Columns of `cost` (distinct cell colours x candidates, nats) the image uses: facility location over
    the `units` clusters, where a cluster with no colour costs `far` per cell and a colour must save more
    than COLOR_COST + ln(palette_size) nats to join."""
    ccost = np.zeros((units, cost.shape[1]))
    np.add.at(ccost, cells.unit, cells.counts[:, None] * cost)
    empty = np.bincount(cells.unit, weights=cells.counts, minlength=units) * far
    return _facility(ccost, COLOR_COST + np.log(palette_size), units, empty)


def _assign_cells(sub: NDArray[np.float64], counts: NDArray[np.intp]) -> NDArray[np.intp]:
    """Each distinct cell colour's column of `sub` (its cost on each sub-palette colour, nats; `counts`
    cells each): MAP, so a cell between two of the image's colours goes to the one the image uses more."""
    label = sub.argmin(axis=1)
    for _ in range(3):
        used = np.bincount(label, weights=counts, minlength=sub.shape[1])
        new = (sub - np.log((used + 0.5) / counts.sum())[None, :]).argmin(axis=1)
        if np.array_equal(new, label):
            break
        label = new
    return label


def _robust_cost(d2: NDArray[np.float64], sigma: float, max_distance: float) -> NDArray[np.float64]:
    """Negative log-likelihood (nats) of a cell at squared distance d2 from a colour: Gaussian up to
    HUBER sigma, linear beyond (a cluster holding a few cells of another colour keeps its own colour
    instead of moving to their mean), constant beyond max_distance."""
    r = np.sqrt(np.minimum(d2, max_distance**2)) / sigma
    return np.where(r <= HUBER, 0.5 * r * r, HUBER * r - 0.5 * HUBER * HUBER)


def _facility(cost: NDArray[np.float64], penalty: float, limit: int,
              empty: NDArray[np.float64]) -> NDArray[np.intp]:
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
