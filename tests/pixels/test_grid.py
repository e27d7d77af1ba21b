"""The grid finder's fast paths agree bit for bit with the plain computations they replace (not timing)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bespoke.pixels import grid as g


def _plain_axis_profile(a: np.ndarray, box: int) -> tuple[np.ndarray, np.ndarray]:
    """The edge-energy profile as first written: cumulative sums over an edge-padded int copy, np.median,
    summed over rows in the memory order of `a` (a transposed view for the y axis)."""
    w = a.shape[1]
    planes = np.pad(a.transpose(2, 0, 1).astype(np.int32), ((0, 0), (0, 0), (box + 1, box)), mode="edge")
    c = np.cumsum(planes, axis=2)
    step = np.abs(c[:, :, 2 * box + 1:2 * box + w] - 2 * c[:, :, box + 1:box + w] + c[:, :, 1:w])
    diff = (step[0] + step[1] + step[2]) * (1.0 / box)
    floor = 3.0 * float(np.median(diff[:, ::3])) + 1.0
    profile = np.maximum(diff - floor, 0.0).sum(axis=0)
    raw = diff.sum(axis=0)
    for p in (profile, raw):
        p[:box] = 0.0
        p[len(p) - box:] = 0.0
    return profile, raw


def _plain_profiles(arr: np.ndarray, box: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    image = Image.fromarray(arr, "RGB")
    block = max(1, arr.shape[0] // 32)
    rows = np.asarray(image.reduce((1, block)))
    cols = np.asarray(image.reduce((block, 1))).transpose(1, 0, 2)
    return _plain_axis_profile(rows, box), _plain_axis_profile(cols, box)


def _softened(h: int, w: int, seed: int) -> np.ndarray:
    """Blocky noise, blurred and noisy like a sample: real edges, a noise floor, non-integer steps."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(cells, "RGB").resize((w, h), Image.Resampling.BILINEAR)
    noisy = np.asarray(image).astype(np.int16) + rng.integers(-6, 7, (h, w, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("h", "w", "box"), [
    (512, 512, None), (128, 128, None), (600, 600, None), (96, 96, 3),
    (512, 384, None),  # not square: each axis on its own
    (64, 4200, 44),  # a box too wide for int16 steps
])
def test_profiles_agree_with_the_plain_computation(h, w, box):
    arr = _softened(h, w, seed=h + w)
    box = box or max(1, round(w / 24 / 4))
    fast = g._profiles(arr, box, image=Image.fromarray(arr, "RGB"))
    for (profile, raw), (plain_profile, plain_raw) in zip(fast, _plain_profiles(arr, box), strict=True):
        assert np.array_equal(profile, plain_profile) and np.array_equal(raw, plain_raw)


@pytest.mark.parametrize("block", [1, 2, 3, 4, 5, 7, 16, 18, 24, 32])
def test_row_blocks_are_pillows_reduce(block):
    rng = np.random.default_rng(block)
    for h in (32 * block, 32 * block + block // 2 + 1):  # the second has a partial last block
        arr = rng.integers(0, 256, (h, 40, 3), dtype=np.uint8)
        image = Image.fromarray(arr, "RGB")
        assert np.array_equal(g._row_blocks(arr, image, block), np.asarray(image.reduce((1, block))))


@pytest.mark.parametrize("block", [1, 2, 4, 8, 16, 32, 3, 24])
def test_row_blocks_shift_path_is_pillows_reduce_for_every_sum(block):
    # one block of rows whose columns sum to every value 0..255 * block: the shift (powers of two) and the
    # table (the rest) must both give Pillow's mean of each
    sums = np.arange(255 * block + 1)
    levels = np.clip(sums[None, :] - 255 * np.arange(block)[:, None], 0, 255).astype(np.uint8)
    arr = np.stack((levels, levels[::-1], np.roll(levels, 7, axis=1)), axis=2)
    image = Image.fromarray(arr, "RGB")
    assert g._rounds_half_up(block) == (block & (block - 1) == 0)
    assert np.array_equal(g._row_blocks(arr, image, block), np.asarray(image.reduce((1, block))))


@pytest.mark.parametrize("count", [1, 2, 31, 32, 511, 512])
def test_medians_are_numpys(count):
    rng = np.random.default_rng(count)
    values = rng.random(count) * 100
    assert g._median(values) == np.median(values)
    totals = rng.integers(0, 4000, (2, count))
    expected = [np.median(row * 0.2) for row in totals]
    assert g._median_rows(totals, 0.2).tolist() == expected


@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 11, 44])
def test_window_sums(width):
    values = np.random.default_rng(width).integers(0, 256, (2, 3, 50 + 2 * width, 3))
    count = 50 + width
    expected = sum(values[..., i:i + count, :] for i in range(width))
    assert np.array_equal(g._window_sums(values, width, count), expected)
    # along the first axis (the y steps' layout)
    assert np.array_equal(g._window_sums(values.transpose(2, 0, 1, 3), width, count, axis=0),
                          expected.transpose(2, 0, 1, 3))


@pytest.mark.parametrize(("pitch_x", "pitch_y", "length_y"), [
    (21.31, 21.02, 511),  # one family of two combs
    (20.0, 21.5, 511),  # as many teeth? no: 512 / 20 and 512 / 21.5 differ in count, scored apart
    (21.31, 21.02, 400),  # axes of two lengths, scored apart
])
def test_confidences_are_each_axis_alone(pitch_x, pitch_y, length_y):
    rng = np.random.default_rng(11)
    raw = (np.maximum(rng.normal(20, 30, 511), 0), np.maximum(rng.normal(20, 30, length_y), 0))
    raw[0][3::21] += 400  # a sharp grid on x, a fainter one on y
    raw[1][11::21] += 150
    combs = ((3.7, pitch_x), (11.2, pitch_y))

    def alone(profile: np.ndarray, phase: float, pitch: float) -> float:
        phases = (phase + pitch * g.SLIDE / 32)[None, :]
        scores = g.comb_scores(profile, g.comb_teeth(len(profile), np.array([pitch]), phases))[0]
        return 0.0 if scores[0] <= 0 else min(max(1.0 - float(np.median(scores)) / scores[0], 0.0), 1.0)

    expected = min(alone(raw[0], *combs[0]), alone(raw[1], *combs[1]))
    assert g._confidences(raw, combs) == expected
    assert 0 < expected < 1
