"""Presets in kohya_configs/: layering, the baseline as it ran, --set overrides and their errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bespoke.errors import ConfigError
from bespoke.kohya.presets import PRESETS_DIR, list_presets, parse_override, preset_names, resolve_preset
from bespoke.kohya.validate import validate_preset_values

# baseline.json training keys that bespoke does not copy into the preset, and why
NOT_COPIED = {
    "pretrained_model_name_or_path": "settings.base_model (runwayml removed from the hub)",
    "bucket_resolution": "not an sd-scripts option",
    "resolution": "-r",
    "train_data_dir": "dataset.toml image_dir",
    "output_dir": "run folder",
    "logging_dir": "run folder",
    "repeats": "dataset num_repeats",
    "num_images": "a fact about the data",
    "upscale": "prepare --layout stretch",
    "steps_per_epoch": "computed",
    "total_steps": "computed",
}


@pytest.mark.parametrize("resolution, batch", [(512, 4), (256, 8), (128, 16), (64, 32)])
def test_resolution_presets_fit(resolution, batch):
    preset = resolve_preset(resolution, None)
    validate_preset_values(preset)
    data = preset.dataset
    assert data["batch_size"] == batch
    assert data["enable_bucket"] is True
    assert data["min_bucket_reso"] <= resolution <= data["max_bucket_reso"]
    for key in ("min_bucket_reso", "max_bucket_reso"):
        assert data[key] % data["bucket_reso_steps"] == 0
    assert resolution % data["bucket_reso_steps"] == 0
    assert data["bucket_reso_steps"] % 64 == 0  # SD 1.x: sd-scripts asserts it (FACTS §10)
    assert data["resize_interpolation"] == "nearest"
    assert data["caption_extension"] == ".txt"
    assert preset.sample_size == resolution
    assert preset.layout == "stretch"
    assert preset.prompts_file.name == "prompts-default.txt"
    assert [p.name for p in preset.sources] == ["base.toml", f"res-{resolution}.toml"]
    assert preset.origins["dataset.batch_size"].endswith(f"res-{resolution}.toml")
    assert preset.origins["training.network_dim"].endswith("base.toml")


def test_base_preset_essentials():
    training = resolve_preset(512, None).training
    assert training["network_module"] == "networks.lora"
    assert training["optimizer_type"] == "AdamW"
    assert training["lr_scheduler"] == "cosine"
    assert training["max_train_epochs"] == 10
    assert training["save_every_n_epochs"] == 1 and training["sample_every_n_epochs"] == 1
    assert training["sample_at_first"] is True and training["sdpa"] is True and training["cache_latents"] is True


def test_baseline_preset_is_the_run_as_it_ran(shared_dir):
    recorded = json.loads((shared_dir / "baseline" / "baseline.json").read_text())["training"]
    preset = resolve_preset(512, "baseline-512")
    validate_preset_values(preset)
    merged = {**preset.dataset, **preset.training}
    for key, value in recorded.items():
        if key in NOT_COPIED:
            continue
        assert key in merged, f"baseline key {key} missing from baseline-512.toml"
        assert merged[key] == value, f"{key}: preset {merged[key]!r} != recorded {value!r}"
    assert preset.dataset["num_repeats"] == recorded["repeats"] == 10
    assert preset.dataset["batch_size"] == recorded["train_batch_size"]
    text = (PRESETS_DIR / "baseline-512.toml").read_text()
    assert "bucket_resolution" in text  # explained in a comment...
    assert not any(line.startswith("bucket_resolution") for line in text.splitlines())  # ...never set


def test_baseline_values_without_shared():
    preset = resolve_preset(512, "baseline-512")
    t, d = preset.training, preset.dataset
    assert (t["network_dim"], t["network_alpha"], t["optimizer_type"]) == (32, 16, "AdamW8bit")
    assert (t["learning_rate"], t["unet_lr"], t["text_encoder_lr"]) == (1e-4, 1e-4, 5e-5)
    assert (t["lr_scheduler"], t["lr_scheduler_num_cycles"], t["lr_warmup_steps"]) == ("cosine_with_restarts", 3, 100)
    assert (t["mixed_precision"], t["save_precision"], t["xformers"], t["max_train_epochs"]) == ("bf16", "fp16", True, 10)
    assert (d["num_repeats"], d["keep_tokens"], d["caption_dropout_rate"], d["batch_size"]) == (10, 3, 0.05, 4)
    assert preset.prompts_file.name == "prompts-baseline.txt"
    assert preset.sample_size == 512
    assert "bucket_resolution" not in t


def test_baseline_preset_only_at_512():
    with pytest.raises(ConfigError, match="preset 'baseline-512' is for 512 px only .* use -r 512"):
        resolve_preset(256, "baseline-512")


def test_unknown_preset_did_you_mean():
    with pytest.raises(ConfigError) as err:
        resolve_preset(512, "baseline512")
    assert "unknown preset 'baseline512'" in str(err.value)
    assert 'did you mean "baseline-512"?' in str(err.value)
    with pytest.raises(ConfigError, match="base and res-R are always applied"):
        resolve_preset(512, "res-256")


def test_unknown_resolution():
    with pytest.raises(ConfigError, match="no preset for resolution 300 .* 512"):
        resolve_preset(300, None)


def test_preset_names_and_listing():
    assert "baseline-512" in preset_names()
    assert not [name for name in preset_names() if name == "base" or name.startswith(("res-", "sweep-"))]
    listing = list_presets()
    assert [row["name"] for row in listing][:5] == ["base", "res-512", "res-256", "res-128", "res-64"]
    rows = {row["name"]: row for row in listing}
    assert rows["base"]["role"] == "base" and rows["res-64"]["role"] == "resolution"
    assert rows["baseline-512"]["description"]


@pytest.mark.parametrize("text, table, key, value", [
    ("network_dim=8", "training", "network_dim", 8),
    ("learning_rate=5e-5", "training", "learning_rate", 5e-5),
    ("optimizer_type=Lion", "training", "optimizer_type", "Lion"),
    ("optimizer_type='Lion'", "training", "optimizer_type", "Lion"),
    ("sdpa=false", "training", "sdpa", False),
    ("network_args=['conv_dim=4']", "training", "network_args", ["conv_dim=4"]),
    ("keep_tokens=2", "dataset", "keep_tokens", 2),
    ("training.keep_tokens=2", "training", "keep_tokens", 2),
    ("bespoke.layout=pad", "bespoke", "layout", "pad"),
    ("num_repeats = 3", "dataset", "num_repeats", 3),
])
def test_parse_override(text, table, key, value):
    assert parse_override(text) == (table, key, value)


@pytest.mark.parametrize("text, fragment", [
    ("network_dim", "expected key=value"),
    ("=3", "expected key=value"),
    ("network_dimm=8", 'is not a train_network.py option, dataset key or bespoke key (did you mean "network_dim"?)'),
    ("trainig.seed=1", 'table \'trainig\' is not one of training, dataset, bespoke (did you mean "training"?)'),
    ("dataset.network_dim=1", "'network_dim' is not a dataset key"),
    ("seed=[1,", "is not valid TOML"),
    ("output_dir=/tmp/x", "training key 'output_dir' is set by bespoke"),
    ("resolution=256", "dataset key 'resolution' is set by bespoke"),
    ("image_dir='/x'", "dataset key 'image_dir' is set by bespoke"),
    ("bespoke.sample_size=big", "[bespoke] sample_size must be int"),
])
def test_bad_set(text, fragment):
    with pytest.raises(ConfigError) as err:
        resolve_preset(512, None, (text,))
    assert fragment in str(err.value)


def test_set_wins_and_is_validated():
    preset = resolve_preset(64, None, ("network_dim=8", "min_bucket_reso=64"))
    assert preset.training["network_dim"] == 8 and preset.dataset["min_bucket_reso"] == 64
    assert preset.origins["training.network_dim"] == "--set network_dim=8"
    bad = resolve_preset(64, None, ("network_dim=8.5",))
    with pytest.raises(ConfigError, match=r"^--set network_dim=8.5: key 'network_dim' must be an integer"):
        validate_preset_values(bad)
    bad = resolve_preset(64, None, ("mixed_precision=fp32",))
    with pytest.raises(ConfigError, match="'fp32' is not one of no, fp16, bf16"):
        validate_preset_values(bad)


@pytest.fixture
def preset_copy(tmp_path) -> Path:
    folder = tmp_path / "presets"
    shutil.copytree(PRESETS_DIR, folder)
    return folder


def test_typo_in_a_preset_file_names_that_file(preset_copy):
    path = preset_copy / "mine.toml"
    path.write_text("[training]\nnetwork_dimm = 8\n[dataset]\nnum_repeats = 1\n")
    preset = resolve_preset(128, "mine", presets_dir=preset_copy)
    with pytest.raises(ConfigError) as err:
        validate_preset_values(preset)
    assert str(err.value) == f'{path}: key \'network_dimm\' is not a train_network.py option (did you mean "network_dim"?)'
    path.write_text("[dataset]\nnum_repeat = 1\n")
    with pytest.raises(ConfigError, match=f'{path}: \\[dataset\\] key \'num_repeat\' .*did you mean "num_repeats"'):
        validate_preset_values(resolve_preset(128, "mine", presets_dir=preset_copy))
    path.write_text("[dataset]\nvalidation_split = 0\n")
    with pytest.raises(ConfigError, match="write 0.0"):
        validate_preset_values(resolve_preset(128, "mine", presets_dir=preset_copy))


@pytest.mark.parametrize("text, fragment", [
    ("network_dim = 8\n", "top-level key 'network_dim' must be inside [training], [dataset] or [bespoke]"),
    ("[trainig]\nseed = 1\n", 'did you mean "training"'),
    ("[bespoke]\nprompt = 'x.txt'\n", "[bespoke] key 'prompt' is not a bespoke preset key (did you mean \"prompts\"?)"),
    ("[training]\npretrained_model_name_or_path = 'x'\n", "comes from settings.base_model"),
    ("[training\n", "not valid TOML"),
])
def test_bad_preset_files(preset_copy, text, fragment):
    (preset_copy / "mine.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        resolve_preset(128, "mine", presets_dir=preset_copy)
    assert fragment in str(err.value)
    assert "mine.toml" in str(err.value)


def test_every_shipped_preset_resolves_validates_and_has_its_prompts():
    from bespoke.kohya.prompts import parse_prompt_file

    for name in [None, *preset_names()]:
        for resolution in (512, 256, 128, 64):
            try:
                preset = resolve_preset(resolution, name)
            except ConfigError as err:
                assert "is for" in str(err) and "px only" in str(err)
                continue
            validate_preset_values(preset)
            assert parse_prompt_file(preset.prompts_file)


def test_a_project_presets_folder_comes_first_and_a_preset_file_works(isolated_project, tmp_path):
    from bespoke.kohya.presets import search_path
    from bespoke.settings import load_settings

    mine = isolated_project / "kohya_configs"
    mine.mkdir()
    (mine / "tiny.toml").write_text('[bespoke]\ndescription = "my tiny preset"\n[training]\nnetwork_dim = 2\n')
    (mine / "res-64.toml").write_text((PRESETS_DIR / "res-64.toml").read_text() + "\n[training]\nseed = 7\n")
    settings = load_settings(isolated_project)
    assert settings.presets_dir == mine.resolve()
    assert search_path(settings.presets_dir) == (mine.resolve(), PRESETS_DIR.resolve())
    preset = resolve_preset(64, "tiny", user_dir=settings.presets_dir)
    assert preset.training["network_dim"] == 2 and preset.training["seed"] == 7  # the project's res-64 wins
    assert preset.sources[1] == mine.resolve() / "res-64.toml" and preset.prompts_file.is_file()
    with pytest.raises(ConfigError, match='unknown preset \'tinny\'.*did you mean "tiny"'):
        resolve_preset(64, "tinny", user_dir=settings.presets_dir)
    assert "baseline-512" in preset_names(user_dir=settings.presets_dir)  # the packaged ones stay available
    loose = tmp_path / "elsewhere" / "my-preset.toml"
    loose.parent.mkdir()
    loose.write_text("[training]\nnetwork_dim = 3\n")
    by_path = resolve_preset(64, str(loose))
    assert by_path.name == "my-preset" and by_path.training["network_dim"] == 3
    with pytest.raises(ConfigError, match="no such preset file"):
        resolve_preset(64, str(tmp_path / "missing" / "x.toml"))
    rows = list_presets(user_dir=settings.presets_dir)
    by_source = {(row["name"], row["source"]): row for row in rows}
    assert by_source[("tiny", "project")]["description"] == "my tiny preset"
    assert by_source[("res-64", "bespoke")]["shadowed_by"] == str(mine.resolve() / "res-64.toml")
    assert by_source[("res-64", "project")]["shadowed_by"] is None


def test_plan_with_a_preset_file_and_the_presets_listing(isolated_project, synthetic_dataset, tmp_path):
    from click.testing import CliRunner

    from bespoke.cli import main

    mine = tmp_path / "mine.toml"
    mine.write_text('[bespoke]\ndescription = "mine"\n[training]\nnetwork_dim = 2\n')
    result = CliRunner().invoke(main, ["plan", "-r", "64", "--dataset", str(synthetic_dataset), "--preset", str(mine),
                                       "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["run_id"].startswith("64-mine-") and plan["training"]["network_dim"] == 2
    (isolated_project / "bespoke.toml").write_text(f'presets_dir = "{tmp_path}"\n')
    listing = CliRunner().invoke(main, ["presets", "--json"])
    rows = json.loads(listing.stdout)
    assert {"name": "mine", "source": "project"}.items() <= next(r for r in rows if r["name"] == "mine").items()
    table = CliRunner().invoke(main, ["presets"], env={"COLUMNS": "200"})
    assert "mine" in table.output and "project" in table.output and "bespoke" in table.output
