"""The margin of the best epoch: a bootstrap interval per epoch, the epochs the samples cannot tell from the
highest, the pick among them, the seeds that would separate them, and `varied` only where it can vary -- on
scored sample records built here (the numbers are the point, not the pictures)."""

from __future__ import annotations

import numpy as np
import pytest

from bespoke.dataset.synthetic import make_punk
from bespoke.review.epochs import epoch_table
from bespoke.review.records import Sample, SampleGrid, Scoring
from bespoke.review.selection import MAX_SEEDS, MIN_SAMPLES, WEIGHTS, choose_best, score_samples

GRID = SampleGrid(cell_w=21.3, cell_h=21.3, phase_x=0, phase_y=0, cells_x=24, cells_y=24, confidence=0.9,
                  source="detected")
PICTURE = ("composition", "clean_cells", "feature_contrast", "few_colours", "pixel_art")


def _sample(epoch: int, prompt: int, seed: int, quality: float, adherence: float | None = None,
            new: float = 1.0) -> Sample:
    terms: dict[str, float | None] = {t: quality for t in PICTURE}
    terms.update(adherence=adherence, new=new)
    return Sample(file=f"s/e{epoch}_p{prompt}_s{seed}.png", name=f"e{epoch}_p{prompt}_s{seed}", epoch=epoch,
                  step=None, prompt_index=prompt, seed=seed, prompt=f"prompt {prompt}", width=512, height=512,
                  colors_nearest=100, top10_coverage=0.8, clean=False, degenerate=None, grid=GRID, candidates={},
                  scoring=Scoring(colors=20, grid_error=3.0, off_palette=None, novelty=None, terms=terms))


def _designs(samples: list[Sample], same: bool = False) -> dict[str, bytes]:
    """A different training-like design per sample (or one design for all)."""
    return {s.file: make_punk(7 if same else 300 + i).pixels.tobytes() for i, s in enumerate(samples)}


def _scored(samples: list[Sample], same: bool = False):
    designs = _designs(samples, same)
    weights = score_samples(samples, designs)
    epochs = epoch_table(samples, [], designs, tuple(weights))
    return epochs, choose_best(epochs, [], samples), weights


def _run(per_epoch: dict[int, float], prompts: int, seeds: int, rng_seed: int = 0, shared: float = 0.1,
         own: float = 0.05) -> list[Sample]:
    """Epochs of prompts x seeds samples whose picture terms are the epoch's level plus noise per (prompt, seed)
    (`shared`: the same in every epoch, what a fixed seed and prompt add, paired across epochs) and each
    sample's own (`own`)."""
    rng = np.random.default_rng(rng_seed)
    common = rng.normal(0, shared, size=(prompts, seeds))
    return [_sample(e, p, s, float(np.clip(level + common[p, s] + rng.normal(0, own), 0, 1)))
            for e, level in per_epoch.items() for p in range(prompts) for s in range(seeds)]


def test_a_real_difference_is_found_with_enough_samples():
    epochs, best, _ = _scored(_run({1: 0.70, 2: 0.75}, prompts=7, seeds=4))
    assert best is not None and best.resolved and best.highest == 2
    assert best.tied == [2] and best.epoch == 2 and best.more_seeds == {}
    low, high = epochs[1].score.interval
    assert low < epochs[1].score.total < high  # the interval is around the epoch's score


def test_the_same_difference_is_not_told_apart_with_too_few_and_says_what_would():
    few = _run({1: 0.70, 2: 0.75}, prompts=7, seeds=1, rng_seed=3, own=0.08)
    epochs, best, _ = _scored(few)
    assert best is not None and best.resolved and best.highest == 2 and sorted(best.tied) == [1, 2]
    seeds = best.more_seeds["1"]
    assert seeds is not None and 1 <= seeds <= MAX_SEEDS  # a number generate can draw
    low, high = epochs[0].score.interval
    assert low < epochs[1].score.total < high  # epoch 2's score is inside epoch 1's interval
    # that many more seeds per prompt, drawn from the same epochs, do tell them apart
    more = _run({1: 0.70, 2: 0.75}, prompts=7, seeds=1 + seeds, rng_seed=3, own=0.08)
    assert _scored(more)[1].tied == [2]


def test_a_handful_of_samples_never_looks_decided():
    # two of two differences positive: a bootstrap alone would call it 100 %; under MIN_SAMPLES it is a tie
    samples = [_sample(e, p, 1, 0.6 + 0.05 * e + 0.01 * p) for e in (1, 2) for p in (0, 1)]
    _, best, _ = _scored(samples)
    assert best is not None and not best.resolved and best.highest == 2 and sorted(best.tied) == [1, 2]
    assert best.more_seeds["1"] is not None and best.more_seeds["1"] >= MIN_SAMPLES // 2 - 1


def test_no_practical_number_when_the_epochs_are_the_same():
    # epoch 2 beats epoch 1 on half the prompts by as much as it loses on the others: the mean differs by 0.002
    samples = [_sample(1, p, 1, 0.7) for p in range(6)]
    samples += [_sample(2, p, 1, 0.7 + (0.051 if p % 2 else -0.049)) for p in range(6)]
    _, best, _ = _scored(samples)
    assert best is not None and best.highest == 2 and sorted(best.tied) == [1, 2]
    assert best.more_seeds == {"1": None}  # (1.96 sd / 0.002)^2 pairs: far over MAX_SEEDS per prompt


def test_one_sample_an_epoch_ties_every_epoch_and_has_no_interval_nor_varied():
    samples = [_sample(e, 0, 42, 0.5 + 0.03 * e) for e in (1, 2, 3)]
    epochs, best, weights = _scored(samples)
    assert "varied" not in weights and all("varied" not in s.scoring.terms for s in samples)
    assert all(row.score.interval is None for row in epochs)
    assert best is not None and not best.resolved and best.tied == [1, 2, 3] and best.epoch == 3


def test_varied_counts_only_where_a_prompt_has_two_samples_and_sees_one_design_drawn_twice():
    samples = [_sample(e, p, s, 0.6) for e in (1, 2) for p in (0, 1) for s in (1, 2)]
    designs = _designs(samples)
    for s in samples[:4]:  # epoch 1 draws one design for every seed
        designs[s.file] = make_punk(9).pixels.tobytes()
    weights = score_samples(samples, designs)
    assert weights["varied"] == WEIGHTS["varied"]
    assert {s.scoring.terms["varied"] for s in samples if s.epoch == 1} == {0.0}
    assert {s.scoring.terms["varied"] for s in samples if s.epoch == 2} == {1.0}
    rows = epoch_table(samples, [], designs, tuple(weights))
    assert rows[1].score.total > rows[0].score.total


def test_the_pick_among_the_tied_is_the_cleanest_picture_not_the_best_adherence():
    # epoch 1: cleaner pictures, worse adherence; epoch 2: the highest score by its adherence
    samples = [_sample(1, p, 1, 0.80, adherence=0.3) for p in range(6)] + \
              [_sample(2, p, 1, 0.76, adherence=0.9) for p in range(6)]
    for poor in samples[6:8]:  # two poor samples of epoch 2: the two epochs are not told apart
        poor.scoring.terms["composition"] = 0.0
    epochs, best, _ = _scored(samples)
    assert best is not None and best.highest == 2 and sorted(best.tied) == [1, 2]
    assert best.epoch == 1 and epochs[0].score.quality > epochs[1].score.quality


def test_a_copy_scores_nothing_whatever_its_quality():
    samples = [_sample(1, 0, 1, 0.9, new=0.01), _sample(1, 1, 1, 0.9, new=0.01),
               _sample(2, 0, 1, 0.6), _sample(2, 1, 1, 0.6)]
    epochs, best, _ = _scored(samples)
    assert epochs[0].score.total < 0.01 and best is not None and best.highest == 2


def test_a_term_missing_on_one_sample_is_left_out_of_every_score():
    samples = _run({1: 0.6, 2: 0.7}, prompts=2, seeds=2)
    for s in samples:
        s.scoring.terms["adherence"] = 0.5
    samples[0].scoring.terms["adherence"] = None  # a prompt with no measured tag
    _, _, weights = _scored(samples)
    assert "adherence" not in weights and set(weights) == {*PICTURE, "varied"}


@pytest.mark.parametrize("degenerate", ["nan-black", "not-pixel-art"])
def test_a_degenerate_sample_scores_zero(degenerate):
    samples = [_sample(1, 0, 1, 0.9), _sample(1, 1, 1, 0.9), _sample(2, 0, 1, 0.8), _sample(2, 1, 1, 0.8)]
    samples[0].degenerate = samples[1].degenerate = degenerate
    epochs, best, _ = _scored(samples)
    assert epochs[0].score.total == 0 and epochs[0].score.terms["clean_cells"] == 0
    assert best is not None and best.epoch == 2
