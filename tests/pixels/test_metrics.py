"""The colour metrics: the historical colors_nearest reproduces the user's 70 recorded counts exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bespoke.dataset.layout import layout_for
from bespoke.dataset.synthetic import make_punk
from bespoke.pixels import metrics


def test_caption_fix_eval_counts_exact(shared_dir):
    folder = shared_dir / "baseline" / "caption_fix_eval_24px"
    if not folder.is_dir():
        pytest.skip("caption_fix_eval_24px is not present")
    manifest = json.loads((folder / "manifest.json").read_text())
    by_epoch: dict[str, list[int]] = {}
    for entry in manifest["images"]:
        with Image.open(folder / entry["file"]) as img:
            assert metrics.colors_nearest(img) == entry["unique_colors"], entry["file"]
        by_epoch.setdefault(entry["file"][:3], []).append(entry["unique_colors"])
    assert len(manifest["images"]) == 70
    assert round(sum(by_epoch["e08"]) / len(by_epoch["e08"]), 1) == 216.6


def test_colors_nearest_uses_pillow_nearest_rows():
    # a 512 px image whose every column/row is distinct: the count depends on exactly which ones NEAREST picks
    x = np.arange(512)
    arr = np.zeros((512, 512, 3), np.uint8)
    arr[..., 0] = (x[None, :] * 7) % 256
    arr[..., 1] = (x[:, None] * 13) % 256
    img = Image.fromarray(arr)
    small = np.asarray(img.resize((24, 24), Image.NEAREST))
    assert metrics.colors_nearest(img) == len({tuple(p) for p in small.reshape(-1, 3)})
    # Pillow samples column 10 first (not the naive int(0.5 * 512 / 24) = 10) and column 96 is not sampled
    assert small[0, 0, 0] == (10 * 7) % 256
    assert small[0, 4, 0] == (95 * 7) % 256


def test_top10_and_clean_definition():
    arr = np.zeros((24, 24, 3), np.uint8)
    arr[:12] = (255, 0, 0)
    for i in range(40):  # 40 single-pixel colours in the bottom half
        arr[12 + i // 24, i % 24] = (i, i + 1, 200)
    colors = metrics.unique_colors(arr)
    cov = metrics.top10_coverage(arr)
    assert colors == 42
    # red 288 + black (rest of bottom half) 248 + 8 singles = 544 of 576
    assert cov == pytest.approx((288 + 248 + 8) / 576)
    assert metrics.is_clean(colors, cov)
    assert not metrics.is_clean(51, 0.9)
    assert not metrics.is_clean(50, 0.69)
    assert metrics.is_clean(50, 0.70)


def test_off_palette_and_background():
    arr = np.full((24, 24, 3), 10, np.uint8)
    arr[20:, 5:19] = (200, 0, 0)  # shoulders reach the bottom row: still a uniform background
    assert metrics.background_uniform(arr)
    arr[0, :8] = (0, 0, 255)  # 8 of the 70 border pixels: under 90 % share one colour
    assert not metrics.background_uniform(arr)
    palette = np.array([[10, 10, 10], [200, 0, 0]], np.uint8)
    assert metrics.off_palette(arr, palette) == pytest.approx(8 / 576)
    assert metrics.off_palette(arr, None) is None


def test_grid_error_zero_for_exact_stretch():
    punk = make_punk(3).pixels
    big = np.asarray(Image.fromarray(punk).resize((512, 512), Image.NEAREST))
    edges = layout_for("stretch", 512).edges
    idx = metrics.upsample_index(edges, 512)
    assert metrics.grid_error(big, punk, idx, idx) == 0.0
    assert metrics.grid_error(big, np.zeros_like(punk), idx, idx) > 20


def test_color_stats_matches_parts():
    arr = make_punk(5).pixels
    assert metrics.color_stats(arr) == (metrics.unique_colors(arr), metrics.top10_coverage(arr))


def test_degenerate_samples():
    punk = make_punk(3).pixels
    big = np.asarray(Image.fromarray(punk).resize((512, 512), Image.NEAREST))
    assert metrics.degenerate(big, "detected", punk) is None
    black = np.zeros((512, 512, 3), np.uint8)
    assert metrics.degenerate(black, "prior", np.zeros((24, 24, 3), np.uint8)) == "nan-black"
    grey = np.full((512, 512, 3), 120, np.uint8)
    grey[::7, ::5] = 126  # a little noise on a plain picture
    assert metrics.degenerate(grey, "prior", np.full((24, 24, 3), 120, np.uint8)) == "solid"
    almost = np.full((24, 24, 3), 200, np.uint8)
    almost[10:12, 10:13] = 30  # six cells of something on a plain background
    almost_big = np.asarray(Image.fromarray(almost).resize((512, 512), Image.NEAREST))
    assert metrics.degenerate(almost_big, "detected", almost) == "near-solid"
    noise = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    assert metrics.degenerate(noise, "prior", noise[:24, :24]) == "no-grid"


@pytest.mark.parametrize("size", [24, 100, 130, 512, 515])
def test_grid_error_is_the_mean_difference_on_its_lattice(size):
    """grid_error's one-take, integer-sum path gives the same float as the mean of the |difference| between
    every step-th pixel and the candidate's cell there."""
    rng = np.random.default_rng(size)
    sample = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    candidate = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    edges = np.sort(rng.uniform(0, size, 25))
    edges[0], edges[-1] = 0, size
    index = metrics.upsample_index(edges, size)
    step = max(1, size // 64)
    drawn = candidate[index[::step]][:, index[::step]]
    expected = float(np.abs(sample[::step, ::step].astype(np.int16) - drawn.astype(np.int16)).mean())
    assert metrics.grid_error(sample, candidate, index, index) == expected


def test_counts_and_codes_agree_with_numpy_unique():
    """_counts' plain sort gives np.unique's counts, and _codes the same 0xRRGGBB codes for any dtype."""
    rng = np.random.default_rng(7)
    cases = [np.array([0x000000]), np.array([0xFFFFFF, 0xFFFFFF, 0]), rng.integers(0, 4, 576) * 0x7F7F7F,
             rng.integers(0, 1 << 24, 576)]
    for codes in cases:
        assert metrics._counts(codes.astype(np.uint32)).tolist() == np.unique(codes, return_counts=True)[1].tolist()
    pixels = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    expected = (pixels[..., 0].astype(np.int64) << 16 | pixels[..., 1].astype(np.int64) << 8 | pixels[..., 2]).ravel()
    for arr in (pixels, pixels.astype(np.int64), np.dstack([pixels, pixels[..., :1]])):
        assert metrics._codes(arr).tolist() == expected.tolist()


def test_nearest24_reads_any_mode_as_its_rgb():
    rgb = Image.fromarray(np.random.default_rng(3).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    for img in (rgb, rgb.convert("RGBA"), rgb.convert("P")):
        expected = np.asarray(img.convert("RGB").resize((24, 24), Image.Resampling.NEAREST))
        assert np.array_equal(metrics.nearest24(img), expected)


def test_degenerate_solid_spread_is_per_channel():
    """A plain picture is "solid" while every channel spans at most SOLID_SPREAD levels on the lattice."""
    candidate = make_punk(3).pixels
    for spread, expected in ((metrics.SOLID_SPREAD, "solid"), (metrics.SOLID_SPREAD + 1, None)):
        for channel in range(3):
            sample = np.full((128, 128, 3), 100, np.uint8)
            sample[::2, ::2, channel] = 100 + np.arange(64)[None, :] * spread // 63  # the lattice: every 2nd
            sample[1::2, 1::2] = 0  # off the lattice: not looked at
            assert metrics.degenerate(sample, "detected", candidate) == expected


def test_degenerate_black_is_every_channel_dark():
    """"nan-black" while no channel passes BLACK_MAX anywhere on the lattice; one brighter channel (of any)
    makes a plain dark picture "solid" instead, a bright pixel there none of them."""
    candidate = make_punk(3).pixels
    assert metrics.degenerate(np.full((128, 128, 3), metrics.BLACK_MAX, np.uint8), "prior", candidate) == "nan-black"
    for channel in range(3):
        sample = np.full((128, 128, 3), metrics.BLACK_MAX, np.uint8)
        sample[..., channel] = metrics.BLACK_MAX + 1
        assert metrics.degenerate(sample, "prior", candidate) == "solid"
        sample[64, 64, channel] = 255  # on the lattice (every 2nd pixel)
        assert metrics.degenerate(sample, "prior", candidate) == "no-grid"


def test_lattice_of_any_layout_is_the_strided_view():
    rgba = np.random.default_rng(9).integers(0, 256, (130, 130, 4), dtype=np.uint8)
    for sample in (np.ascontiguousarray(rgba[..., :3]), rgba[..., :3], rgba[::-1, :, :3]):
        for step in (1, 2, 3):
            lattice = metrics._lattice(sample, step)
            assert lattice.flags.c_contiguous and np.array_equal(lattice, sample[::step, ::step])
