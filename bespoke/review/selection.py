"""Which epoch is best: one continuous score per epoch, its terms stated in every report (RULE).

Every term is 0-1 and comes from the *scoring candidate* of each sample (bespoke.review.candidates: the
default faithful candidate at the default tolerance, with the training palette when it is known), never
from the methods or options `process` was asked for, so the answer does not change with the flags:

- `pixel_art` -- the sample really is pixel art on a 24-cell grid: exp(-grid_error / GRID_ERROR_SCALE)
  (grid_error: mean |sample - candidate drawn back on its grid|, 0-255; real LoRA samples 2-6, an untrained
  model's gradients 9+);
- `few_colours` -- min(1, TARGET_COLOURS / colours of the faithful candidate) (23 = the median of the user's
  203 training punks, which range 9-116);
- `style` -- share of cells whose colour the training palette explains within the tolerance (1 - off_palette);
  only when the training palette is known;
- `new` -- share of the epoch's samples that are not near copies of a training image; only with training
  images;
- `varied` -- distinct designs among the epoch's samples / samples (two candidates matching on at least the
  near-copy share of their cells are one design).

A degenerate sample (black, solid, near-solid, no grid) scores 0 on every term. total = the weighted mean of
the terms present (WEIGHTS: `new` counts double -- a LoRA returning its training set is the failure this
rule exists to catch). The best epoch is the trained epoch (>= 1) with the highest total that has at least
one non-degenerate sample (ties: the earlier epoch); epoch 0, the untrained model, never wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bespoke.dataset.layout import GRID
from bespoke.pixels.novelty import distinct_designs
from bespoke.review.records import Best, EpochRow, Sample, Score

TARGET_COLOURS = 23
GRID_ERROR_SCALE = 8.0
WEIGHTS = {"pixel_art": 1.0, "few_colours": 1.0, "style": 1.0, "new": 2.0, "varied": 1.0}
RULE = ("best epoch = the trained epoch (>= 1, with at least one non-degenerate sample) with the highest score; "
        "score = weighted mean of terms 0-1 over the epoch's samples (degenerate samples score 0 on each): "
        "pixel_art = exp(-grid_error/8), few_colours = min(1, 23/colours), style = 1 - off_palette "
        "(with a training palette), new = share not near copies (x2, with training images), varied = distinct "
        "designs/samples; measured on the default faithful candidate whatever the process options")


def _sample_terms(sample: Sample) -> dict[str, float | None]:
    scoring = sample.scoring
    if sample.degenerate is not None:
        return {"pixel_art": 0.0, "few_colours": 0.0, "style": None if scoring.off_palette is None else 0.0}
    return {"pixel_art": math.exp(-scoring.grid_error / GRID_ERROR_SCALE),
            "few_colours": min(1.0, TARGET_COLOURS / max(1, scoring.colors)),
            "style": None if scoring.off_palette is None else 1.0 - scoring.off_palette}


def epoch_score(group: list[Sample], designs: dict[str, bytes]) -> tuple[Score, float | None, float]:
    """(score, near_copy_pct or None, diversity) of one epoch's samples; `designs` are the scoring candidates'
    pixels by sample file."""
    per = [_sample_terms(s) for s in group]
    terms: dict[str, float] = {}
    for name in ("pixel_art", "few_colours", "style"):
        values = [p[name] for p in per]
        if all(v is not None for v in values):
            terms[name] = float(np.mean([v for v in values if v is not None]))
    alive = [s for s in group if s.degenerate is None]
    novel = [s.scoring.novelty for s in group if s.scoring.novelty is not None]
    near_pct = None
    if novel:
        near_pct = round(100.0 * sum(n.near_copy for n in novel) / len(novel), 1)
        terms["new"] = sum(1 for s in alive if s.scoring.novelty and not s.scoring.novelty.near_copy) / len(group)
    pictures = [np.frombuffer(designs[s.file], dtype=np.uint8).reshape(GRID, GRID, 3) for s in alive]
    diversity = distinct_designs(pictures) / len(group)
    terms["varied"] = diversity
    total = sum(WEIGHTS[k] * v for k, v in terms.items()) / sum(WEIGHTS[k] for k in terms)
    return (Score(total=round(total, 4), terms={k: round(v, 4) for k, v in terms.items()}), near_pct,
            round(diversity, 4))


def display_method(methods: Sequence[str]) -> str | None:
    """The candidate a user sees for the best epoch: grid-palette when computed, else grid, else the first."""
    for method in ("grid-palette", "grid"):
        if method in methods:
            return method
    return methods[0] if methods else None


def choose_best(epochs: list[EpochRow], methods: Sequence[str]) -> Best | None:
    """The best epoch by RULE; None when no trained epoch can win."""
    rows = [r for r in epochs if r.epoch is not None and r.epoch >= 1 and (r.degenerate_pct or 0) < 100]
    if not rows:
        return None
    row = min(rows, key=lambda r: (-r.score.total, r.epoch or 0))
    assert row.epoch is not None
    return Best(epoch=row.epoch, method=display_method(methods), rule=RULE, score=row.score.total,
                terms=dict(row.score.terms))
