"""The comb search's fast paths agree bit for bit with the plain computations they replace (not timing)."""

from __future__ import annotations

import numpy as np

from bespoke.pixels import comb


def test_comb_scores_agree_with_masked_interpolation():
    profile = np.maximum(np.random.default_rng(3).normal(0, 50, 511), 0)
    search = comb.coarse_search(512 / 24, len(profile))
    n = len(profile) + 1
    k = np.arange(-1, int(n / search.pitches.min()) + 2)
    pos = search.phases[:, :, None] + search.pitches[:, None, None] * k[None, None, :]
    valid = (pos >= 1) & (pos <= n - 1)
    t = np.clip(pos, 1, n - 1) - 1
    lo = np.floor(t).astype(np.int64)
    hi = np.minimum(lo + 1, len(profile) - 1)
    frac = t - lo
    values = profile[lo] * (1 - frac) + profile[hi] * frac
    plain = (values * valid).sum(axis=2) / ((n - 1) / search.pitches)[:, None]
    assert np.array_equal(comb.comb_scores(profile, search.teeth), plain)


def test_stacked_axes_score_as_each_alone():
    # a square sample's two axes share one coarse search: each must score and win as it would alone
    rng = np.random.default_rng(5)
    x, y = np.maximum(rng.normal(0, 50, (2, 511)), 0)
    search = comb.coarse_search(512 / 24, 511)
    stacked = comb.comb_scores(np.array((x, y)), search.teeth)
    assert np.array_equal(stacked[0], comb.comb_scores(x, search.teeth))
    assert np.array_equal(stacked[1], comb.comb_scores(y, search.teeth))
    assert comb.coarse_winners(np.array((x, y)), 512 / 24) == (
        comb.coarse_winners(x[None], 512 / 24) + comb.coarse_winners(y[None], 512 / 24))
