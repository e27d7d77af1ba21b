"""The terms that look at a candidate the way the user does: constructed punks changed in one way lower the
term that should see it, and on the user's runs each term moves."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from punk_fixtures import HAIR, SKIN, body, framed, punk, variants

from bespoke.pixels.anatomy import read
from bespoke.pixels.novelty import NEAR_COPY
from bespoke.pixels.prior import TrainingPrior
from bespoke.pixels.terms import (
    NEW_CENTRE,
    Context,
    candidate_terms,
    clean_cells,
    composition,
    distinct_colours,
    feature_contrast,
    few_colours,
    new,
    pixel_art,
    specks,
)

TRAINING = variants(24)
PRIOR = TrainingPrior.build([f"p{i}" for i in range(24)], TRAINING, ["pixel art, punk"] * 24)


def _composition(px: np.ndarray) -> float:
    return composition(~read(px).background, PRIOR.silhouette)


def test_composition_is_high_for_a_punk_and_low_for_a_body_a_frame_or_an_off_centre_figure():
    good = _composition(punk())
    assert good > 0.95
    for name, px in (("body", body()), ("frame", framed()), ("off centre", punk(shift=5))):
        assert _composition(px) < good - 0.3, name
    assert _composition(punk(shift=1)) > _composition(punk(shift=3)) > _composition(punk(shift=5))


def test_composition_is_zero_at_chance_and_never_negative():
    silhouette = np.full((24, 24), 0.5)
    silhouette[:12] = 0.9
    assert composition(np.zeros((24, 24), dtype=bool), silhouette) == 0.0
    assert composition(silhouette > 0.5, silhouette) == 1.0


def test_a_stray_pixel_and_a_bleed_lower_clean_cells():
    clean = clean_cells(read(punk()))
    assert clean == 1.0  # eyes, nose and mouth are features, not specks
    stray = punk()
    stray[14, 13] = (40, 200, 220)  # one cell in a colour no neighbour has
    assert clean_cells(read(stray)) == pytest.approx(1 - 1 / 576)
    bleed = punk()
    bleed[13:15, 9] = HAIR  # two cells of hair colour inside the face
    assert clean_cells(read(bleed)) == pytest.approx(1 - 2 / 576)
    assert specks(read(bleed))[13:15, 9].all()
    noisy = punk()
    rng = np.random.default_rng(1)
    cells = rng.integers(0, 24, size=(40, 2))
    noisy[cells[:, 0], cells[:, 1]] = rng.integers(0, 256, size=(40, 3))
    assert clean_cells(read(noisy)) < clean_cells(read(bleed))


def test_feature_contrast_sees_eyes_that_blend_into_the_face_or_the_hair():
    good = feature_contrast(read(punk()))
    assert good > 0.8
    no_eyes = punk()
    no_eyes[11:13, 9:11] = SKIN
    no_eyes[11:13, 14:16] = SKIN
    assert feature_contrast(read(no_eyes)) < good - 0.1
    hair_eyes = punk(eyes=HAIR)  # the pupils drawn in the hair's colour: "eyes and hair too similar"
    assert feature_contrast(read(hair_eyes)) < good
    dull_hair = punk(hair=(226, 182, 152))  # hair almost the skin's colour
    assert feature_contrast(read(dull_hair)) < good
    assert feature_contrast(read(np.full((24, 24, 3), 128, dtype=np.uint8))) == 0.0  # no face at all


def test_few_colours_is_smooth_round_the_punks_median():
    assert few_colours(23) == pytest.approx(0.5)
    assert few_colours(116) == pytest.approx(0.05, abs=1e-9)
    assert 0.8 < few_colours(9) < 0.9
    values = [few_colours(n) for n in range(1, 300)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))  # never flat: no saturation
    assert 0 < values[-1] and values[0] < 1


def test_distinct_colours_merge_what_the_eye_cannot_tell_apart():
    px = punk()
    noisy = np.clip(px.astype(int) + np.random.default_rng(2).integers(-2, 3, px.shape), 0, 255).astype(np.uint8)
    assert len(np.unique(noisy.reshape(-1, 3), axis=0)) > 100
    assert distinct_colours(noisy) <= distinct_colours(px) + 2


def test_what_read_keeps_gives_what_the_terms_would_measure_again():
    """candidate_terms counts a flat candidate's colours from those `read` counted and reuses its regions:
    the same colours as distinct_colours and the same specks, flat or noisy (a few colours within one
    another's tolerance: reduce_colours merges them)."""
    px = punk()
    px[3, 3], px[20, 5] = (10, 200, 30), (201, 61, 59)  # specks
    noisy = np.clip(px.astype(int) + np.random.default_rng(3).integers(-2, 3, px.shape), 0, 255).astype(np.uint8)
    for picture in (px, noisy):
        anatomy = read(picture)
        assert candidate_terms(picture).colours == distinct_colours(picture)
        assert (specks(anatomy) == specks(replace(anatomy, regions=None))).all()
    assert distinct_colours(noisy) < len(np.unique(noisy.reshape(-1, 3), axis=0))  # the slow path was taken


def test_pixel_art_and_new():
    assert pixel_art(0.0) == 1.0 and pixel_art(8.0) == pytest.approx(math.exp(-1))
    assert new(NEW_CENTRE) == pytest.approx(0.5)
    # a new design loses nothing (real samples reproduce at most 0.69 of a training figure), a near copy all
    assert new(0.4) > 0.999 and new(0.69) > 0.98 and new(NEAR_COPY) < 0.02
    assert new(0.7) > new(0.8) > new(0.9)


def test_candidate_terms_leave_out_what_cannot_be_measured():
    bare = candidate_terms(punk())
    assert bare.composition is None and bare.adherence is None and bare.pixel_art is None and bare.new is None
    assert bare.clean_cells == 1.0 and bare.feature_contrast > 0.8 and 0 < bare.few_colours < 1
    full = candidate_terms(punk(), Context(prior=PRIOR, grid_error=4.0, novelty_share=0.3))
    assert full.composition > 0.95 and full.pixel_art == pytest.approx(math.exp(-0.5)) and full.new > 0.99
    assert set(full.as_dict()) == {"composition", "clean_cells", "feature_contrast", "few_colours", "adherence",
                                   "pixel_art", "new"}


def test_the_terms_move_on_the_users_caption_fix_run(shared_dir):
    """Each image term varies across the 70 real 24 px samples (a term that never moves decides nothing), and
    the clean epoch the user praised (8) scores cleaner than the speckled one (6)."""
    folder = shared_dir / "baseline" / "caption_fix_eval_24px"
    punks = shared_dir / "bespoke_punks"
    names = sorted(p.stem for p in punks.glob("*.png"))
    images = [np.asarray(Image.open(punks / f"{n}.png").convert("RGB")) for n in names]
    prior = TrainingPrior.build(names, images, [(punks / f"{n}.txt").read_text() for n in names])
    terms = {}
    for path in sorted(folder.glob("*.png")):
        epoch = int(re.match(r"(?:final_)?e(\d+)_", path.name).group(1))
        cells = np.asarray(Image.open(path).convert("RGB"))
        terms.setdefault(epoch, []).append(candidate_terms(cells, Context(prior=prior)))
    assert sorted(terms) == list(range(1, 11)) and all(len(v) == 7 for v in terms.values())
    for name in ("composition", "clean_cells", "feature_contrast", "few_colours"):
        values = [getattr(t, name) for group in terms.values() for t in group]
        assert np.std(values) > 0.02 and max(values) - min(values) > 0.15, name
    clean = {e: np.mean([t.clean_cells for t in group]) for e, group in terms.items()}
    assert clean[8] > clean[6]
