"""Every bad source folder is refused with a message that says what to fix, and nothing is written."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from dataset_helpers import assert_nothing_written, png_bytes, tree, write_pair
from PIL import Image

from bespoke.dataset.prepare import prepare_dataset
from bespoke.dataset.sources import scan_sources
from bespoke.dataset.synthetic import make_punk, write_dataset
from bespoke.errors import DatasetError


def _bad(tmp_path, cache, build, match, **options):
    """Build a dataset with one problem; check the message, that nothing was written and sources are untouched."""
    folder = tmp_path / "bad"
    write_dataset(folder, count=3, seed=2)
    build(folder)
    before = tree(folder)
    with pytest.raises(DatasetError, match=match) as info:
        prepare_dataset(folder, 64, cache_dir=cache, **options)
    assert "\n" not in str(info.value)
    assert tree(folder) == before
    assert_nothing_written(cache)
    with pytest.raises(DatasetError, match=match):  # scan_sources validates the same way, writing nothing
        scan_sources(folder)
    return info.value


def test_wrong_size_says_the_size_found(tmp_path, cache):
    def build(folder):
        big = make_punk(1).image().resize((576, 576), Image.NEAREST)
        write_pair(folder, "big", big)

    error = _bad(tmp_path, cache, build, r"big\.png: is 576x576, bespoke expects 24x24 sources")
    assert "24x the grid" in str(error)


def test_not_an_image(tmp_path, cache):
    _bad(tmp_path, cache, lambda f: write_pair(f, "junk", b"this is not a png"),
         r"junk\.png: is not an image")


def test_truncated_png(tmp_path, cache):
    def build(folder):
        data = png_bytes(make_punk(3).image())
        write_pair(folder, "cut", data[: len(data) // 2])

    _bad(tmp_path, cache, build, r"cut\.png: is damaged or truncated")


def test_jpeg_named_png_and_jpg_file(tmp_path, cache):
    def build(folder):
        buffer = io.BytesIO()
        make_punk(3).image().save(buffer, "JPEG")
        write_pair(folder, "fake", buffer.getvalue())

    _bad(tmp_path, cache, build, r"fake\.png: is a JPEG file named \.png")

    def build_jpg(folder):
        make_punk(4).image().save(folder / "photo.jpg")

    _bad(tmp_path / "2", cache, build_jpg, r"photo\.jpg: \.jpg images are not supported")


def test_sixteen_bit_grey_is_refused(tmp_path, cache):
    def build(folder):
        write_pair(folder, "deep", Image.fromarray((np.arange(576).reshape(24, 24) * 100).astype(np.uint16)))

    _bad(tmp_path, cache, build, r"deep\.png: has pixel mode I;16")


def test_missing_caption_with_case_hint(tmp_path, cache):
    def build(folder):
        write_pair(folder, "nocap", make_punk(5).image())
        (folder / "nocap.txt").rename(folder / "nocap.TXT")

    _bad(tmp_path, cache, build, r"nocap\.png: missing caption nocap\.txt \(found nocap\.TXT: rename it")


@pytest.mark.parametrize(("caption", "match"), [
    (b"", r"empty\.txt: caption is empty"),
    (b"  \n\n ", r"empty\.txt: caption is empty"),
    (b"\n\npixel art", r"empty\.txt: caption is empty on its first line"),
    ("pixel art, caf\u00e9".encode("latin-1"), r"empty\.txt: not UTF-8"),
])
def test_bad_captions(tmp_path, cache, caption, match):
    _bad(tmp_path, cache, lambda f: write_pair(f, "empty", make_punk(6).image(), caption), match)


@pytest.mark.parametrize("names", [("dup.png", "dup.PNG"), ("Dup.png", "dup.png")])
def test_duplicate_names(tmp_path, cache, names):
    probe = tmp_path / "case_probe"
    probe.mkdir()
    (probe / "a").write_text("x")
    if (probe / "A").exists():
        pytest.skip("case-insensitive file system")

    def build(folder):
        for name in names:
            (folder / name).write_bytes(png_bytes(make_punk(7).image()))
            (folder / f"{Path(name).stem}.txt").write_text("pixel art")

    _bad(tmp_path, cache, build, r"(?i)dup\.png and dup\.png differ only by case")


def test_folder_problems(tmp_path, cache):
    with pytest.raises(DatasetError, match=r"missing_folder: dataset folder not found"):
        prepare_dataset(tmp_path / "missing_folder", 64, cache_dir=cache)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"empty: is empty"):
        prepare_dataset(empty, 64, cache_dir=cache)
    (empty / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match=r"empty: has no \.png images"):
        prepare_dataset(empty, 64, cache_dir=cache)
    afile = tmp_path / "file.png"
    afile.write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"file\.png: is a file, not a folder"):
        prepare_dataset(afile, 64, cache_dir=cache)
    assert_nothing_written(cache)


def test_every_problem_is_collected(tmp_path, cache):
    def build(folder):
        write_pair(folder, "a_junk", b"nope")
        write_pair(folder, "b_empty", make_punk(1).image(), b"")
        (folder / "c_nocap.png").write_bytes(png_bytes(make_punk(2).image()))

    error = _bad(tmp_path, cache, build, r"a_junk\.png: is not an image .*\(\+2 more problems in ")
    assert len(error.problems) == 3
    assert any("b_empty.txt: caption is empty" in p for p in error.problems)
    assert any("c_nocap.png: missing caption" in p for p in error.problems)


def test_animated_png_is_refused(tmp_path, cache):
    def build(folder):
        frames = [make_punk(1).image(), make_punk(2).image()]
        buffer = io.BytesIO()
        frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:])
        write_pair(folder, "anim", buffer.getvalue())

    _bad(tmp_path, cache, build, r"anim\.png: is an animated PNG \(2 frames\)")


def test_ignored_files_are_noted(synthetic_dataset, cache):
    (synthetic_dataset / "MANIFEST.json").write_text("{}")
    (synthetic_dataset / ".DS_Store").write_bytes(b"\0")
    (synthetic_dataset / "sub").mkdir()
    (synthetic_dataset / "orphan.txt").write_text("no image")
    notes = prepare_dataset(synthetic_dataset, 64, cache_dir=cache).report["notes"]
    assert any(n.startswith("MANIFEST.json: not a PNG") for n in notes)
    assert any(n.startswith(".DS_Store: hidden") for n in notes)
    assert any(n.startswith("sub/: subfolder") for n in notes)
    assert any(n.startswith("orphan.txt: caption without an image") for n in notes)
