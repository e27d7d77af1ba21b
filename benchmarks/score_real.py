"""The best-epoch score on the user's real runs: every term per epoch, the score with its interval, the epochs
indistinguishable from the best, the pick, and how many more seeds per prompt would separate them.

    .venv/bin/python benchmarks/score_real.py [--shared ../shared] [--boot 2000] [--sheets DIR]

Runs (all read-only from ../shared; skipped when it is absent):
- caption_fix_eval_24px: the user's best run, 10 epochs x 7 prompts, already at 24 px: each image is its own
  candidate (no pixel_art: there is no larger sample to fit a grid to); prompt texts from the user's
  VISUAL_QUALITY_AUDIT.md; unseeded, so samples are paired across epochs by prompt.
- runs/keep_tokens_3: sd-scripts' output_dir (sample/, prompts.txt), 10 epochs x 1 prompt x seed 42 at 512 px:
  the candidate is `grid` (the default faithful candidate).
- samples/: 7 samples of earlier runs at 512 px, no epochs, no prompts: the terms per sample.

Per run, each term's spread (min, max, std across epochs and across samples): a term that never moves decides
nothing. With --sheets, zoomed contact sheets of the epochs each term ranks top and bottom.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from bespoke.kohya.naming import parse_sample_name  # noqa: E402
from bespoke.pixels.adherence import prompt_models  # noqa: E402
from bespoke.pixels.downscale import extract  # noqa: E402
from bespoke.pixels.grid import find_grid  # noqa: E402
from bespoke.pixels.metrics import grid_error, upsample_index  # noqa: E402
from bespoke.pixels.novelty import novelty, read_folder  # noqa: E402
from bespoke.pixels.prior import read_training  # noqa: E402
from bespoke.pixels.terms import CandidateTerms, Context, candidate_terms  # noqa: E402
from bespoke.review.samples import read_prompt_lines  # noqa: E402

SHARED = ROOT.parent / "shared"
PROMPT_NAMES = ("green_bg_lad", "brown_eyes_lady", "golden_earrings", "sunglasses_lad", "melon_lady", "cash_lad",
                "carbon_lad")
TERMS = ("composition", "clean_cells", "feature_contrast", "few_colours", "adherence", "pixel_art", "new")


@dataclass(frozen=True)
class Sample:
    """One scored sample: its epoch, pairing key (prompt, seed), file and terms."""

    epoch: int | None
    key: tuple
    file: str
    terms: CandidateTerms
    candidate: np.ndarray


def audit_prompts(audit: Path) -> dict[str, str]:
    """The 7 prompt texts of VISUAL_QUALITY_AUDIT.md "Prompts (7 test scenarios)", by the manifest's names."""
    block = audit.read_text(encoding="utf-8").split("Prompts (7 test scenarios)")[1].split("```")[1]
    texts = [" ".join(t.split()) for t in re.findall(r'"([^"]+)"', block, re.S)]
    return dict(zip(PROMPT_NAMES, texts, strict=True))


def _context(prior, models, training, candidate, error=None) -> Context:
    share = novelty(candidate, training)["share"] if training is not None and len(training) else None
    return Context(prior=prior, tags=models, grid_error=error, novelty_share=share)


def caption_fix(shared: Path, prior, training) -> tuple[list[Sample], dict]:
    folder = shared / "baseline" / "caption_fix_eval_24px"
    texts = audit_prompts(shared / "seeds" / "user-notes" / "VISUAL_QUALITY_AUDIT.md")
    models = {name: prompt_models(prior, text) for name, text in texts.items()}
    out = []
    for path in sorted(folder.glob("*.png")):
        match = re.match(r"(?:final_)?e(\d+)_(.+)\.png$", path.name)
        if not match:
            continue
        epoch, name = int(match.group(1)), match.group(2)
        cells = np.asarray(Image.open(path).convert("RGB"))
        terms = candidate_terms(cells, _context(prior, models[name], training, cells))
        out.append(Sample(epoch, (name,), path.name, terms, cells))
    return out, models


def grid_candidate(path: Path) -> tuple[np.ndarray, float]:
    """The default faithful candidate (`grid`) of a sample and its grid_error."""
    arr = np.asarray(Image.open(path).convert("RGB"))
    grid = find_grid(arr)
    candidate = extract(arr, grid)[0]
    h, w = arr.shape[:2]
    return candidate, grid_error(arr, candidate, upsample_index(grid.xs, w), upsample_index(grid.ys, h))


def output_dir(folder: Path, prior, training) -> tuple[list[Sample], dict]:
    prompts = read_prompt_lines(folder / "prompts.txt")
    models = {i: prompt_models(prior, text) for i, text in enumerate(prompts)}
    out = []
    for path in sorted((folder / "sample").glob("*.png")):
        info = parse_sample_name(path)
        candidate, error = grid_candidate(path)
        tags = models.get(info.prompt_index, ())
        terms = candidate_terms(candidate, _context(prior, tags, training, candidate, error))
        out.append(Sample(info.epoch, (info.prompt_index, info.seed), path.name, terms, candidate))
    return out, {f"prompt {i}": m for i, m in models.items()}


def plain_folder(folder: Path, prior, training) -> list[Sample]:
    out = []
    for path in sorted(folder.glob("*.png")):
        candidate, error = grid_candidate(path)
        terms = candidate_terms(candidate, _context(prior, (), training, candidate, error))
        out.append(Sample(None, (path.stem,), path.name, terms, candidate))
    return out


# ---- aggregation and margin (to move into bespoke/review/selection.py once the typed report lands) ----

# clean_cells x2: stray pixels and bleeding are the user's first complaint, and the term's spread is narrow
# (a real sample's share of specks moves by a few cells) so at 1 it would hardly count; adherence x1: learned
# from a handful of punks per tag, half of a prompt's tags cannot be measured, and it already has the widest
# spread of all the terms
WEIGHTS = {"composition": 1.0, "clean_cells": 2.0, "feature_contrast": 1.0, "few_colours": 1.0, "adherence": 1.0,
           "pixel_art": 1.0}
QUALITY = ("composition", "clean_cells", "feature_contrast", "few_colours", "pixel_art")
CONFIDENCE = 0.95
MAX_SEEDS = 64


def used_terms(samples: list[Sample]) -> tuple[str, ...]:
    """The weighted terms measured on every sample of the run (a term missing anywhere is left out)."""
    return tuple(t for t in WEIGHTS if all(s.terms.as_dict()[t] is not None for s in samples))


def sample_score(terms: CandidateTerms, used: tuple[str, ...]) -> float:
    """Weighted mean of the used terms, times `new` (a copy scores 0 whatever its quality)."""
    values = terms.as_dict()
    total = sum(WEIGHTS[t] * float(values[t]) for t in used) / sum(WEIGHTS[t] for t in used)
    return total * (terms.new if terms.new is not None else 1.0)


@dataclass(frozen=True)
class Margin:
    """The best epoch by the point score, each epoch's interval, the epochs indistinguishable from the best,
    the pick among them and the seeds per prompt that would separate each from the best."""

    best: int
    scores: dict
    intervals: dict
    tied: tuple
    pick: int
    seeds: dict  # epoch -> more seeds per prompt needed (None: more than MAX_SEEDS)


def margin(by_epoch: dict, quality: dict, boot: int = 2000, seed: int = 0) -> Margin:
    """`by_epoch`: epoch -> {key: sample score}, paired by key when every epoch has the same keys; `quality`:
    epoch -> the score without adherence (the pick among the tied). With one sample per epoch nothing can be
    told apart: every epoch is tied and no interval is given."""
    epochs = sorted(e for e in by_epoch if e is not None and e >= 1)
    keys = sorted(set.intersection(*(set(by_epoch[e]) for e in epochs)))
    paired = all(set(by_epoch[e]) == set(keys) for e in epochs)
    point = {e: float(np.mean(list(by_epoch[e].values()))) for e in epochs}
    best = max(epochs, key=lambda e: (point[e], -e))
    if min(len(by_epoch[e]) for e in epochs) < 2:
        tied = tuple(epochs)
        return Margin(best, point, {}, tied, max(tied, key=lambda e: (quality[e], -e)), {})
    rng = np.random.default_rng(seed)
    if paired:
        table = np.array([[by_epoch[e][k] for k in keys] for e in epochs])  # epochs x keys
        draws = rng.integers(0, len(keys), size=(boot, len(keys)))
        means = table[:, draws].mean(axis=2)  # epochs x boot
    else:
        means = np.array([np.array(list(by_epoch[e].values()))[
            rng.integers(0, len(by_epoch[e]), size=(boot, len(by_epoch[e])))].mean(axis=1) for e in epochs])
    b = epochs.index(best)
    alpha = (1 - CONFIDENCE) / 2
    intervals = {e: (float(np.quantile(means[i], alpha)), float(np.quantile(means[i], 1 - alpha)))
                 for i, e in enumerate(epochs)}
    tied = tuple(e for i, e in enumerate(epochs)
                 if e == best or float(np.quantile(means[b] - means[i], alpha)) <= 0.0)
    seeds = {e: _more_seeds(by_epoch, best, e, keys if paired else None) for e in tied if e != best}
    return Margin(best, point, intervals, tied, max(tied, key=lambda e: (quality[e], -e)), seeds)


def _more_seeds(by_epoch: dict, best: int, other: int, keys: list | None) -> int | None:
    """More seeds per prompt for a 95 % interval of (best - other) to exclude 0 at today's difference."""
    z = 1.96
    if keys is not None:
        diff = np.array([by_epoch[best][k] - by_epoch[other][k] for k in keys])
        mean, var, n = float(diff.mean()), float(diff.var(ddof=1)), len(keys)
    else:
        a, b = np.array(list(by_epoch[best].values())), np.array(list(by_epoch[other].values()))
        mean, n = float(a.mean() - b.mean()), min(len(a), len(b))
        var = float(a.var(ddof=1) + b.var(ddof=1))
    if mean <= 0:
        return None
    needed = (z * np.sqrt(var) / mean) ** 2  # samples (pairs) in all
    prompts = len({k[0] for k in (keys or [(None,)])}) or 1
    more = int(np.ceil(needed / prompts)) - n // prompts
    return max(1, more) if more <= MAX_SEEDS else None


# ---- printing ----

def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _fmt(v, width: int = 6) -> str:
    return f"{v:{width}.3f}" if v is not None else f"{'-':>{width}}"


def epoch_rows(samples: list[Sample]) -> dict:
    """epoch -> term -> mean over its samples."""
    rows: dict = {}
    for s in samples:
        rows.setdefault(s.epoch, []).append(s.terms.as_dict())
    return {e: {t: _mean([r[t] for r in rs]) for t in TERMS} for e, rs in rows.items()}


def print_run(title: str, samples: list[Sample], models: dict, boot: int) -> Margin | None:
    used = used_terms(samples)
    print(f"\n=== {title}: {len(samples)} samples; score terms {', '.join(used)} (weights "
          f"{', '.join(f'{t} {WEIGHTS[t]:g}' for t in used)}) x new")
    rows = epoch_rows(samples)
    by_epoch: dict = {}
    quality: dict = {}
    for s in samples:
        by_epoch.setdefault(s.epoch, {})[s.key] = sample_score(s.terms, used)
        quality.setdefault(s.epoch, []).append(sample_score(s.terms, tuple(t for t in used if t in QUALITY)))
    quality = {e: float(np.mean(v)) for e, v in quality.items()}
    result = margin(by_epoch, quality, boot) if len(by_epoch) > 1 and None not in by_epoch else None
    print(f"{'epoch':>7} " + " ".join(f"{t[:11]:>11}" for t in TERMS) + f" {'score':>7} {'95% interval':>15}")
    for e in sorted(rows, key=lambda x: (x is None, x)):
        mark = ""
        if result is not None:
            mark = (" PICK" if e == result.pick else "") + (" best" if e == result.best else "") + \
                   (" ~" if e in result.tied and e != result.best else "")
        interval = result.intervals.get(e) if result is not None else None
        span = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
        print(f"{str(e):>7} " + " ".join(f"{_fmt(rows[e][t], 11)}" for t in TERMS)
              + f" {_mean(by_epoch[e].values()):7.3f} {span:>15} q {quality[e]:.3f}{mark}")
    spread(samples, rows, used)
    if result is not None:
        print(f"indistinguishable from the best (epoch {result.best}) at {CONFIDENCE:.0%}: "
              f"{', '.join(map(str, result.tied))}; pick (the best picture quality of them): epoch {result.pick}")
        if not result.intervals:
            print("  one sample per epoch: no interval, nothing can be told apart; draw seeds (bespoke generate)")
        for e, n in sorted(result.seeds.items()):
            print(f"  epoch {e} vs {result.best}: " + (f"{n} more seeds per prompt would separate them"
                                                       if n else f"no practical number (> {MAX_SEEDS} per prompt)"))
    per_prompt(samples, models)
    return result


def spread(samples: list[Sample], rows: dict, used: tuple[str, ...]) -> None:
    print(f"{'term':>18} {'epochs: min':>12} {'max':>6} {'std':>6} {'samples: min':>13} {'max':>6} {'std':>6}")
    for t in TERMS:
        per_epoch = [r[t] for r in rows.values() if r[t] is not None]
        per_sample = [s.terms.as_dict()[t] for s in samples if s.terms.as_dict()[t] is not None]
        if not per_sample:
            print(f"{t:>18}   not measured here")
            continue
        print(f"{t:>18} {min(per_epoch):12.3f} {max(per_epoch):6.3f} {np.std(per_epoch):6.3f} "
              f"{min(per_sample):13.3f} {max(per_sample):6.3f} {np.std(per_sample):6.3f}"
              + ("" if t in used or t == "new" else "   (not in the score)"))


def per_prompt(samples: list[Sample], models: dict) -> None:
    """Per prompt and tag, the adherence in each epoch ("fails on blue hair, works on pink")."""
    epochs = sorted({s.epoch for s in samples if s.epoch is not None})
    for name, tags in models.items():
        group = [s for s in samples if s.key[0] == name or f"prompt {s.key[0]}" == name]
        if not group or not tags:
            continue
        print(f"  prompt {name}: adherence per tag, epochs {epochs[0]}-{epochs[-1]}")
        for i, tag in enumerate(tags):
            if not tag.measured:
                print(f"    {tag.phrase.text[:44]:<44}  not measured: {tag.why}")
                continue
            how = (f"learned from {tag.learned.positives} punks carrying {' '.join(tag.learned.words)!r}, "
                   f"AUC {tag.learned.auc:.2f}" if tag.learned else "") + (" + hex" if tag.region else "")
            values = {s.epoch: s.terms.tags[i] for s in group}
            print(f"    {tag.phrase.text[:44]:<44} " + " ".join(_fmt(values.get(e), 4) for e in epochs) + f"  ({how})")


def record(result: Margin) -> None:
    """The user's record of caption_fix: epoch 8 best by colours (216.6); by eye 5 and 8 the cleanest; 9, 10
    regress."""
    order = sorted(result.scores, key=lambda e: -result.scores[e])
    rank = {e: order.index(e) + 1 for e in order}
    print(f"  the user's record: by eye 5 and 8 cleanest -> ranks {rank[5]} and {rank[8]}; 9 and 10 regress -> "
          f"ranks {rank[9]} and {rank[10]}; by colours 8 best -> rank {rank[8]}; order {order}")


def sheets(samples: list[Sample], out: Path, title: str) -> None:
    """Per term, the candidates of its top and bottom epoch side by side (8x zoom), one PNG per term."""
    out.mkdir(parents=True, exist_ok=True)
    rows = epoch_rows(samples)
    for term in TERMS:
        ranked = sorted((e for e in rows if rows[e][term] is not None), key=lambda e: rows[e][term])
        if len(ranked) < 2:
            continue
        picks = [(ranked[-1], "top"), (ranked[0], "bottom")]
        strips = [np.concatenate([np.kron(s.candidate, np.ones((8, 8, 1), dtype=np.uint8))
                                  for s in samples if s.epoch == e], axis=1) for e, _ in picks]
        width = max(x.shape[1] for x in strips)
        sheet = np.concatenate([np.pad(x, ((0, 8), (0, width - x.shape[1]), (0, 0))) for x in strips])
        Image.fromarray(sheet).save(out / f"{title}_{term}_top{picks[0][0]}_bottom{picks[1][0]}.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(SHARED))
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--sheets", default=None, help="write zoomed top/bottom sheets per term here")
    args = parser.parse_args()
    shared = Path(args.shared)
    if not (shared / "bespoke_punks").is_dir():
        print(f"{shared}: the user's data is not here; nothing to measure")
        return 0
    prior = read_training(shared / "bespoke_punks")
    training = read_folder(shared / "bespoke_punks")
    print(f"training prior: {len(prior)} punks with captions from {shared / 'bespoke_punks'}")
    runs = []
    if (shared / "baseline" / "caption_fix_eval_24px").is_dir():
        samples, models = caption_fix(shared, prior, training)
        result = print_run("caption_fix_eval_24px (24 px, each image its own candidate)", samples, models, args.boot)
        if result is not None:
            record(result)
        runs.append(("caption_fix", samples))
    if (shared / "runs" / "keep_tokens_3" / "sample").is_dir():
        samples, models = output_dir(shared / "runs" / "keep_tokens_3", prior, training)
        print_run("runs/keep_tokens_3 (512 px, candidate grid)", samples, models, args.boot)
        runs.append(("keep_tokens_3", samples))
    if (shared / "samples").is_dir():
        samples = plain_folder(shared / "samples", prior, training)
        print_run("samples/ (512 px, candidate grid, no prompts)", samples, {}, args.boot)
        runs.append(("samples", samples))
    if args.sheets:
        for title, samples in runs:
            if len({s.epoch for s in samples}) > 1:
                sheets(samples, Path(args.sheets), title)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
