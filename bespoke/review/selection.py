"""Which epoch is best: a score per sample, per epoch its mean with an interval, the epochs the samples cannot tell
apart, and a pick among them by a stated rule (RULE, in every report).

Every term is 0-1 and measured on the *scoring candidate* of each sample (bespoke.review.candidates: the default
faithful candidate with the training palette when it is known) by bespoke.pixels.terms, against the training
set (a run's own prepared dataset, or `--training`) -- never on the methods or options `process` was asked for,
so the answer does not change with the flags. A sample's score is the weighted mean of the terms measured on
every sample of the run (WEIGHTS), times `new`:

- `clean_cells` x2: stray pixels and bleeding are what the user complains of first, and the term moves by a few
  cells' worth between epochs (a narrow spread), so at 1 it would hardly count;
- `composition`, `feature_contrast`, `few_colours`, `pixel_art` x1: head-and-shoulders in place, features that
  stand out, the punks' kind of palette, a clean grid;
- `adherence` x1: learned from a handful of punks per tag, and half a prompt's tags cannot be measured, so it
  weighs no more than one picture term (and the pick below leaves it out);
- `varied` x1: only where a prompt has two or more samples in the epoch (one sample shows no variety): the
  share of the others of its prompt that are another design;
- `new` multiplies: a copy of a training punk scores 0 however clean (bespoke.pixels.terms.new).

A degenerate sample (black, solid, near-solid, no grid, not pixel art) scores 0. An epoch's score is the mean of
its samples' scores, with a 95 % bootstrap interval over them. The *highest* epoch is the trained epoch (>= 1,
with a non-degenerate sample) of the highest score; the epochs *tied* with it are those whose difference to it
has a 95 % paired-bootstrap interval (samples paired by prompt and seed across epochs when every epoch has the
same ones) that includes 0. With fewer than MIN_SAMPLES samples an epoch every epoch is tied: a bootstrap of a
handful of differences that happen to share a sign always looks decided (two of two positive is "100 %"), and
MIN_SAMPLES all of one sign is what a sign test needs at 95 %. The *pick* is the tied epoch with the best
picture quality (the score without adherence; ties: the earlier epoch). For each tied epoch the report says
how many more seeds per prompt would separate it from the highest at today's difference
((1.96 sd / mean difference)^2 pairs, at least MIN_SAMPLES, less those there are; none above MAX_SEEDS, none
with one sample an epoch: no spread to go by).

A score profile (bespoke.review.profiles: weights fitted to the user's votes) is another WEIGHTS mapping:
`rescored` scores every sample of a report again from the terms it records under the profile's weights (the
same total, `weighted_total`; `new` still multiplies) and chooses the best epoch again with choose_best, so the
margin rule and the pick by picture quality are the same; the rule says which profile and weights it used.
report.json itself always holds the stated weights' score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from bespoke.dataset.layout import GRID
from bespoke.pixels.novelty import NEAR_COPY, TrainingSet, distinct_designs, shares
from bespoke.review.records import Best, EpochRow, ProcessReport, PromptTags, Sample, Score

ANALYSIS_VERSION = 1  # of the candidates, terms and score: bump when any changes (older reports are redone)
WEIGHTS = {"composition": 1.0, "clean_cells": 2.0, "feature_contrast": 1.0, "few_colours": 1.0, "adherence": 1.0,
           "pixel_art": 1.0, "varied": 1.0}
PICTURE = ("composition", "clean_cells", "feature_contrast", "few_colours", "pixel_art", "varied")
CONFIDENCE = 0.95
BOOTSTRAP = 2000  # resamples; seeded, so a report is the same every time
MAX_SEEDS = 64  # more seeds per prompt than this is "no practical number"
MIN_SAMPLES = 6  # samples an epoch before epochs can be told apart
RULE = ("sample score = weighted mean of its terms measured on every sample (clean_cells x2; composition, "
        "feature_contrast, few_colours, adherence, pixel_art, varied x1) times new (a copy scores 0); degenerate "
        "samples score 0; epoch score = the mean over its samples with a 95 % bootstrap interval; tied = the "
        "trained epochs whose paired difference to the highest has a 95 % interval including 0 (all of them with "
        f"fewer than {MIN_SAMPLES} samples an epoch); pick = the tied epoch with the best picture quality (the "
        "score without adherence), then the earlier; measured on the default faithful candidate with the training palette, whatever the "
        "process options")


def _prompt_key(sample: Sample) -> tuple | None:
    if sample.prompt_index is not None:
        return ("index", sample.prompt_index)
    return ("text", sample.prompt) if sample.prompt else None


def _design(designs: dict[str, bytes], sample: Sample) -> np.ndarray:
    return np.frombuffer(designs[sample.file], dtype=np.uint8).reshape(GRID, GRID, 3)


def add_varied(samples: Sequence[Sample], designs: dict[str, bytes]) -> None:
    """Set `varied` in each sample's terms where its prompt has two or more samples in its epoch: the share of
    the others that are another design (neither reproduces NEAR_COPY of the other's figure)."""
    groups: dict[tuple, list[Sample]] = {}
    for s in samples:
        key = _prompt_key(s)
        if key is not None and s.degenerate is None and s.file in designs:
            groups.setdefault((s.epoch, key), []).append(s)
    for group in groups.values():
        if len(group) < 2:
            continue
        pictures = [_design(designs, s) for s in group]
        together = TrainingSet.from_arrays([s.file for s in group], pictures)
        same = np.stack([shares(p, together) >= NEAR_COPY for p in pictures])
        same = same | same.T
        for i, s in enumerate(group):
            s.scoring.terms["varied"] = round(1.0 - (float(same[i].sum()) - 1.0) / (len(group) - 1), 4)


def used_terms(samples: Sequence[Sample]) -> tuple[str, ...]:
    """The weighted terms measured on every non-degenerate sample (a term missing anywhere is left out)."""
    alive = [s for s in samples if s.degenerate is None]
    return tuple(t for t in WEIGHTS if alive and all(s.scoring.terms.get(t) is not None for s in alive))


def weighted_total(terms: Mapping[str, float | None], used: Sequence[str],
                   weights: Mapping[str, float] = WEIGHTS) -> float:
    """The score of one sample's terms: the weighted mean of the `used` terms that have a weight above 0, times
    `new` when it is measured; 0 when no used term has a weight."""
    counted = [t for t in used if weights.get(t, 0.0) > 0]
    if not counted:
        return 0.0
    total = sum(weights[t] * float(terms.get(t) or 0.0) for t in counted) / sum(weights[t] for t in counted)
    new = terms.get("new")
    return total * (1.0 if new is None else float(new))


def sample_score(sample: Sample, used: Sequence[str], weights: Mapping[str, float] = WEIGHTS) -> float:
    """The sample's score over the `used` terms (module docstring); 0 for a degenerate sample."""
    return 0.0 if sample.degenerate is not None else weighted_total(sample.scoring.terms, used, weights)


def score_samples(samples: Sequence[Sample], designs: dict[str, bytes]) -> dict[str, float]:
    """Complete every sample's terms (`varied`) and set its `score`; returns the weights of the terms used."""
    add_varied(samples, designs)
    used = used_terms(samples)
    for s in samples:
        s.scoring.score = round(sample_score(s, used), 4)
    return {t: WEIGHTS[t] for t in used}


def _quality(sample: Sample, used: Sequence[str], weights: Mapping[str, float] = WEIGHTS) -> float:
    return sample_score(sample, [t for t in used if t in PICTURE], weights)


def _interval(values: np.ndarray, rng: np.random.Generator) -> list[float] | None:
    if len(values) < 2:
        return None
    means = values[rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))].mean(axis=1)
    alpha = (1 - CONFIDENCE) / 2
    return [round(float(np.quantile(means, alpha)), 4), round(float(np.quantile(means, 1 - alpha)), 4)]


def epoch_score(group: list[Sample], designs: dict[str, bytes],
                used: Sequence[str] | None = None) -> tuple[Score, float | None, float]:
    """(score, near_copy_pct or None, diversity) of one epoch's samples, whose `score` is set
    (score_samples); `used` is the run's used terms (None: those of this group)."""
    used = used_terms(group) if used is None else used
    novel = [s.scoring.novelty for s in group if s.scoring.novelty is not None]
    near_pct = round(100.0 * sum(n.near_copy for n in novel) / len(novel), 1) if novel else None
    alive = [s for s in group if s.degenerate is None and s.file in designs]
    diversity = distinct_designs([_design(designs, s) for s in alive]) / len(group)
    return _epoch_total(group, used), near_pct, round(diversity, 4)


def _epoch_total(group: Sequence[Sample], used: Sequence[str], weights: Mapping[str, float] = WEIGHTS) -> Score:
    """An epoch's Score from its samples' `score` (set under `weights`): the mean with its interval, the mean
    terms, and the picture quality under `weights`."""
    scores = np.array([s.scoring.score or 0.0 for s in group])
    terms = {}
    for name in (*used, "new"):
        values = [0.0 if s.degenerate is not None else s.scoring.terms.get(name) for s in group]
        if all(v is not None for v in values):
            terms[name] = round(float(np.mean([float(v or 0.0) for v in values])), 4)
    quality = float(np.mean([_quality(s, used, weights) for s in group]))
    return Score(total=round(float(scores.mean()), 4), terms=terms,
                 interval=_interval(scores, np.random.default_rng(0)), quality=round(quality, 4))


def rescored(report: ProcessReport, weights: Mapping[str, float], profile: str) -> ProcessReport:
    """`report` with every sample's and epoch's score under `weights` (from the recorded terms) and the best
    epoch chosen again by choose_best; the best's rule names `profile` and the weights it used."""
    used = used_terms(report.samples)
    samples = [replace(s, scoring=replace(s.scoring, score=round(sample_score(s, used, weights), 4)))
               for s in report.samples]
    groups: dict[int | None, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.epoch, []).append(s)
    epochs = [replace(row, score=_epoch_total(groups[row.epoch], used, weights)) if row.epoch in groups else row
              for row in report.epochs]
    best = choose_best(epochs, report.methods, samples)
    if best is not None:
        stated = ", ".join(f"{t} {weights.get(t, 0.0):g}" for t in used)
        best = replace(best, rule=f"{RULE}; weights of score profile {profile}: {stated}")
    return replace(report, samples=samples, epochs=epochs, best=best)


def adherence_by_prompt(group: list[Sample], prompts: Sequence[PromptTags]) -> dict[str, list[float | None]]:
    """Per prompt of `prompts` drawn in this epoch, the mean adherence of each of its tags over its samples."""
    out: dict[str, list[float | None]] = {}
    for entry in prompts:
        mine = [s.scoring.tags for s in group if s.prompt == entry.prompt and len(s.scoring.tags) == len(entry.tags)]
        if mine:
            out[entry.prompt] = [None if any(m[i] is None for m in mine) else round(float(np.mean(
                [float(m[i] or 0.0) for m in mine])), 4) for i in range(len(entry.tags))]
    return out


def display_method(methods: Sequence[str]) -> str | None:
    """The candidate a user sees for the best epoch: grid-palette when computed, else grid, else the first."""
    for method in ("grid-palette", "grid"):
        if method in methods:
            return method
    return methods[0] if methods else None


@dataclass(frozen=True)
class _Table:
    """Per candidate epoch, its samples' (pairing key -> score)."""

    epochs: list[int]
    scores: dict[int, dict[tuple, float]]

    @property
    def paired(self) -> bool:
        keys = [set(self.scores[e]) for e in self.epochs]
        return all(k == keys[0] for k in keys)


def _pair_key(sample: Sample) -> tuple:
    if sample.prompt_index is not None:
        return ("index", sample.prompt_index, sample.seed)
    return ("name", sample.prompt, sample.label if sample.label is not None else sample.file)


def _prompt_of(key: tuple) -> tuple:
    """The prompt part of a pairing key: the prompt index, or a plain name's prompt and label."""
    return key[:2] if key[0] == "index" else key[:3]


def _table(samples: Sequence[Sample], epochs: list[int]) -> _Table:
    scores: dict[int, dict[tuple, float]] = {e: {} for e in epochs}
    for s in sorted(samples, key=lambda s: s.file):
        if s.epoch in scores:
            key, n = _pair_key(s), 0
            while key + (n,) in scores[s.epoch]:  # the same prompt drawn twice without a seed: the next pair
                n += 1
            scores[s.epoch][key + (n,)] = s.scoring.score or 0.0
    return _Table(epochs, scores)


def _differences(table: _Table, highest: int, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Bootstrap draws of (highest - epoch) for every other epoch: paired by key when every epoch has the same
    keys, else each epoch resampled on its own."""
    if table.paired:
        keys = sorted(table.scores[highest])
        grid = np.array([[table.scores[e][k] for k in keys] for e in table.epochs])
        means = grid[:, rng.integers(0, len(keys), size=(BOOTSTRAP, len(keys)))].mean(axis=2)
    else:
        means = np.array([values[rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))].mean(axis=1)
                          for values in (np.array(list(table.scores[e].values())) for e in table.epochs)])
    top = means[table.epochs.index(highest)]
    return {e: top - means[i] for i, e in enumerate(table.epochs) if e != highest}


def more_seeds(table: _Table, highest: int, other: int, prompts: int) -> int | None:
    """More seeds per prompt for a 95 % interval of (highest - other) to exclude 0 at today's difference; None
    when no practical number (over MAX_SEEDS, or no difference) would."""
    a, b = table.scores[highest], table.scores[other]
    if table.paired:
        diff = np.array([a[k] - b[k] for k in sorted(a)])
        mean, var, n = float(diff.mean()), float(diff.var(ddof=1)), len(diff)
    else:
        x, y = np.array(list(a.values())), np.array(list(b.values()))
        mean, var, n = float(x.mean() - y.mean()), float(x.var(ddof=1) + y.var(ddof=1)), min(len(x), len(y))
    if mean <= 0:
        return None
    needed = max((1.96 * np.sqrt(var) / mean) ** 2, MIN_SAMPLES)
    more = int(np.ceil(needed / prompts)) - n // prompts
    return max(1, more) if more <= MAX_SEEDS else None


def choose_best(epochs: list[EpochRow], methods: Sequence[str], samples: Sequence[Sample] = ()) -> Best | None:
    """The best epoch by RULE from the epoch rows and their samples (scored: score_samples); None when no
    trained epoch can win."""
    rows = {r.epoch: r for r in epochs if r.epoch is not None and r.epoch >= 1 and (r.degenerate_pct or 0) < 100}
    if not rows:
        return None
    candidates = sorted(rows)
    highest = min(candidates, key=lambda e: (-rows[e].score.total, e))
    table = _table(samples, candidates)
    fewest = min(len(table.scores[e]) for e in candidates)
    resolved = len(candidates) > 1 and fewest >= MIN_SAMPLES
    tied: list[int] = list(candidates)
    if resolved:
        alpha = (1 - CONFIDENCE) / 2
        differences = _differences(table, highest, np.random.default_rng(0))
        tied = [e for e in candidates if e == highest or float(np.quantile(differences[e], alpha)) <= 0.0]
    prompts = max(1, len({_prompt_of(k) for k in table.scores[highest]}))
    seeds = {str(e): more_seeds(table, highest, e, prompts) for e in tied if e != highest} if fewest >= 2 else {}
    pick = min(tied, key=lambda e: (-(rows[e].score.quality or 0.0), e))
    row = rows[pick]
    return Best(epoch=pick, method=display_method(methods), rule=RULE, score=row.score.total,
                terms=dict(row.score.terms), highest=highest, tied=tied, more_seeds=seeds, resolved=resolved)


def describe_best(best: Best) -> list[str]:
    """The pick, the margin and what would decide it, in a few plain lines (terminal and page alike)."""
    terms = ", ".join(f"{k} {v:.2f}" for k, v in best.terms.items())
    lines = [f"pick: epoch {best.epoch} (score {best.score:.3f}: {terms}); shown with {best.method}"]
    others = [e for e in best.tied if e != best.highest]
    if not best.resolved:
        lines.append(f"highest score: epoch {best.highest}; under {MIN_SAMPLES} samples an epoch cannot tell "
                     "epochs apart, so the pick is the cleanest picture of all; draw more seeds per prompt "
                     "(bespoke generate) to decide")
    elif others:
        lines.append(f"highest score: epoch {best.highest}; indistinguishable from it at 95 %: epochs "
                     f"{', '.join(map(str, others))}; the pick is the cleanest picture among them")
    else:
        lines.append(f"highest score: epoch {best.highest}, ahead of every other epoch at 95 %")
    if others and best.more_seeds:
        for epoch in others:
            n = best.more_seeds.get(str(epoch))
            lines.append(f"  epoch {epoch} vs {best.highest}: " + (
                f"{n} more seeds per prompt would separate them" if n else
                f"no practical number of seeds would (over {MAX_SEEDS} per prompt)"))
    return lines
