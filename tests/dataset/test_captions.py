"""Captions: kept byte for byte, the trigger phrase, statistics and what sd-scripts reads of them."""

from __future__ import annotations

import pytest
from dataset_helpers import write_pair

from bespoke.dataset.captions import approx_clip_tokens, caption_stats, parse_caption
from bespoke.dataset.prepare import prepare_dataset
from bespoke.dataset.synthetic import make_punk
from bespoke.errors import UsageError


def test_captions_are_kept_byte_for_byte(tmp_path, cache):
    folder = tmp_path / "caps"
    raw = "pixel art, 24x24, caf\u00e9 punk, lad\n".encode()
    write_pair(folder, "one", make_punk(1).image(), raw)
    prepared = prepare_dataset(folder, 64, cache_dir=cache)
    assert (prepared.dir / "one.txt").read_bytes() == raw
    assert prepared.report["images"][0]["caption_chars"] == len("pixel art, 24x24, caf\u00e9 punk, lad")


def test_trigger_is_prepended_once(tmp_path, cache):
    folder = tmp_path / "trig"
    write_pair(folder, "plain", make_punk(1).image(), b"pixel art, lad")
    write_pair(folder, "already", make_punk(2).image(), b"bspk punk, pixel art, lady\n")
    write_pair(folder, "prefix_only", make_punk(3).image(), b"bspk punks, lady")
    prepared = prepare_dataset(folder, 64, cache_dir=cache, trigger="  bspk punk ")
    assert (prepared.dir / "plain.txt").read_bytes() == b"bspk punk, pixel art, lad"
    assert (prepared.dir / "already.txt").read_bytes() == b"bspk punk, pixel art, lady\n"
    assert (prepared.dir / "prefix_only.txt").read_bytes() == b"bspk punk, bspk punks, lady"
    assert prepared.report["trigger"] == "bspk punk"
    assert prepared.report["caption_stats"]["trigger_added"] == 2
    assert (folder / "plain.txt").read_bytes() == b"pixel art, lad"  # sources untouched
    with pytest.raises(UsageError, match="trigger phrase is empty"):
        prepare_dataset(folder, 64, cache_dir=cache, trigger="  ")


def test_caption_stats_and_long_caption_warning(tmp_path, cache):
    folder = tmp_path / "stats"
    short = "pixel art, lad"  # 14 chars, 2 tags
    long = ", ".join(f"tag{i} word" for i in range(40))
    write_pair(folder, "a", make_punk(1).image(), short)
    write_pair(folder, "b", make_punk(2).image(), long)
    write_pair(folder, "c", make_punk(3).image(), "first line, lad\nsecond line ignored\n")
    write_pair(folder, "d", make_punk(4).image(), "\ufeffpixel art, bom".encode())
    report = prepare_dataset(folder, 64, cache_dir=cache).report
    stats = report["caption_stats"]
    assert stats["count"] == 4
    assert stats["chars"]["min"] == len(short) and stats["chars"]["max"] == len(long)
    assert stats["tags"]["min"] == 2 and stats["tags"]["max"] == 40
    assert stats["over_75_tokens"] == 1 and stats["multi_line"] == 1 and stats["with_bom"] == 1
    text = " ".join(report["warnings"])
    assert "1/4 captions exceed one CLIP window of 75 tokens" in text
    assert "sd-scripts reads only the first" in text and "BOM" in text


def test_token_approximation():
    assert approx_clip_tokens("pixel art, 24x24") == 8  # pixel / art / , / 2 / 4 / x / 2 / 4
    assert approx_clip_tokens("") == 0
    caption = parse_caption(b"a, b,, c ,")
    assert caption.tags == 3
    stats = caption_stats([caption])
    assert stats["chars"] == {"min": 10, "mean": 10.0, "max": 10}


def test_caption_lines_follow_python_text_mode():
    # sd-scripts reads with open(..., "rt"): \r, \n and \r\n end a line; other Unicode breaks do not
    assert parse_caption(b"one, two\rthree").extra_lines == 1
    assert parse_caption(b"one, two\r\nthree\n").text == "one, two"
    assert parse_caption("one\u2028two".encode()).text == "one\u2028two"
    assert parse_caption(b"bspk, punk, lad", trigger="bspk, punk").raw == b"bspk, punk, lad"
    assert parse_caption(b"bspk,punk, lad", trigger="bspk, punk").trigger_added is False
    assert parse_caption(b"bspk, lad", trigger="bspk, punk").raw == b"bspk, punk, bspk, lad"
