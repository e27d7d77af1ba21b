"""Novelty: its cost per candidate against the training images, and the data behind NEAR_COPY.

    .venv/bin/python benchmarks/bench_novelty.py [--training ../shared/bespoke_punks] [--legacy PATH] [--quick]

1. Cost: `novelty()` of 24 px candidates against every training image (the user's 203 punks when ../shared
   is present, else 203 generated punks), median over repeated runs, ms per candidate (wall and CPU), for
   generated punks, the real samples' shown candidates and exact copies. Target CPU < 1 ms for the first
   two. Also `distinct_designs` of an epoch of 8 and of 64 candidates.
2. Threshold, on the training set's own pairs (each punk as the candidate against each other one):
   background-only *twins* found two ways -- by figure identity (one's figure is in the other cell for cell,
   exact colours) and by names and captions (same number or name stem, captions equal once the background
   words are dropped) -- and *different designs* (names and captions differ beyond the background, figures
   not identical). NEAR_COPY must lie above every different design and below every twin found by identity.
3. What a copy looks like: every training punk on a new random flat background, moved up to a cell, through
   SD-like damage ("soft", "shifted": bespoke.demo.degrade) and back through the shown candidate; each punk
   moved two cells, and on a vertical gradient; halves of two punks glued together (not a copy); the real
   samples' shown candidates (../shared/samples, runs/keep_tokens_3/sample, baseline/caption_fix_eval_24px).

`--legacy PATH` measures another checkout the same way (a subprocess with `--json`; its own novelty and shown
candidate) and prints its figures beside, marked "before". `--quick` uses every 4th training punk in 3.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TREE = Path(os.environ.get("BESPOKE_TREE") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(TREE))

from PIL import Image  # noqa: E402

from bespoke.dataset.synthetic import make_punk  # noqa: E402
from bespoke.demo.degrade import degrade  # noqa: E402
from bespoke.pixels import novelty as novelty_module  # noqa: E402
from bespoke.pixels import palette as pal  # noqa: E402
from bespoke.pixels.downscale import extract  # noqa: E402
from bespoke.pixels.figure import background_mask  # noqa: E402
from bespoke.pixels.grid import find_grid  # noqa: E402
from bespoke.pixels.novelty import (  # noqa: E402
    MATCH_TOLERANCE,
    NEAR_COPY,
    TrainingSet,
    distinct_designs,
    novelty,
    read_folder,
    shares,
)

HERE = Path(__file__).resolve().parent.parent
# ../shared beside the checkout (a git worktree of it sits one level deeper)
SHARED = next((p for p in (HERE.parent / "shared", HERE.parent.parent / "shared") if p.is_dir()), HERE / "shared")
REAL = ("samples", "runs/keep_tokens_3/sample", "baseline/caption_fix_eval_24px")
COPIES_CAUGHT = 0.95  # target: this share of each kind of constructed copy is flagged


def _ms(candidates: list[np.ndarray], training: TrainingSet, repeats: int) -> tuple[float, float]:
    """(wall, CPU) ms per candidate of novelty() against the whole training set, medians of `repeats` runs."""
    novelty(candidates[0], training)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for c in candidates:
            novelty(c, training)
        wall.append((time.perf_counter() - start) / len(candidates))
        cpu.append((time.process_time() - start_cpu) / len(candidates))
    return 1000 * float(np.median(wall)), 1000 * float(np.median(cpu))


def _shown(image: Image.Image, palette: pal.Palette | None) -> np.ndarray:
    arr = np.asarray(image.convert("RGB"))
    return extract(arr, find_grid(arr), palette=palette)[0]


def _real(palette: pal.Palette | None) -> list[np.ndarray]:
    paths = [p for folder in REAL for p in sorted((SHARED / folder).glob("*.png"))]
    return [_shown(Image.open(p), palette) for p in paths]


def cost(training: TrainingSet, real: list[np.ndarray], repeats: int) -> dict:
    generated = [make_punk(5000 + i).pixels for i in range(50)]
    rows = {"generated punks": _ms(generated, training, repeats)}
    if real:
        rows["real samples' shown candidates"] = _ms(real, training, repeats)
    rows["exact copies of training images"] = _ms([training.rgb(i) for i in range(0, len(training), 4)], training,
                                                  repeats)
    for n in (8, 64):
        epoch = [make_punk(6000 + i).pixels for i in range(n)]
        start = time.perf_counter()
        distinct_designs(epoch)
        rows[f"distinct_designs of {n} candidates (wall)"] = (1000 * (time.perf_counter() - start), float("nan"))
    return rows


def _caption_core(folder: Path, name: str) -> frozenset[str] | None:
    """The caption's phrases without the background ones and the fixed prefix; None without a caption."""
    path = folder / f"{Path(name).stem}.txt"
    if not path.is_file():
        return None
    phrases = [p.strip() for p in path.read_text().lower().split(",")]
    return frozenset(p for p in phrases if p and "background" not in p and not p.startswith("pixel art")
                     and p != "24x24")


def _related(a: str, b: str) -> bool:
    """Same number (lad_102_bunya / bunya2) or name stem (lady_006_pepper / lady_053_pepperabstract)."""
    (ka, na, sa), (kb, nb, sb) = (re.match(r"([a-z]+)_(\d+)_?(.*)", Path(x).stem.lower()).groups() for x in (a, b))
    sa, sb = re.sub(r"[^a-z]", "", sa), re.sub(r"[^a-z]", "", sb)
    return (ka, na) == (kb, nb) or (min(len(sa), len(sb)) >= 4 and (sa.startswith(sb[:5]) or sb.startswith(sa[:5])))


def pairs(training: TrainingSet, folder: Path) -> dict:
    """Twins by identity and by names/captions, different designs: their shares (module docstring, 2)."""
    n = len(training)
    share = np.stack([shares(training.rgb(a), training) for a in range(n)])  # share[a, b]: a as the candidate
    exact = np.stack([shares(training.rgb(a), training, tolerance=0.5) for a in range(n)])
    names = list(training.names)
    captions = [_caption_core(folder, x) for x in names]
    by_identity, by_names, different = [], [], []
    for a in range(n):
        for b in range(a + 1, n):
            both = max(share[a, b], share[b, a])
            identical = max(exact[a, b], exact[b, a]) >= 0.99
            related = _related(names[a], names[b])
            same_caption = captions[a] is not None and captions[a] == captions[b]
            if identical:
                by_identity.append((names[a], names[b], round(float(both), 3)))
            if related and same_caption:
                by_names.append((names[a], names[b], round(float(both), 3)))
            if not related and not same_caption and not identical:
                different.append((names[a], names[b], round(float(both), 3)))
    values = np.array([d[2] for d in different])
    return {"by_identity": by_identity, "by_names": by_names, "different_n": len(different),
            "different_median": float(np.median(values)), "different_p99": float(np.percentile(values, 99)),
            "different_top": sorted(different, key=lambda d: -d[2])[:8]}


def _new_background(picture: np.ndarray, rng: np.random.Generator, gradient: bool = False) -> np.ndarray:
    out = picture.copy()
    background = background_mask(picture)
    if gradient:
        t = np.linspace(0, 1, 24)[:, None, None]
        fill = np.broadcast_to((np.array([40, 200, 120]) * (1 - t) + np.array([230, 210, 60]) * t), (24, 24, 3))
        out[background] = fill[background].astype(np.uint8)
    else:
        out[background] = rng.integers(0, 256, 3)
    return out


def _moved(picture: np.ndarray, dy: int, dx: int) -> np.ndarray:
    return picture[np.clip(np.arange(24) - dy, 0, 23)][:, np.clip(np.arange(24) - dx, 0, 23)]


def copies(training: TrainingSet, palette: pal.Palette | None, step: int) -> dict:
    """Shares of constructed copies of each (step-th) training punk, and of glued halves (module docstring, 3)."""
    rng = np.random.default_rng(0)
    found: dict[str, list[float]] = {}
    for a in range(0, len(training), step):
        punk = training.rgb(a)
        dy, dx = (int(v) for v in rng.integers(-1, 2, 2))
        cases = {"new background, moved <= 1": _moved(_new_background(punk, rng), dy, dx),
                 "new background, moved 2": _moved(_new_background(punk, rng), 2, -2 if a % 2 else 2),
                 "gradient background": _new_background(punk, rng, gradient=True)}
        for label, picture in cases.items():
            found.setdefault(label, []).append(float(shares(picture, training).max()))
        for level in ("soft", "shifted"):
            damaged = _shown(degrade(cases["new background, moved <= 1"], level, seed=a)[0], palette)
            found.setdefault(f"the same through '{level}' SD damage", []).append(float(shares(damaged, training).max()))
        other = training.rgb((a + 1 + int(rng.integers(len(training) - 1))) % len(training))
        glued = punk.copy()
        glued[:, 12:] = other[:, 12:]
        found.setdefault("glued halves of two punks (not a copy)", []).append(float(shares(glued, training).max()))
    return found


def _search_loss(training: TrainingSet, real: list[np.ndarray]) -> list[float] | None:
    """How far novelty()'s share falls below the exhaustive shares().max() (0 from RESOLVED up), on the real
    samples' shown candidates and generated punks; None for a tree whose novelty() is exhaustive."""
    if not hasattr(novelty_module, "RESOLVED"):
        return None
    candidates = real + [make_punk(7000 + i).pixels for i in range(50)]
    return [float(shares(c, training).max()) - float(novelty(c, training)["share"]) for c in candidates]


def measure(args) -> dict:
    folder = Path(args.training)
    if folder.is_dir():
        training, source = read_folder(folder), str(folder)
        palette = pal.Palette("dataset", colors=pal.palette_from_folder(folder))
    else:
        images = [make_punk(i).pixels for i in range(203)]
        training = TrainingSet.from_arrays([f"gen_{i}" for i in range(203)], images)
        source, palette = "203 generated punks (../shared absent)", None
    real = _real(palette)
    out = {"source": source, "images": len(training), "near_copy": NEAR_COPY, "tolerance": MATCH_TOLERANCE,
           "cost": cost(training, real, args.repeats), "copies": copies(training, palette, 4 if args.quick else 1),
           "real": [float(shares(c, training).max()) for c in real], "search_loss": _search_loss(training, real)}
    if folder.is_dir():
        out["pairs"] = pairs(training, folder)
    return out


def _legacy(args) -> dict | None:
    if not args.legacy:
        return None
    tree = str(Path(args.legacy).resolve())
    cmd = [sys.executable, __file__, "--json", "--training", str(args.training), "--repeats", str(args.repeats)]
    cmd += ["--quick"] if args.quick else []
    done = subprocess.run(cmd, env={**os.environ, "BESPOKE_TREE": tree, "PYTHONPATH": tree}, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def _flagged(values: list[float], threshold: float) -> str:
    v = np.array(values)
    return f"{v.min():.2f}-{v.max():.2f} (median {np.median(v):.2f}), {int((v >= threshold).sum())}/{len(v)} flagged"


def report(new: dict, old: dict | None) -> bool:
    trees = [("now", new)] + ([("before", old)] if old else [])
    print(f"training set: {new['images']} images from {new['source']}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    for tree, data in trees:
        print(f"  {tree}: near copy at share >= {data['near_copy']}, match tolerance delta E {data['tolerance']:g}")
    print(f"\n{'cost per candidate':<46} {'tree':<7} {'wall ms':>8} {'CPU ms':>8}")
    for what in new["cost"]:
        for tree, data in trees:
            wall, cpu = data["cost"].get(what, (float("nan"), float("nan")))
            print(f"{what:<46} {tree:<7} {wall:8.3f} {cpu:8.3f}")
    ok = all(new["cost"][k][1] < 1.0 for k in new["cost"] if k.startswith(("generated", "real")))
    if "pairs" in new:
        p = new["pairs"]
        print("\nbackground-only twins by figure identity (share, the better direction):")
        for a, b, s in p["by_identity"]:
            print(f"  {a:<36} {b:<36} {s:.3f}")
        print("twins by names and captions (captions equal but for the background):")
        for a, b, s in p["by_names"]:
            print(f"  {a:<36} {b:<36} {s:.3f}")
        print(f"different designs ({p['different_n']} pairs): median {p['different_median']:.3f}, "
              f"p99 {p['different_p99']:.3f}; the highest:")
        for a, b, s in p["different_top"]:
            print(f"  {a:<36} {b:<36} {s:.3f}")
        twin_min = min(s for _, _, s in p["by_identity"]) if p["by_identity"] else 1.0
        ok &= p["different_top"][0][2] < new["near_copy"] <= twin_min
        if old and "pairs" in old:
            o = old["pairs"]
            print(f"  before (its own share): twins by names and captions "
                  f"{', '.join(f'{s:.2f}' for *_, s in o['by_names'])}; different designs median "
                  f"{o['different_median']:.3f}, max {o['different_top'][0][2]:.3f}")
    print(f"\n{'constructed (share of the nearest training image)':<46} {'tree':<7} range, flagged")
    for what in new["copies"]:
        for tree, data in trees:
            if what in data["copies"]:
                print(f"{what:<46} {tree:<7} {_flagged(data['copies'][what], data['near_copy'])}")
    for tree, data in trees:
        if data["real"]:
            print(f"{'real samples, shown candidates':<46} {tree:<7} {_flagged(data['real'], data['near_copy'])}")
    if new.get("search_loss"):
        loss = np.array(new["search_loss"])
        print(f"\nnovelty() against the exhaustive comparison ({len(loss)} real and generated candidates): share lower "
              f"by at most {loss.max():.3f}, {loss.mean():.4f} on average (exact from {novelty_module.RESOLVED} up)")
    for what, values in new["copies"].items():
        caught = float(np.mean(np.array(values) >= new["near_copy"]))
        ok &= caught == 0.0 if what.startswith("glued") else caught >= COPIES_CAUGHT
    ok &= not new["real"] or max(new["real"]) < new["near_copy"]
    print(f"\ntargets: NEAR_COPY above every different design and at most every twin by identity; at least "
          f"{COPIES_CAUGHT:.0%} of each kind of copy flagged, no glued halves, no real sample; CPU < 1 ms: "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--training", default=str(SHARED / "bespoke_punks"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--legacy", default=None, help="another bespoke checkout to measure beside (\"before\")")
    parser.add_argument("--quick", action="store_true", help="every 4th training punk for the constructed copies")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    new = measure(args)
    if args.json:
        print(json.dumps(new))
        return 0
    return 0 if report(new, _legacy(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
