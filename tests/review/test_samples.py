"""Sample discovery and sd-scripts sample names (kohya/FACTS.md §3)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from bespoke.errors import ProcessError
from bespoke.kohya.naming import parse_sample_name
from bespoke.review.samples import find_samples


def test_parse_names():
    info = parse_sample_name("tiny_e000001_01_20261122023155_7.png")
    assert (info.output_name, info.epoch, info.step, info.prompt_index, info.seed) == ("tiny", 1, None, 1, 7)
    assert info.timestamp == "20261122023155"
    first = parse_sample_name("my_lora_v2_e000000_00_20261122023155.png")
    assert (first.output_name, first.epoch, first.seed) == ("my_lora_v2", 0, None)
    step = parse_sample_name("tiny_000002_00_20261122025705_123.png")
    assert (step.epoch, step.step, step.seed) == (None, 2, 123)
    bare = parse_sample_name("e000003_02_20261122025705.png")
    assert (bare.output_name, bare.epoch, bare.prompt_index) == (None, 3, 2)
    other = parse_sample_name("holiday.png")
    assert (other.name, other.epoch, other.step, other.prompt_index) == ("holiday", None, None, None)


def _png(path, size=(64, 64)):
    Image.new("RGB", size, (10, 20, 30)).save(path)


def _run(root, prompts="# comment\n\nfirst prompt --d 42 --w 512\nsecond prompt\n"):
    (root / "config").mkdir(parents=True)
    (root / "config" / "prompts.txt").write_text(prompts)
    (root / "run.json").write_text(json.dumps({"schema_version": 1, "id": "r", "status": "finished"}))
    sample = root / "model" / "sample"
    sample.mkdir(parents=True)
    return sample


def test_find_samples_in_run_links_prompts(tmp_path):
    sample = _run(tmp_path / "run")
    for name in ("x_e000002_01_20261122023155.png", "x_e000001_00_20261122023155_42.png",
                 "x_e000000_00_20261122023155_42.png", "odd.png", "x_000005_00_20261122023155.png"):
        _png(sample / name)
    (sample / "notes.txt").write_text("not an image")
    infos = find_samples(tmp_path / "run")
    assert [(i.epoch, i.step) for i in infos] == [(0, None), (1, None), (2, None), (None, 5), (None, None)]
    assert infos[1].prompt == "first prompt" and infos[1].seed == 42
    assert infos[2].prompt == "second prompt"
    assert infos[4].name == "odd" and infos[4].prompt is None


@pytest.mark.parametrize("setup,message", [
    ("missing", "no such folder"), ("empty", "it is empty"), ("others", "other files"),
    ("run-no-samples", "no samples yet"), ("file", "is a file"),
])
def test_find_samples_bad_input(tmp_path, setup, message):
    target = tmp_path / "target"
    if setup == "empty":
        target.mkdir()
    elif setup == "others":
        target.mkdir()
        (target / "a.txt").write_text("x")
    elif setup == "run-no-samples":
        _run(target)
        (target / "model" / "sample").rmdir()
    elif setup == "file":
        target.write_text("x")
    with pytest.raises(ProcessError, match=message):
        find_samples(target)
