"""The report's per-epoch rows: the means and shares of each epoch's samples and candidates, and its score."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bespoke.review.records import Candidate, EpochRow, MethodRow, Sample
from bespoke.review.selection import epoch_score


def mean_of(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are not None, to 4 places; None when there are none."""
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 4) if known else None


def pct_of(flags: Iterable[object]) -> float | None:
    """The share of true flags in %, to 1 place; None when there are none."""
    flags = list(flags)
    return round(100.0 * sum(bool(f) for f in flags) / len(flags), 1) if flags else None


def method_row(cands: list[Candidate]) -> MethodRow:
    """One method's candidates of one epoch, aggregated."""
    novel = [c.novelty for c in cands if c.novelty is not None]
    return MethodRow(
        colors_mean=mean_of(c.colors for c in cands), clean_pct=pct_of(c.clean for c in cands),
        off_palette_mean=mean_of(c.off_palette for c in cands), grid_error_mean=mean_of(c.grid_error for c in cands),
        background_uniform_pct=pct_of(c.background_uniform for c in cands),
        delta_e_max=max((c.delta_e_max for c in cands), default=None),
        delta_e_mean=mean_of(c.delta_e_mean for c in cands), moved_beyond=sum(c.moved_beyond for c in cands),
        near_copy_pct=pct_of(n.near_copy for n in novel) if novel else None,
    )


def epoch_table(samples: list[Sample], methods: Sequence[str], designs: dict[str, bytes],
                used: Sequence[str] | None = None) -> list[EpochRow]:
    """One row per epoch: trained epochs in order, then the samples of unknown epoch; `designs` are the
    scoring candidates' pixels by sample file (diversity), `used` the terms the run's score uses
    (bespoke.review.selection.score_samples)."""
    groups: dict[int | None, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.epoch, []).append(s)
    keys: list[int | None] = [*sorted(k for k in groups if k is not None), *([None] if None in groups else [])]
    rows = []
    for epoch in keys:
        group = groups[epoch]
        score, near_copy_pct, diversity = epoch_score(group, designs, used)
        rows.append(EpochRow(
            epoch=epoch, samples=len(group), colors_nearest_mean=mean_of(s.colors_nearest for s in group),
            clean_pct=pct_of(s.clean for s in group), top10_coverage_mean=mean_of(s.top10_coverage for s in group),
            degenerate_pct=pct_of(s.degenerate is not None for s in group), near_copy_pct=near_copy_pct,
            diversity=diversity, score=score,
            methods={m: method_row([s.candidates[m] for s in group if m in s.candidates]) for m in methods},
        ))
    return rows
