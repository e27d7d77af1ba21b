"""Designs held out for validation: whole designs, so a background twin of a held-out punk never trains.

The user's 203 punks are 203 pictures but fewer designs: the same figure drawn on another background, under
the same name (lad_102_bunya / lad_102_bunya2) or under another name and number (lad_012_chromium and
lad_026/027/028_chromiumabstract*, lady_006_pepper / lady_053_pepperabstract, lady_001_hazelnut /
lady_022_gold / lady_023_silver). A random split (sd-scripts' own `validation_split`) puts one twin in each set
and the validation loss then measures memory. So the split is over designs:

- two pictures are one design when their names share the leading `<kind>_<number>` (the user numbers a punk's
  variants: lad_055_Luke, lad_055_Luke10), or when their figures (bespoke.pixels.figure: what is not the
  background) match on at least TWIN_SHARE of the cells either figure covers (within TWIN_TOLERANCE delta E);
  on the user's punks this makes 163 designs of the 203 pictures: the twins under two names match on 0.81-0.97,
  the closest pictures left apart on 0.74 (lad_012_chromium / lad_059_SamAScientist). The figure found on a
  checkered or striped background (issue 21's bespoke.pixels.figure) joins two twins an earlier, flat-background
  figure missed: lady_054_hazelnutabstract-3 with lady_001_hazelnut (0.96) and lady_051_rosieabstract with
  lady_000_lemon (0.83; the headband recoloured), 165 designs before (RULE_VERSION 1);
- designs are shuffled with the seed and taken until the held-out pictures reach the share of all pictures,
  rounded down (never every design): a dataset too small to hold out one picture at that share (4 punks at
  0.1) holds out none and trains on all of them.

The two image folders sd-scripts reads (`train/`, `validation/`: hard links to the prepared images and captions,
copies where links cannot be made) live in the dataset cache beside the prepared folder, made once per
(dataset, share, seed) and renamed into place whole; `holdout.json` there names the held-out designs.

Why its own thresholds, not novelty's NEAR_COPY: one design for validation is wider than a near copy. Issue 21's
novelty (the share of a training figure a candidate reproduces, shifted up to two cells) puts a near copy at
0.95 and finds the user's own edits of one lady (lady_022_gold / lady_023_silver, under a tenth of the figure
changed) at 0.934 -- apart as copies, but one design here, or the validation loss measures memory of a
figure that trains. That shifted share (bespoke.pixels.novelty, merged now) could replace `_twins`, at a threshold
calibrated for designs (bump RULE_VERSION), not at NEAR_COPY.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bespoke.dataset.prepare import PreparedDataset
from bespoke.fsutil import atomic_write_json, make_temp_dir
from bespoke.pixels.colour import rgb_to_lab
from bespoke.pixels.figure import figure_mask
from bespoke.pixels.novelty import read_prepared

RULE_VERSION = 2  # part of the folder's key: bump when the grouping changes (2: issue 21's figure)
TWIN_SHARE = 0.80  # share of the cells either figure covers that match: at or above, one design
TWIN_TOLERANCE = 8.0  # delta E within which two figures' cells match
RULE = (f"designs = pictures whose names share <kind>_<number>, or whose figures match on >= {TWIN_SHARE:.2f} "
        f"of their cells (delta E {TWIN_TOLERANCE:g}); whole designs held out, seeded")
_PREFIX = re.compile(r"^([A-Za-z]+_\d+)_")


@dataclass(frozen=True)
class Holdout:
    """The designs held out for validation and the two image folders of the split."""

    train_dir: Path
    validation_dir: Path
    share: float
    seed: int
    designs: tuple[tuple[str, ...], ...]  # the held-out designs, each its pictures' names
    train_images: int

    @property
    def names(self) -> list[str]:
        return sorted(name for design in self.designs for name in design)

    def to_json(self) -> dict:
        return {"share": self.share, "seed": self.seed, "rule": RULE, "images": len(self.names),
                "train_images": self.train_images, "designs": [list(d) for d in self.designs],
                "train_dir": str(self.train_dir), "validation_dir": str(self.validation_dir)}


def group_designs(names: Sequence[str], pictures: Sequence[NDArray[np.uint8]]) -> list[list[str]]:
    """The designs among 24x24 RGB pictures (see the module docstring), each sorted, in name order."""
    parent = list(range(len(names)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        parent[root(i)] = root(j)

    first: dict[str, int] = {}
    for i, name in enumerate(names):
        match = _PREFIX.match(name)
        if match:
            join(i, first.setdefault(match.group(1), i))
    for i, j in _twins(pictures):
        join(i, j)
    groups: dict[int, list[str]] = {}
    for i, name in enumerate(names):
        groups.setdefault(root(i), []).append(name)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def _twins(pictures: Sequence[NDArray[np.uint8]]) -> list[tuple[int, int]]:
    """Pairs of pictures whose figures match (TWIN_SHARE of the cells either figure covers)."""
    if len(pictures) < 2:
        return []
    masks = np.stack([figure_mask(p).reshape(-1) for p in pictures])
    lab = np.stack([rgb_to_lab(np.asarray(p).reshape(-1, 3)) for p in pictures])
    pairs = []
    for i in range(len(pictures) - 1):
        near = ((lab[i + 1:] - lab[i]) ** 2).sum(axis=-1) <= TWIN_TOLERANCE ** 2
        both = masks[i + 1:] & masks[i]
        either = masks[i + 1:] | masks[i]
        shares = (near & both).sum(axis=1) / np.maximum(either.sum(axis=1), 1)
        pairs += [(i, i + 1 + int(j)) for j in np.flatnonzero(shares >= TWIN_SHARE)]
    return pairs


def choose(designs: Sequence[Sequence[str]], share: float, seed: int) -> list[list[str]]:
    """The designs to hold out: shuffled with `seed`, taken until their pictures reach `share` of all, rounded
    down (never all of them; none when that is less than one picture or there are fewer than two designs)."""
    total = sum(len(d) for d in designs)
    target = math.floor(share * total + 1e-9)
    if target < 1 or len(designs) < 2:
        return []
    order = [list(d) for d in designs]
    random.Random(seed).shuffle(order)
    held: list[list[str]] = []
    count = 0
    for design in order[:-1]:
        if count >= target:
            break
        held.append(design)
        count += len(design)
    return sorted(held, key=lambda d: d[0])


def hold_out(prepared: PreparedDataset, share: float, seed: int) -> Holdout | None:
    """The split of `prepared` (made once and kept in the cache beside it); None when `share` is 0 or the
    dataset has fewer than two designs."""
    if share <= 0:
        return None
    key = hashlib.sha256(f"{RULE_VERSION}\0{prepared.sha256}\0{share!r}\0{seed}".encode()).hexdigest()[:12]
    folder = prepared.dir.parent / f"{prepared.dir.name}.holdout-{key}"
    record = _read(folder)
    if record is None:
        names = [str(e["name"]) for e in prepared.report.get("images") or [] if isinstance(e, dict) and e.get("name")]
        training = read_prepared(prepared.dir, names, prepared.layout.edges)
        pictures = [training.rgb(i) for i in range(len(training))]
        held = choose(group_designs(list(training.names), pictures), share, seed)
        if not held:
            return None
        record = _build(prepared.dir, folder, held)
    designs = tuple(tuple(d) for d in record["designs"])
    return Holdout(folder / "train", folder / "validation", share, seed, designs, int(record["train_images"]))


def _read(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / "holdout.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("designs"), list) else None


def _build(prepared_dir: Path, folder: Path, held: list[list[str]]) -> dict:
    """Both folders in a temporary folder, renamed into place whole (another plan may have made it meanwhile)."""
    held_names = {name for design in held for name in design}
    tmp = make_temp_dir(folder.parent, prefix=f".tmp-{folder.name}-")
    try:
        counts = {"train": 0, "validation": 0}
        for image in sorted(prepared_dir.glob("*.png")):
            side = "validation" if image.stem in held_names else "train"
            counts[side] += 1
            for path in (image, image.with_suffix(".txt")):
                if path.is_file():
                    _link(path, tmp / side / path.name)
        record = {"designs": held, "train_images": counts["train"], "validation_images": counts["validation"],
                  "rule": RULE}
        atomic_write_json(tmp / "holdout.json", record)
        try:
            os.rename(tmp, folder)
        except OSError:
            if _read(folder) is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return _read(folder) or record
        return record
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
