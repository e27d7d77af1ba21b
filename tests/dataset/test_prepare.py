"""Dataset preparation: exact upscaling, the colour invariant, alpha, the cache and the report."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest
from dataset_helpers import (
    RESOLUTIONS,
    assert_nothing_written,
    colours,
    expected_cells,
    png_bytes,
    read_rgb,
    tree,
    write_pair,
)
from PIL import Image

from bespoke.dataset import prepare, render, sources
from bespoke.dataset.cache import STALE_TMP_SECONDS
from bespoke.dataset.layout import layout_for
from bespoke.dataset.prepare import PrepareInvariantError, parse_background, prepare_dataset
from bespoke.dataset.report import load_palette, load_prepare_report
from bespoke.dataset.synthetic import make_punk
from bespoke.errors import DatasetError, UsageError

# ---------------------------------------------------------------------------------------------- geometry + colours


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_stretch_is_pillow_nearest_with_exact_cells(synthetic_dataset, cache, resolution):
    prepared = prepare_dataset(synthetic_dataset, resolution, cache_dir=cache)
    assert not prepared.cached and prepared.layout.name == "stretch"
    edges = prepared.layout.edges
    assert edges[0] == 0 and edges[-1] == resolution and len(edges) == 25
    if resolution == 512:
        assert set(prepared.layout.cell_sizes) == {21, 22}
    for png in sorted(synthetic_dataset.glob("*.png")):
        source = np.asarray(Image.open(png).convert("RGB"))
        out = read_rgb(prepared.dir / png.name)
        assert out.shape == (resolution, resolution, 3)
        # what the baseline did: Pillow NEAREST straight from 24 px
        baseline = np.asarray(Image.fromarray(source).resize((resolution, resolution), Image.NEAREST))
        assert np.array_equal(out, baseline)
        assert np.array_equal(expected_cells(out, edges), source)
        assert colours(out) <= colours(source)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_pad_has_integer_cells_centred_and_border_margin(synthetic_dataset, cache, resolution):
    prepared = prepare_dataset(synthetic_dataset, resolution, cache_dir=cache, layout="pad")
    cell = resolution // 24
    offset = (resolution - 24 * cell) // 2
    assert prepared.layout.edges == tuple(offset + i * cell for i in range(25))
    assert prepared.report["layout"]["cell_sizes"] == [cell]
    for png in sorted(synthetic_dataset.glob("*.png")):
        source = np.asarray(Image.open(png).convert("RGB"))
        out = read_rgb(prepared.dir / png.name)
        assert out.shape == (resolution, resolution, 3)
        assert np.array_equal(expected_cells(out, prepared.layout.edges), source)
        ring = np.concatenate([source[0], source[-1], source[1:-1, 0], source[1:-1, -1]])
        values, counts = np.unique(ring, axis=0, return_counts=True)
        border = tuple(values[counts == counts.max()][0])  # np.unique sorts: smallest of the most common
        mask = np.ones((resolution, resolution), bool)
        mask[offset:offset + 24 * cell, offset:offset + 24 * cell] = False
        if mask.any():
            assert colours(out[mask][:, None, :]) == {border}
        assert colours(out) <= colours(source)


def test_colour_invariant_on_many_punks_all_modes_and_layouts():
    checked = 0
    for seed in range(60):
        rgb = make_punk(seed).pixels
        allowed = colours(rgb)
        for resolution in RESOLUTIONS:
            for name in ("stretch", "pad"):
                layout = layout_for(name, resolution)
                out = render.upscale(rgb, layout)
                packed = {(r << 16) | (g << 8) | b for r, g, b in allowed}
                render.check_prepared(out, rgb, layout, packed, f"punk {seed}")
                assert colours(out) <= allowed
                if seed < 3:  # the slow per-cell walk on a few; check_prepared covers every cell of all
                    assert np.array_equal(expected_cells(out, layout.edges), rgb)
                checked += 1
    assert checked == 60 * 8


def test_invariant_guard_fires_on_a_new_colour(synthetic_dataset, cache, monkeypatch):
    real = prepare.upscale

    def tampered(rgb, layout):
        out = real(rgb, layout).copy()
        out[-1, -1] = (1, 2, 3)  # a colour no punk has
        return out

    monkeypatch.setattr(prepare, "upscale", tampered)
    with pytest.raises(PrepareInvariantError):
        prepare_dataset(synthetic_dataset, 64, cache_dir=cache)
    assert_nothing_written(cache)


# ---------------------------------------------------------------------------------------------- modes + alpha


def _punk_rgba(seed: int) -> np.ndarray:
    rgb = make_punk(seed).pixels
    return np.dstack([rgb, np.full((24, 24), 255, np.uint8)])


def test_modes_rgb_rgba_p_l_la_1(tmp_path, cache):
    folder = tmp_path / "modes"
    rgb = make_punk(5).pixels
    write_pair(folder, "rgb", Image.fromarray(rgb))
    write_pair(folder, "rgba_opaque", Image.fromarray(_punk_rgba(5), "RGBA"))
    write_pair(folder, "palette", Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MAXCOVERAGE))
    write_pair(folder, "grey", Image.fromarray(rgb).convert("L"))
    write_pair(folder, "grey_alpha", Image.fromarray(rgb).convert("LA"))
    write_pair(folder, "bilevel", Image.fromarray(rgb).convert("1"))
    prepared = prepare_dataset(folder, 128, cache_dir=cache)
    entries = {e["name"]: e for e in prepared.report["images"]}
    assert {n: e["mode"] for n, e in entries.items()} == {
        "bilevel": "1", "grey": "L", "grey_alpha": "LA", "palette": "P", "rgb": "RGB", "rgba_opaque": "RGBA"}
    assert not any(e["composited"] for e in entries.values())
    summary = prepared.report["summary"]
    assert summary["with_alpha"] == 2 and summary["alpha_all_opaque"] == 2 and summary["composited"] == 0
    for name in entries:
        source = np.asarray(Image.open(folder / f"{name}.png").convert("RGB"))
        out = read_rgb(prepared.dir / f"{name}.png")
        assert np.array_equal(expected_cells(out, prepared.layout.edges), source)
    palette = {tuple(c) for c in load_palette(prepared.dir)}
    assert palette == set().union(*(colours(np.asarray(Image.open(p).convert("RGB"))) for p in folder.glob("*.png")))


def test_transparent_hole_takes_the_border_colour(tmp_path, cache):
    rgba = _punk_rgba(7)
    rgba[10:14, 10:14, 3] = 0
    rgba[10:14, 10:14, :3] = (9, 9, 9)  # hidden RGB under alpha 0 must not leak
    folder = tmp_path / "hole"
    write_pair(folder, "hole", Image.fromarray(rgba, "RGBA"))
    prepared = prepare_dataset(folder, 64, cache_dir=cache)
    entry = prepared.report["images"][0]
    ring = np.concatenate([rgba[0], rgba[-1], rgba[1:-1, 0], rgba[1:-1, -1]])[:, :3]
    values, counts = np.unique(ring, axis=0, return_counts=True)
    border = "#{:02x}{:02x}{:02x}".format(*values[counts.argmax()])
    assert entry["composited"] and entry["transparent_pixels"] == 16
    assert entry["background"] == border and entry["background_source"] == "border"
    out = read_rgb(prepared.dir / "hole.png")
    assert (9, 9, 9) not in colours(out)
    assert colours(out) <= colours(rgba[rgba[..., 3] == 255])  # the border colour is the artist's own


def test_sprite_on_transparent_background_falls_back_to_white(tmp_path, cache):
    rgba = _punk_rgba(8)
    rgba[..., 3] = 0
    rgba[6:20, 6:18, 3] = 255
    folder = tmp_path / "sprite"
    write_pair(folder, "sprite", Image.fromarray(rgba, "RGBA"))
    prepared = prepare_dataset(folder, 64, cache_dir=cache)
    entry = prepared.report["images"][0]
    assert entry["background"] == "#ffffff" and entry["background_source"] == "fallback-white"
    assert any("composited on white" in w for w in prepared.report["warnings"])
    out = read_rgb(prepared.dir / "sprite.png")
    assert colours(out) <= colours(rgba[rgba[..., 3] == 255]) | {(255, 255, 255)}
    assert "#ffffff" in prepared.palette


def test_explicit_background_and_semi_transparent_pixels_are_snapped(tmp_path, cache):
    rgba = _punk_rgba(9)
    rgba[0, 0, 3] = 200  # keeps its colour
    rgba[0, 1, 3] = 50  # becomes the background
    rgba[0, 2, 3] = 0
    folder = tmp_path / "semi"
    write_pair(folder, "semi", Image.fromarray(rgba, "RGBA"))
    prepared = prepare_dataset(folder, 64, cache_dir=cache, background="#102030")
    entry = prepared.report["images"][0]
    assert entry["semi_transparent_pixels"] == 2 and entry["transparent_pixels"] == 1
    assert entry["background"] == "#102030" and entry["background_source"] == "flag"
    grid = expected_cells(read_rgb(prepared.dir / "semi.png"), prepared.layout.edges)
    assert tuple(grid[0, 0]) == tuple(rgba[0, 0, :3])
    assert tuple(grid[0, 1]) == (0x10, 0x20, 0x30) == tuple(grid[0, 2])
    assert colours(grid) <= colours(rgba[rgba[..., 3] >= 128]) | {(0x10, 0x20, 0x30)}
    assert any("semi-transparent" in w for w in prepared.report["warnings"])


def test_palette_png_with_transparency(tmp_path, cache):
    rgb = make_punk(11).pixels
    img = Image.fromarray(rgb).quantize(colors=64)
    index = img.getpixel((0, 0))
    folder = tmp_path / "ptrns"
    write_pair(folder, "ptrns", png_bytes(img, transparency=index))
    prepared = prepare_dataset(folder, 64, cache_dir=cache, background="black")
    entry = prepared.report["images"][0]
    assert entry["mode"] == "P" and entry["composited"] and entry["background"] == "#000000"
    assert entry["transparent_pixels"] == int((np.asarray(img) == index).sum())


def test_parse_background():
    assert parse_background(None) == "auto" == parse_background("AUTO")
    assert parse_background("white") == "#ffffff" == parse_background("#fff") == parse_background("#FFFFFF")
    with pytest.raises(UsageError, match='not a colour \\(did you mean "white"'):
        parse_background("whte")
    with pytest.raises(UsageError, match="not opaque"):
        parse_background("#ffffff80")


def test_resolution_checks(synthetic_dataset, cache):
    for bad in (100, 32, 4096):
        with pytest.raises(UsageError, match=f"resolution {bad} is not usable"):
            prepare_dataset(synthetic_dataset, bad, cache_dir=cache)
    assert_nothing_written(cache)


# ---------------------------------------------------------------------------------------------- cache


def test_cache_hit_is_a_no_op_without_decoding(synthetic_dataset, cache, monkeypatch):
    first = prepare_dataset(synthetic_dataset, 128, cache_dir=cache)
    stamps = {p.name: p.stat().st_mtime_ns for p in first.dir.iterdir()}
    contents = tree(first.dir)
    time.sleep(0.01)

    def no_decode(*args, **kwargs):
        raise AssertionError("a cache hit must not decode images")

    monkeypatch.setattr(sources, "decode_source", no_decode)
    again = prepare_dataset(synthetic_dataset, 128, cache_dir=cache)
    assert again.cached and again.dir == first.dir and again.sha256 == first.sha256
    assert again.palette == first.palette and again.report == first.report
    assert {p.name: p.stat().st_mtime_ns for p in again.dir.iterdir()} == stamps
    assert tree(again.dir) == contents
    assert [p.name for p in (cache / "prepared").iterdir()] == [first.dir.name]


def test_cache_key_follows_content_and_options(synthetic_dataset, cache):
    base = prepare_dataset(synthetic_dataset, 64, cache_dir=cache)
    variants = [
        prepare_dataset(synthetic_dataset, 128, cache_dir=cache),
        prepare_dataset(synthetic_dataset, 64, cache_dir=cache, layout="pad"),
        prepare_dataset(synthetic_dataset, 64, cache_dir=cache, background="white"),
        prepare_dataset(synthetic_dataset, 64, cache_dir=cache, trigger="bspk"),
    ]
    # the same colour spelled differently is the same dataset
    assert prepare_dataset(synthetic_dataset, 64, cache_dir=cache, background="#FFF").cached
    caption = next(synthetic_dataset.glob("*.txt"))
    caption.write_bytes(caption.read_bytes() + b", extra tag")
    variants.append(prepare_dataset(synthetic_dataset, 64, cache_dir=cache))
    keys = {base.sha256} | {v.sha256 for v in variants}
    assert len(keys) == 6 and not any(v.cached for v in variants)


def test_damaged_cache_is_reported_not_rewritten(synthetic_dataset, cache):
    first = prepare_dataset(synthetic_dataset, 64, cache_dir=cache)
    victim = next(first.dir.glob("*.png"))
    victim.unlink()
    with pytest.raises(DatasetError, match=rf"{first.dir.name}: cached dataset is not usable \(1 files are missing"):
        prepare_dataset(synthetic_dataset, 64, cache_dir=cache)
    assert not victim.exists()


def test_concurrent_finisher_wins(synthetic_dataset, cache, monkeypatch):
    real_rename = os.rename

    def other_process_first(src, dst):
        shutil.copytree(src, dst)  # the other process renamed its identical folder a moment ago
        return real_rename(src, dst)

    monkeypatch.setattr(prepare.os, "rename", other_process_first)
    prepared = prepare_dataset(synthetic_dataset, 64, cache_dir=cache)
    assert prepared.cached
    assert [p.name for p in (cache / "prepared").iterdir()] == [prepared.dir.name]


def test_stale_temp_folders_are_cleaned(synthetic_dataset, cache):
    stale = cache / "prepared" / ".tmp-0123456789abcdef-dead"
    fresh = cache / "prepared" / ".tmp-fedcba9876543210-live"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / "x.png").write_bytes(b"partial")
    old = time.time() - 2 * STALE_TMP_SECONDS
    os.utime(stale, (old, old))
    prepare_dataset(synthetic_dataset, 64, cache_dir=cache)
    assert not stale.exists() and fresh.exists()


def test_report_file_and_loaders(synthetic_dataset, cache):
    prepared = prepare_dataset(synthetic_dataset, 256, cache_dir=cache)
    on_disk = json.loads((prepared.dir / "prepare.json").read_text())
    assert on_disk == prepared.report == load_prepare_report(prepared.dir)
    for key in ("schema_version", "source", "resolution", "layout", "background", "trigger", "images", "palette",
                "caption_stats", "warnings", "created_at"):
        assert key in on_disk
    assert on_disk["layout"]["edges"] == list(prepared.layout.edges)
    assert on_disk["resolution"] == 256 and len(on_disk["images"]) == 8
    image = on_disk["images"][0]
    for key in ("name", "mode", "size", "colors", "transparent_pixels", "composited", "caption_chars", "caption_tags"):
        assert key in image
    assert sorted(p.name for p in prepared.dir.iterdir()) == sorted(
        [f"{e['name']}{ext}" for e in on_disk["images"] for ext in (".png", ".txt")] + ["prepare.json"])
    assert load_palette(prepared.dir) == [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in prepared.palette]
    assert prepared.palette == sorted(prepared.palette)
    with pytest.raises(DatasetError, match="not a prepared dataset"):
        load_prepare_report(synthetic_dataset)


def test_crash_midway_leaves_no_final_folder(synthetic_dataset, cache, monkeypatch):
    calls = []
    real = prepare.encode_png

    def flaky(out):
        calls.append(1)
        if len(calls) == 4:
            raise OSError("disk full (simulated)")
        return real(out)

    before = tree(synthetic_dataset)
    monkeypatch.setattr(prepare, "encode_png", flaky)
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset(synthetic_dataset, 64, cache_dir=cache)
    assert_nothing_written(cache)
    assert tree(synthetic_dataset) == before
    monkeypatch.setattr(prepare, "encode_png", real)
    assert not prepare_dataset(synthetic_dataset, 64, cache_dir=cache).cached


def test_cache_folder_without_report_is_reported(synthetic_dataset, cache):
    first = prepare_dataset(synthetic_dataset, 64, cache_dir=cache)
    (first.dir / "prepare.json").unlink()
    with pytest.raises(DatasetError, match=rf"{first.dir.name}: cached dataset is not usable .*delete that folder"):
        prepare_dataset(synthetic_dataset, 64, cache_dir=cache)


# ---------------------------------------------------------------------------------------------- the real set


def test_real_punks_prepare_exactly(shared_dir, cache):
    source = shared_dir / "bespoke_punks"
    if not source.is_dir():
        pytest.skip("bespoke_punks not present")
    manifest = json.loads((source / "MANIFEST.json").read_text())
    before = {p.name: p.stat().st_mtime_ns for p in source.iterdir()}
    for resolution in (512, 64):
        prepared = prepare_dataset(source, resolution, cache_dir=cache)
        report = prepared.report
        assert report["summary"]["images"] == 203 == len(list(prepared.dir.glob("*.png")))
        # the captions are the baseline's: 146-550 chars, mean 287, 9-15 tags (baseline.md)
        stats = report["caption_stats"]
        assert (stats["chars"]["min"], stats["chars"]["max"], round(stats["chars"]["mean"])) == (146, 550, 287)
        assert (stats["tags"]["min"], stats["tags"]["max"]) == (9, 15)
        assert {e["name"]: e["source_sha256"] for e in report["images"]} == {
            name: entry["sha256"] for name, entry in manifest.items()}
        palette = set()
        for entry in report["images"]:
            src = np.asarray(Image.open(source / f"{entry['name']}.png").convert("RGB"))
            out = read_rgb(prepared.dir / f"{entry['name']}.png")
            # byte-equal pixels to the baseline's NEAREST upscale, and no colour the source lacks
            assert np.array_equal(out, np.asarray(Image.fromarray(src).resize((resolution,) * 2, Image.NEAREST)))
            assert colours(out) <= colours(src)
            assert entry["colors"] == len(colours(src))
            palette |= colours(src)
        assert len(prepared.palette) == len(palette)
        assert not report["summary"]["composited"]
    assert {p.name: p.stat().st_mtime_ns for p in source.iterdir()} == before
