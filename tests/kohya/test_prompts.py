"""sd-scripts sample prompt files: the shipped sets, round trips and every bad input with its line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bespoke.errors import ConfigError
from bespoke.kohya.presets import PRESETS_DIR
from bespoke.kohya.prompts import SamplePrompt, for_size, parse_prompt_file, parse_prompt_text, render_prompts


def _file(tmp_path: Path, text: str, name: str = "prompts.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_baseline_prompt_set():
    prompts = parse_prompt_file(PRESETS_DIR / "prompts-baseline.txt")
    assert [p.name for p in prompts] == ["green_bg_lad", "brown_eyes_lady", "golden_earrings", "sunglasses_lad",
                                         "melon_lady", "cash_lad", "carbon_lad"]
    assert {(p.width, p.height, p.steps, p.scale) for p in prompts} == {(512, 512, 30, 7.5)}
    seeds = [p.seed for p in prompts]
    assert None not in seeds and len(set(seeds)) == 7
    assert {p.negative for p in prompts} == {"blurry, smooth, gradients, antialiased, photography, realistic, 3d render"}
    assert [p.index for p in prompts] == list(range(7))


def test_baseline_prompts_match_recorded_protocol(shared_dir):
    recorded = json.loads((shared_dir / "baseline" / "baseline.json").read_text())["eval"]
    prompts = parse_prompt_file(PRESETS_DIR / "prompts-baseline.txt")
    assert [(p.name, p.prompt) for p in prompts] == [(e["name"], e["prompt"]) for e in recorded["prompts"]]
    assert all(p.negative == recorded["negative_prompt"] for p in prompts)
    assert all(p.steps == recorded["steps"] and p.scale == recorded["guidance"] for p in prompts)
    assert all((p.width, p.height) == (recorded["width"], recorded["height"]) for p in prompts)


def test_default_prompt_set_has_four_seeded_prompts():
    prompts = parse_prompt_file(PRESETS_DIR / "prompts-default.txt")
    assert len(prompts) == 4
    assert all(p.seed is not None and p.name for p in prompts)


def test_render_parse_round_trip(tmp_path):
    original = parse_prompt_file(PRESETS_DIR / "prompts-baseline.txt")
    again = parse_prompt_text(render_prompts(for_size(original, 64), header="a header\nsecond line"), tmp_path / "x.txt")
    assert [p.width for p in again] == [64] * 7
    assert [(p.prompt, p.negative, p.seed, p.name) for p in again] == [
        (p.prompt, p.negative, p.seed, p.name) for p in original]


def test_options_case_insensitive_and_defaults(tmp_path):
    path = _file(tmp_path, "# title line of the file\n\n# one\na cat --W 256 --H 128 --D 7 --S 20 --L 5 --SS Euler_A\n"
                           "plain prompt\n")
    first, second = parse_prompt_file(path)
    assert first == SamplePrompt(index=0, prompt="a cat", width=256, height=128, seed=7, steps=20, scale=5.0,
                                 sampler="euler_a", name="one", line=4)
    assert second.prompt == "plain prompt" and second.width is None and second.name is None and second.line == 5


def test_for_size_keeps_explicit_sizes_when_not_forced():
    prompts = [SamplePrompt(0, "a", width=256, height=256), SamplePrompt(1, "b")]
    assert [(p.width, p.height) for p in for_size(prompts, 64, force=False)] == [(256, 256), (64, 64)]
    assert [(p.width, p.height) for p in for_size(prompts, 64)] == [(64, 64), (64, 64)]


@pytest.mark.parametrize("line, fragment", [
    ("a cat --x 3", "unknown option --x"),
    ("a cat --nn blurry", 'unknown option --nn (did you mean "n"?)'),
    ("a cat --w abc", "--w needs an integer, got 'abc'"),
    ("a cat --w 100", "--w 100: width must be a multiple of 8 and at least 64"),
    ("a cat --h 32", "--h 32: height must be a multiple of 8 and at least 64"),
    ("a cat --d 1.5", "--d needs an integer, got '1.5'"),
    ("a cat --d -1", "the seed must be 0 or more"),
    ("a cat --s 0", "--s 0: steps must be 1..1000"),
    ("a cat --s many", "--s needs an integer"),
    ("a cat --l high", "--l needs a number (CFG scale), got 'high'"),
    ("a cat --l 0", "--l must be a positive number"),
    ("a cat --ss euler_ancestral", "--ss 'euler_ancestral' is not a sampler sd-scripts knows"),
    ("a cat --g 3", "--g is for other model families, not SD 1.5"),
    ("a cat --w", "--w needs a value"),
    ("a cat --w 64 --w 128", "--w is given twice"),
    (" --n only a negative", "empty prompt"),
    ("a cat --", "cannot read option"),
])
def test_bad_prompt_lines_name_file_and_line(tmp_path, line, fragment):
    path = _file(tmp_path, f"# header\n\ngood prompt --w 64 --h 64\n{line}\n")
    with pytest.raises(ConfigError) as err:
        parse_prompt_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}:4: "), message
    assert fragment in message


def test_empty_file_and_comment_only_file(tmp_path):
    for text in ("", "# only a comment\n\n   \n"):
        path = _file(tmp_path, text)
        with pytest.raises(ConfigError, match="no prompts"):
            parse_prompt_file(path)


def test_missing_unreadable_and_wrong_suffix(tmp_path):
    with pytest.raises(ConfigError, match="prompt file not found"):
        parse_prompt_file(tmp_path / "nope.txt")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 --w 64".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        parse_prompt_file(bad)
    with pytest.raises(ConfigError, match=r"\.txt, \.toml or \.json only"):
        parse_prompt_file(_file(tmp_path, "a cat", "prompts.csv"))


def test_toml_and_json_forms(tmp_path):
    toml_path = _file(tmp_path, '[prompt]\nwidth = 256\nheight = 256\nsample_steps = 20\n\n'
                                '[[prompt.subset]]\nprompt = "a cat"\nseed = 1\n\n'
                                '[[prompt.subset]]\nprompt = "a dog"\nwidth = 128\nnegative_prompt = "blur"\n', "p.toml")
    cat, dog = parse_prompt_file(toml_path)
    assert (cat.width, cat.steps, cat.seed) == (256, 20, 1)
    assert (dog.width, dog.height, dog.negative) == (128, 256, "blur")
    json_path = _file(tmp_path, json.dumps(["a cat --w 64 --h 64", {"prompt": "a dog", "scale": 5}]), "p.json")
    cat, dog = parse_prompt_file(json_path)
    assert (cat.width, dog.scale, dog.index) == (64, 5.0, 1)
    with pytest.raises(ConfigError, match="prompt 1: unknown key 'promt'"):
        parse_prompt_file(_file(tmp_path, json.dumps([{"promt": "x"}]), "q.json"))
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_prompt_file(_file(tmp_path, "[", "r.json"))
    with pytest.raises(ConfigError, match="prompt 1: --w 65"):
        parse_prompt_file(_file(tmp_path, '[[prompt.subset]]\nprompt = "x"\nwidth = 65\n', "s.toml"))


def test_render_refuses_text_that_cannot_be_one_line():
    with pytest.raises(ConfigError, match="cannot contain a line break"):
        render_prompts([SamplePrompt(0, "two\nlines")])
    with pytest.raises(ConfigError, match="' --'"):
        render_prompts([SamplePrompt(0, "a", negative="x --w 3")])
