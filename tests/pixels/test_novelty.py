"""Novelty: a candidate against the training figures -- copies on any background and at a small shift are
caught, glued halves and new designs are not; distinct designs; on generated punks and the user's data."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from bespoke.dataset.layout import layout_for
from bespoke.dataset.synthetic import make_punk
from bespoke.pixels.colour import pairs_within, rgb_to_lab
from bespoke.pixels.figure import background_mask, figure_mask
from bespoke.pixels.novelty import (
    MATCH_TOLERANCE,
    NEAR_COPY,
    RESOLVED,
    SHIFT,
    TrainingSet,
    colour_lists,
    colour_pairs,
    distinct_designs,
    nearest,
    novelty,
    read_folder,
    read_prepared,
    shares,
)

TRAIN = [make_punk(i).pixels for i in range(20)]
NAMES = [f"punk_{i:02d}.png" for i in range(20)]
TRAINING = TrainingSet.from_arrays(NAMES, TRAIN)


def _direct_shares(candidate: np.ndarray, pictures: list[np.ndarray], tolerance: float = MATCH_TOLERANCE) -> list[float]:
    """The module's definition, counted cell by cell: for each picture, the best share over the shifts of its
    figure cells whose colour the candidate has within the tolerance at the same place."""
    lab = rgb_to_lab(candidate)
    out = []
    for picture in pictures:
        mask, plab = figure_mask(picture), rgb_to_lab(picture)
        best = 0.0
        for dy in range(-SHIFT, SHIFT + 1):
            for dx in range(-SHIFT, SHIFT + 1):
                inside = matched = 0
                for y, x in zip(*np.nonzero(mask), strict=True):
                    if 0 <= y + dy < 24 and 0 <= x + dx < 24:
                        inside += 1
                        matched += np.linalg.norm(lab[y + dy, x + dx] - plab[y, x]) <= tolerance
                best = max(best, matched / max(inside, 1))
        out.append(best)
    return out


def _moved(picture: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The picture moved by (dy, dx) cells, the edge repeated where it left."""
    return picture[np.clip(np.arange(24) - dy, 0, 23)][:, np.clip(np.arange(24) - dx, 0, 23)]


def _on(picture: np.ndarray, background) -> np.ndarray:
    out = picture.copy()
    mask = background_mask(picture)
    out[mask] = np.broadcast_to(np.asarray(background, np.uint8), (24, 24, 3))[mask]
    return out


def _gradient() -> np.ndarray:
    t = np.linspace(0, 1, 24)[:, None, None]
    return np.broadcast_to(np.array([30, 200, 120]) * (1 - t) + np.array([240, 220, 40]) * t, (24, 24, 3)).astype(np.uint8)


def _stripes() -> np.ndarray:
    out = np.zeros((24, 24, 3), np.uint8)
    out[:] = (255, 120, 200)
    out[:, ::3] = (40, 40, 200)
    return out


def test_shares_are_the_defined_count():
    rng = np.random.default_rng(0)
    pictures = TRAIN[:4]
    training = TrainingSet.from_arrays(["a", "b", "c", "d"], pictures)
    candidates = [_moved(_on(TRAIN[1], (9, 200, 9)), 1, -2), make_punk(77).pixels,
                  np.clip(TRAIN[2].astype(int) + rng.integers(-9, 10, TRAIN[2].shape), 0, 255).astype(np.uint8)]
    for candidate in candidates:
        assert shares(candidate, training) == pytest.approx(_direct_shares(candidate, pictures))


def test_a_copy_is_named_and_flagged():
    copy = np.clip(TRAIN[7].astype(int) + 4, 0, 255).astype(np.uint8)  # drawn back with a tint
    assert novelty(copy, TRAINING) == {"nearest": "punk_07.png", "share": 1.0, "near_copy": True, "shift": [0, 0]}
    changed = copy.copy()
    changed[:6] = (255, 0, 255)  # a new hat over the top quarter: a variant, no longer a copy
    figure = figure_mask(TRAIN[7])
    result = novelty(changed, TRAINING)
    assert result["share"] == pytest.approx(1 - figure[:6].sum() / figure.sum(), abs=0.02)
    assert not result["near_copy"]


@pytest.mark.parametrize("background", [(20, 40, 230), "gradient", "stripes"])
def test_a_training_punk_on_a_new_background_is_a_copy(background):
    fill = {"gradient": _gradient(), "stripes": _stripes()}.get(background, background)
    for i in (0, 3, 7, 12):
        result = novelty(_on(TRAIN[i], fill), TRAINING)
        assert result == {"nearest": NAMES[i], "share": 1.0, "near_copy": True, "shift": [0, 0]}


@pytest.mark.parametrize("dy,dx", [(0, 1), (1, -1), (-1, 0), (2, 2), (0, -2)])
def test_a_training_punk_moved_a_cell_or_two_is_a_copy(dy, dx):
    for i in (1, 5, 9):
        result = novelty(_moved(_on(TRAIN[i], (200, 90, 40)), dy, dx), TRAINING)
        assert result["nearest"] == NAMES[i] and result["near_copy"], result
        assert result["shift"] == [dy, dx]  # where the compare view puts the training figure
        assert nearest(_moved(TRAIN[i], dy, dx), TRAINING)[2] == (dy, dx)


def test_glued_halves_of_two_punks_are_not_a_copy():
    for a, b in ((0, 1), (2, 9), (4, 13), (6, 17), (11, 19)):
        glued = TRAIN[a].copy()
        glued[:, 12:] = TRAIN[b][:, 12:]
        result = novelty(glued, TRAINING)
        assert not result["near_copy"], (a, b, result)


def test_a_new_design_is_not_a_copy():
    for seed in range(100, 110):
        result = novelty(make_punk(seed).pixels, TRAINING)
        assert result["share"] < NEAR_COPY and not result["near_copy"]


def test_nearest_is_exact_from_resolved_up():
    for candidate in [make_punk(s).pixels for s in range(200, 212)] + [_on(TRAIN[4], _stripes())]:
        index, share, _ = nearest(candidate, TRAINING)
        every = shares(candidate, TRAINING)
        assert share == pytest.approx(every[index])
        if every.max() >= RESOLVED:
            assert share == pytest.approx(every.max())
        else:
            assert every.max() - share <= 0.1


def test_nearest_reads_the_first_of_the_highest_shares():
    """Ties go to the earlier image (in bound order, then index) and to the smaller shift: twins and a figure
    that matches equally at several shifts."""
    punk = make_punk(7).pixels
    twins = TrainingSet.from_arrays(["a", "b", "c"], [make_punk(8).pixels, punk, punk])
    assert nearest(punk, twins) == (1, 1.0, (0, 0))
    plain = np.zeros((24, 24, 3), np.uint8)
    plain[4:20, 4:20] = (200, 30, 30)  # a plain square figure on black
    square = TrainingSet.from_arrays(["s"], [plain])
    wide = np.zeros_like(plain)
    wide[4:20, 2:22] = (200, 30, 30)  # wider: the square matches whole at dx -2..2
    assert nearest(wide, square) == (0, 1.0, (0, 0))
    moved = np.roll(plain, 1, axis=1)
    assert nearest(moved, square) == (0, 1.0, (0, 1))


def test_no_training_images_no_novelty():
    assert novelty(TRAIN[0], TrainingSet.from_arrays([], [])) is None
    assert len(shares(TRAIN[0], TrainingSet.from_arrays([], []))) == 0


def test_distinct_designs():
    assert distinct_designs([]) == 0
    assert distinct_designs([TRAIN[0], TRAIN[0].copy(), TRAIN[1], TRAIN[0]]) == 2
    assert distinct_designs(TRAIN[:5]) == 5
    # one design on another background, moved a cell, is still that design
    assert distinct_designs([TRAIN[2], _moved(_on(TRAIN[2], (10, 10, 10)), 1, 0), TRAIN[3]]) == 2


def test_read_folder_and_prepared(tmp_path):
    for name, punk in zip(NAMES[:3], TRAIN[:3], strict=True):
        Image.fromarray(punk).save(tmp_path / name)
    Image.new("RGB", (48, 48)).save(tmp_path / "big.png")  # not 24 px: not a training punk
    (tmp_path / "broken.png").write_bytes(b"nope")
    folder = read_folder(tmp_path)
    assert folder.names == tuple(NAMES[:3]) and np.array_equal(folder.rgb(2), TRAIN[2])
    layout = layout_for("stretch", 512)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for i, punk in enumerate(TRAIN[:2]):
        Image.fromarray(punk).resize((512, 512), Image.NEAREST).save(prepared / f"p{i}.png")
    back = read_prepared(prepared, ["p0", "p1", "missing"], layout.edges)
    assert back.names == ("p0", "p1")
    assert shares(TRAIN[1], back).tolist() == pytest.approx([shares(TRAIN[1], TrainingSet.from_arrays(["a"], [TRAIN[0]]))[0], 1.0])


def _core_caption(path):
    phrases = [p.strip() for p in path.read_text().lower().split(",")]
    return frozenset(p for p in phrases if p and "background" not in p and not p.startswith("pixel art") and p != "24x24")


def test_threshold_separates_the_users_twins_from_different_designs(shared_dir):
    """Why NEAR_COPY: background-only twins (the same figure cell for cell) reach it; no two different designs
    (numbers, name stems and captions differ beyond the background) do."""
    punks = shared_dir / "bespoke_punks"
    if not punks.is_dir():
        pytest.skip("shared dataset absent")
    training = read_folder(punks)
    assert len(training) >= 200
    share = np.stack([shares(training.rgb(a), training) for a in range(len(training))])
    exact = np.stack([shares(training.rgb(a), training, tolerance=0.5) for a in range(len(training))])
    parts = [re.match(r"([a-z]+_\d+)_?([a-z]*)", n.lower()).groups() for n in training.names]
    captions = [_core_caption(punks / (n[:-4] + ".txt")) for n in training.names]
    twins = 0
    for a in range(len(training)):
        for b in range(a + 1, len(training)):
            if max(exact[a, b], exact[b, a]) >= 0.99:
                twins += 1
                assert max(share[a, b], share[b, a]) >= NEAR_COPY
            elif parts[a][0] != parts[b][0] and parts[a][1][:5] != parts[b][1][:5] and captions[a] != captions[b]:
                assert max(share[a, b], share[b, a]) < NEAR_COPY, (training.names[a], training.names[b])
    assert twins >= 5  # lad_102_bunya / bunya2, lad_103_merheb / merheb2, ...


def _pair_set(mine, theirs) -> set[tuple[int, int]]:
    return set(zip(np.asarray(mine).tolist(), np.asarray(theirs).tolist(), strict=True))


def test_colour_lists_find_pairs_within_s_pairs():
    """The half-cube lists are a fast path of colour.pairs_within: the same pairs, also for points on cube and
    half-cube faces, at exactly the radius, off by a hair, beyond the grid, and against no colours."""
    rng = np.random.default_rng(3)
    radius = MATCH_TOLERANCE
    colours = np.concatenate([rgb_to_lab(rng.integers(0, 256, (400, 3))),
                              [[50.0, 0.0, 0.0], [40.0, 10.0, -20.0], [0.0, 0.0, 0.0]]])
    edges = np.array([[50.0 + radius, 0.0, 0.0], [50.0 - radius, 0.0, 0.0], [50.0, radius / 2, 0.0],
                      [50.0, 0.0, -radius], [40.0, 10.0 + radius, -20.0], [40.0, 10.0, -20.0 + radius * (1 + 1e-12)],
                      [45.0, 5.0, -15.0], [30.0, 15.0, -25.0], [0.0, -radius, 0.0], [-30.0, 0.0, 0.0],
                      [400.0, 900.0, -900.0]])
    points = np.concatenate([edges, rgb_to_lab(rng.integers(0, 256, (300, 3))),
                             colours[:50] + rng.normal(0, radius / 2, (50, 3))])
    lists = colour_lists(colours, radius)
    mine, theirs, _ = pairs_within(points, colours, radius)
    assert _pair_set(*colour_pairs(points, lists)) == _pair_set(mine, theirs)
    assert {(0, 400), (1, 400), (2, 400), (3, 400), (4, 401)} <= _pair_set(mine, theirs)  # at the radius: in
    assert (5, 401) not in _pair_set(mine, theirs)
    empty = colour_lists(np.zeros((0, 3)), radius)
    assert [len(a) for a in colour_pairs(points, empty)] == [0, 0]
