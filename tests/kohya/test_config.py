"""Rendering and validation of the training TOML and the dataset TOML (golden files, bad inputs, round trips)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import toml

from bespoke.errors import ConfigError
from bespoke.kohya.config import build_dataset_config, build_training_config
from bespoke.kohya.options import DATASET_KEYS_FILE, OPTIONS_FILE, build_option_table, train_network_options
from bespoke.kohya.presets import resolve_preset
from bespoke.kohya.tomlwriter import render_dataset_toml, render_training_toml
from bespoke.kohya.validate import (
    check_consistency,
    validate_dataset,
    validate_dataset_toml,
    validate_training,
    validate_training_toml,
)
from bespoke.settings import DEFAULT_BASE_MODEL

GOLDEN = Path(__file__).parent / "golden"
CASES = {"512": (512, None), "256": (256, None), "128": (128, None), "64": (64, None),
         "baseline-512": (512, "baseline-512"), "64-validation": (64, None)}
UPDATE = os.environ.get("BESPOKE_UPDATE_GOLDEN") == "1"
RUN_LOCAL = {"output_dir": "model", "logging_dir": "logs/tensorboard", "sample_prompts": "config/prompts.txt"}


def _render(name: str) -> tuple[str, str]:
    resolution, preset = CASES[name]
    resolved = resolve_preset(resolution, preset)
    training = build_training_config(resolved, base_model=DEFAULT_BASE_MODEL, run_local=RUN_LOCAL)
    if name.endswith("-validation"):  # designs held out (bespoke.run.holdout): a second dataset of them
        dataset = build_dataset_config(resolved, "/PREPARED/train", "/PREPARED/validation", resolved.validation_seed)
    else:
        dataset = build_dataset_config(resolved, "/PREPARED/images")
    header = f"golden: {name}"
    return render_training_toml(training, header), render_dataset_toml(dataset, header)


# ------------------------------------------------------------------ option table = sd-scripts' parser facts


def test_option_table_matches_shared_parser_facts(shared_dir):
    facts = json.loads((shared_dir / "kohya" / "train_network_args.json").read_text())
    ours = json.loads(OPTIONS_FILE.read_text())
    assert ours["source_commit"] == facts["source_commit"]
    assert ours["options"] == build_option_table(facts)
    assert len(ours["options"]) == facts["count"] == 193


def test_dataset_key_table_matches_shared_schema(shared_dir):
    facts = json.loads((shared_dir / "kohya" / "dataset_config_keys.json").read_text())
    schema = facts["schemas"]["masked_loss=False"]
    ours = json.loads(DATASET_KEYS_FILE.read_text())
    assert ours["source_commit"] == facts["source_commit"]
    assert ours["levels"]["general"] == schema["general"]
    assert ours["levels"]["datasets"] == schema["datasets (DreamBooth: no subset has metadata_file)"]
    assert ours["levels"]["subsets"] == schema["datasets.subsets (DreamBooth)"]


def test_option_types_loaded():
    options = train_network_options()
    assert options["network_dim"].type == "int"
    assert options["sdpa"].store_true
    assert options["text_encoder_lr"].nargs == "*"
    assert "bf16" in options["mixed_precision"].choices


# ------------------------------------------------------------------ golden files


@pytest.mark.parametrize("name", list(CASES))
def test_rendered_configs_match_golden(name):
    training_text, dataset_text = _render(name)
    for suffix, text in (("training.toml", training_text), ("dataset.toml", dataset_text)):
        path = GOLDEN / f"{name}.{suffix}"
        if UPDATE:
            path.write_text(text, encoding="utf-8")
        assert path.is_file(), f"missing golden {path}; run with BESPOKE_UPDATE_GOLDEN=1 once"
        assert text == path.read_text(encoding="utf-8"), f"{path} differs from the rendered config"


@pytest.mark.parametrize("name", list(CASES))
def test_golden_files_validate_as_sd_scripts_reads_them(name):
    training = validate_training_toml(GOLDEN / f"{name}.training.toml")
    dataset = validate_dataset_toml(GOLDEN / f"{name}.dataset.toml")
    resolution = CASES[name][0]
    assert training["resolution"] == f"{resolution},{resolution}"
    assert training["caption_extension"] == ".txt"
    assert training["sample_prompts"] == "config/prompts.txt"
    assert training["output_dir"] == "model"
    assert training["logging_dir"] == "logs/tensorboard"
    ds = dataset["datasets"][0]
    assert ds["resolution"] == resolution and isinstance(ds["resolution"], int)
    assert ds["min_bucket_reso"] <= resolution <= ds["max_bucket_reso"]
    held_out = name.endswith("-validation")
    assert ds["subsets"][0]["image_dir"] == ("/PREPARED/train" if held_out else "/PREPARED/images")
    assert ds["subsets"][0]["caption_extension"] == ".txt"
    assert all(value is not None for value in training.values())
    assert training["validate_every_n_epochs"] == 1
    if held_out:  # the same dataset settings, every held-out picture once, all of them for validation
        train_block, held = dataset["datasets"]
        assert held["validation_split"] == 1.0 and isinstance(held["validation_split"], float)
        assert held["validation_seed"] == 42 and "validation_split" not in train_block
        assert {k: v for k, v in held.items() if not k.startswith("validation") and k != "subsets"} == \
            {k: v for k, v in train_block.items() if k != "subsets"}
        (subset,) = held["subsets"]
        assert subset["image_dir"] == "/PREPARED/validation" and subset["num_repeats"] == 1
        assert {k: v for k, v in subset.items() if k not in ("image_dir", "num_repeats")} == \
            {k: v for k, v in train_block["subsets"][0].items() if k not in ("image_dir", "num_repeats")}
    else:
        assert len(dataset["datasets"]) == 1


def test_render_is_deterministic_whatever_the_insertion_order():
    resolved = resolve_preset(256, None)
    training = build_training_config(resolved, base_model="m", run_local=RUN_LOCAL)
    reversed_training = dict(reversed(list(training.items())))
    assert render_training_toml(training) == render_training_toml(reversed_training)
    assert render_training_toml({"seed": 1, "sdpa": None}) == "[training]\nseed = 1\n"


# ------------------------------------------------------------------ training TOML: bad inputs


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_training_typo_did_you_mean_names_file_and_key(tmp_path):
    path = _write(tmp_path, "training.toml", '[network]\nnetwork_module = "networks.lora"\nnetwork_dimm = 8\n')
    with pytest.raises(ConfigError) as err:
        validate_training_toml(path)
    assert str(err.value) == (f"{path}: key 'network_dimm' is not a train_network.py option "
                              f'(did you mean "network_dim"?)')


@pytest.mark.parametrize("text, fragment", [
    ('learning_rate = "1e-3"', "key 'learning_rate' must be a number, got string '1e-3'"),
    ("network_dim = 4.0", "key 'network_dim' must be an integer, got float 4.0"),
    ("network_dim = true", "key 'network_dim' must be an integer, got boolean True"),
    ('sdpa = "true"', "key 'sdpa' must be true or false, got string 'true'"),
    ("resolution = 512", "key 'resolution' must be a string, got integer 512"),
    ('resolution = "512x512"', "key 'resolution' must be a string \"N\" or \"W,H\""),
    ("seed = [1, 2]", "key 'seed' takes one value"),
    ("text_encoder_lr = [\"x\"]", "key 'text_encoder_lr' must be a number, got string 'x'"),
    ("[a.b]\nc = 1", "key 'b' is not a train_network.py option"),
])
def test_training_wrong_types(tmp_path, text, fragment):
    path = _write(tmp_path, "t.toml", text + "\n")
    with pytest.raises(ConfigError) as err:
        validate_training_toml(path)
    assert str(err.value).startswith(f"{path}: ")
    assert fragment in str(err.value)


@pytest.mark.parametrize("text, fragment", [
    ('mixed_precision = "fp32"', "key 'mixed_precision' = 'fp32' is not one of no, fp16, bf16"),
    ('sample_sampler = "euler_ancestral"', "is not one of ddim"),
    ("max_token_length = 300", "key 'max_token_length' = 300 is not one of 150, 225"),
    ('lr_scheduler = "cosine_restarts"', 'did you mean "cosine_with_restarts"'),
    ('lr_scheduler = "adafactor:x"', "is not a scheduler sd-scripts knows"),
    ('optimizer_type = "AdamW9bit"', 'did you mean "AdamW8bit"'),
    ('save_model_as = "bin"', "key 'save_model_as' = 'bin' is not one of ckpt, pt, safetensors"),
])
def test_training_bad_choices(tmp_path, text, fragment):
    path = _write(tmp_path, "t.toml", text + "\n")
    with pytest.raises(ConfigError) as err:
        validate_training_toml(path)
    assert fragment in str(err.value)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text", [
    'optimizer_type = "adamw8bit"', 'optimizer_type = "PRODIGY"', 'optimizer_type = "RMSprop"',
    'optimizer_type = "bitsandbytes.optim.AdEMAMix8bit"', 'optimizer_type = ""',
    'lr_scheduler = "adafactor:1e-4"', "lr_warmup_steps = 0.1", "text_encoder_lr = 5e-5",
    'network_args = ["conv_dim=4", "conv_alpha=1"]', "network_alpha = 16", "max_token_length = 225",
])
def test_training_valid_values_pass(tmp_path, text):
    validate_training_toml(_write(tmp_path, "t.toml", text + "\n"))


def test_training_min_bucket_above_resolution(tmp_path):
    path = _write(tmp_path, "t.toml", 'resolution = "64,64"\nenable_bucket = true\n')
    with pytest.raises(ConfigError, match="min_bucket_reso 256 > resolution 64"):
        validate_training_toml(path)


def test_training_key_in_two_sections(tmp_path):
    path = _write(tmp_path, "t.toml", "seed = 1\n[a]\nnetwork_dim = 4\n[b]\nnetwork_dim = 8\n")
    with pytest.raises(ConfigError, match=r"key 'network_dim' is set in \[a\] and in \[b\]"):
        validate_training_toml(path)


def test_training_toml_not_toml_or_missing(tmp_path):
    bad = _write(tmp_path, "t.toml", "seed = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        validate_training_toml(bad)
    with pytest.raises(ConfigError, match="file not found"):
        validate_training_toml(tmp_path / "nope.toml")


# ------------------------------------------------------------------ dataset TOML: bad inputs

GOOD_DATASET = """
[general]
caption_extension = ".txt"

[[datasets]]
resolution = 64
batch_size = 2
enable_bucket = true
min_bucket_reso = 64
max_bucket_reso = 128
bucket_reso_steps = 64

  [[datasets.subsets]]
  image_dir = "/data/images"
  num_repeats = 2
"""


def test_good_dataset_passes(tmp_path):
    config = validate_dataset_toml(_write(tmp_path, "d.toml", GOOD_DATASET))
    assert config["datasets"][0]["subsets"][0]["num_repeats"] == 2


@pytest.mark.parametrize("old, new, fragment", [
    ("num_repeats = 2", "num_repeat = 2",
     "datasets[0].subsets[0]: key 'num_repeat' is not allowed here (sd-scripts would stop with 'extra keys not "
     "allowed') (did you mean \"num_repeats\"?)"),
    ('caption_extension = ".txt"', 'caption_extention = ".txt"', '[general]: key \'caption_extention\''),
    ("[general]", "[genral]", "top-level key 'genral' is not allowed (only [general] and [[datasets]]) "
                              "(did you mean \"general\"?)"),
    ("num_repeats = 2", "num_repeats = 2\n  batch_size = 4",
     "datasets[0].subsets[0]: key 'batch_size' is only allowed in [[datasets]] or [general], not in a subset"),
    ('image_dir = "/data/images"', 'image = "/data/images"', "key 'image' is not allowed here"),
    ('  image_dir = "/data/images"\n', "  is_reg = false\n", "key 'image_dir' is required"),
    ("num_repeats = 2", "num_repeats = 2.0", "key 'num_repeats' must be int, got float 2.0 (write 2)"),
    ("resolution = 64", 'resolution = "64"', "key 'resolution' must be int or [int, int], got string '64'"),
    ("batch_size = 2", "batch_size = 2\nvalidation_split = 0",
     "key 'validation_split' must be float, got integer 0 (ints are not floats here: write 0.0)"),
    ("min_bucket_reso = 64", "min_bucket_reso = 256",
     "datasets[0]: min_bucket_reso 256 > resolution 64 (sd-scripts asserts min_bucket_reso <= resolution)"),
    ("max_bucket_reso = 128", "max_bucket_reso = 48", "max_bucket_reso 48 < resolution 64"),
    ("bucket_reso_steps = 64", "bucket_reso_steps = 32",
     "datasets[0]: bucket_reso_steps = 32: SD 1.x needs a multiple of 64"),
    ("num_repeats = 2", 'num_repeats = 2\n  resize_interpolation = "nearst"', 'did you mean "nearest"'),
    ("enable_bucket = true", 'enable_bucket = "yes"', "key 'enable_bucket' must be bool"),
])
def test_dataset_bad_inputs(tmp_path, old, new, fragment):
    assert old in GOOD_DATASET
    path = _write(tmp_path, "d.toml", GOOD_DATASET.replace(old, new))
    with pytest.raises(ConfigError) as err:
        validate_dataset_toml(path)
    assert str(err.value).startswith(f"{path}: ")
    assert fragment in str(err.value)


def test_dataset_without_datasets_or_subsets():
    with pytest.raises(ConfigError, match=r"no \[\[datasets\]\] table"):
        validate_dataset({"general": {}}, "d.toml")
    with pytest.raises(ConfigError, match=r"datasets\[0\] has no \[\[datasets.subsets\]\]"):
        validate_dataset({"datasets": [{"resolution": 64}]}, "d.toml")


def test_cache_latents_with_color_aug_is_refused():
    config = {"datasets": [{"resolution": 64, "subsets": [{"image_dir": "x", "color_aug": True}]}]}
    validate_dataset(config, "d.toml")
    with pytest.raises(ConfigError, match="color_aug = true cannot be used with cache_latents"):
        check_consistency({"cache_latents": True}, config, "d.toml")
    check_consistency({"cache_latents": False}, config, "d.toml")


# ------------------------------------------------------------------ paths survive toml.load

WEIRD = [
    "/data/with space/punks",
    '/data/"quoted"/it\'s',
    "C:\\Users\\me\\x41\\new\\table",
    "\\\\server\\share\\u00e9",
    "/données/ペンギン/ünïcödé ✓",
    "/tab\there/cr\rhere/nl\nhere/del\x7f/bell\x07",
]


@pytest.mark.parametrize("weird", WEIRD)
def test_weird_paths_round_trip_through_toml_load(tmp_path, weird):
    resolved = resolve_preset(128, None)
    run_local = {**RUN_LOCAL, "output_dir": str(Path(weird) / "run" / "model")}
    training = build_training_config(resolved, base_model=weird, run_local=run_local)
    dataset = build_dataset_config(resolved, weird)
    training_path = _write(tmp_path, "training.toml", render_training_toml(training, f"header {weird}"))
    dataset_path = _write(tmp_path, "dataset.toml", render_dataset_toml(dataset, "header"))
    loaded_training = validate_training_toml(training_path)
    assert loaded_training == training
    assert loaded_training["pretrained_model_name_or_path"] == weird
    assert loaded_training["output_dir"] == str(Path(weird) / "run" / "model")
    assert toml.load(dataset_path) == dataset
    assert validate_dataset_toml(dataset_path)["datasets"][0]["subsets"][0]["image_dir"] == weird


def test_validate_training_dict_source_default():
    with pytest.raises(ConfigError, match=r"^training.toml: key 'x' is not a train_network.py option"):
        validate_training({"x": 1})
