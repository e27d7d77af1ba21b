"""`bespoke import kohya-gui`: the real kohya_ss GUI configs of tests/kohya/data/kohya_gui/ (SOURCES.md) become
presets that train what the GUI would have trained (its own translations: LoRA type, noise type, learning rates,
warmup, attention, additional parameters), with every setting of the file either taken or listed with a
reason; SDXL, FLUX.1, DreamBooth, fine-tuning and Textual Inversion configs are refused with theirs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import toml

from bespoke.errors import ConfigError, UsageError
from bespoke.kohya.config import RUN_LOCAL_KEYS, build_training_config
from bespoke.kohya.gui_import import MANY_SAMPLES, coerce, import_gui_config, map_config, preset_name
from bespoke.kohya.options import train_network_options
from bespoke.kohya.presets import PRESETS_DIR, resolve_preset

FIXTURES = Path(__file__).parent / "data" / "kohya_gui"
PRESETS = sorted(FIXTURES.glob("*.json"))
CURRENT = [p for p in PRESETS if p.name not in ("lion_optimizer.json", "dadaptation.json")]  # the GUI at 45088f04
REFUSED = sorted((FIXTURES / "refused").glob("*.json"))
# fields whose value the GUI passes to train_network.py unchanged (when set, not 0)
PLAIN = ("learning_rate", "network_dim", "network_alpha", "lr_scheduler", "min_snr_gamma", "mixed_precision",
         "save_precision", "clip_skip", "gradient_accumulation_steps", "max_grad_norm", "scale_weight_norms",
         "network_dropout", "sample_sampler", "ip_noise_gamma", "debiased_estimation_loss", "loss_type")


def _gui(path: Path) -> dict:
    return json.loads(path.read_text())


def _write(folder: Path, name: str, config: dict) -> Path:
    path = folder / name
    path.write_text(json.dumps(config))
    return path


def _training(preset_file: Path, resolution: int = 512) -> dict:
    """The training TOML values `plan --preset` would write for the imported preset."""
    folder = preset_file.parent
    for layer in [PRESETS_DIR / "base.toml", *PRESETS_DIR.glob("res-*.toml")]:
        shutil.copyfile(layer, folder / layer.name)
    preset = resolve_preset(resolution, preset_file.stem, presets_dir=folder)
    return {**build_training_config(preset, base_model="m", run_local={k: k for k in RUN_LOCAL_KEYS}),
            "dataset": preset.dataset}


def test_the_fixtures_are_the_guis_sd15_lora_configs_with_their_sources():
    sources = (FIXTURES / "SOURCES.md").read_text()
    assert "bmaltais/kohya_ss" in sources and "45088f04af78e11cec5407ff4652ea3ed2c14422" in sources
    assert len(CURRENT) == 21
    for path in PRESETS + REFUSED:
        assert f"`{path.relative_to(FIXTURES)}`" in sources, path


@pytest.mark.parametrize("gui_file", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_sd15_lora_config_imports_with_the_guis_values(gui_file, tmp_path):
    gui = _gui(gui_file)
    result = import_gui_config(gui_file, out_dir=tmp_path)
    assert result.resolutions == [64, 128, 256, 512]
    training = _training(result.path)
    options = train_network_options()
    for key in PLAIN:  # the GUI's value, typed, when the GUI passes one (it leaves out "" and 0)
        value = gui.get(key)
        if value not in (None, "", 0, "0", False) and not (key == "network_alpha" and float(value) == 1):
            # a value equal to sd-scripts' default may be left out of the preset: the trainer gets it either way
            assert training.get(key, options[key].default) == coerce(value, options[key].type, key, "t"), key
    if gui.get("optimizer"):
        assert training["optimizer_type"] == gui["optimizer"]
    epochs = int(float(gui.get("max_train_epochs") or 0)) or int(float(gui.get("epoch") or 1))
    assert training["max_train_epochs"] == epochs
    attention = gui.get("xformers", "xformers")
    assert training["xformers"] is (attention in (True, "xformers")) and training["sdpa"] is (attention == "sdpa")
    # the GUI leaves false flags out, so its run never gets base.toml's gradient_checkpointing / shuffle_caption
    assert training["gradient_checkpointing"] is bool(gui.get("gradient_checkpointing", False))
    assert training["dataset"]["shuffle_caption"] is bool(gui.get("shuffle_caption", False))
    header = result.path.read_text().split("[bespoke]")[0]
    for key, _, why in result.imported.skipped:  # the file itself says what was not taken, and why
        assert f"#   {key} = " in header and why in header
        assert key in gui  # only the file's own settings are listed
    assert not result.warnings or "max_train_epochs" in result.warnings[0]


def _network_of(path: Path) -> tuple[str, list[str]]:
    training = map_config(_gui(path)).training
    return training["network_module"], training.get("network_args", [])


@pytest.mark.parametrize("gui_file", CURRENT, ids=[p.stem for p in CURRENT])
def test_the_lora_type_becomes_the_guis_network(gui_file):
    kind = _gui(gui_file)["LoRA_type"]
    module, args = _network_of(gui_file)
    if kind.startswith("LyCORIS/"):
        algo = {"LyCORIS/iA3": "ia3", "LyCORIS/LoCon": "locon", "LyCORIS/LoHa": "loha", "LyCORIS/LoKr": "lokr",
                "LyCORIS/DyLoRA": "dylora", "LyCORIS/Diag-OFT": "diag-oft"}[kind]
        assert module == "lycoris.kohya" and f"algo={algo}" in args and "preset=full" in args
        assert all(re.fullmatch(r"\w+=[^\s\"]+", arg) for arg in args), args
    else:
        assert module == "networks.lora"
    if kind == "Kohya LoCon":
        gui = _gui(gui_file)
        assert args[:2] == [f"conv_dim={gui['conv_dim']}", f"conv_alpha={gui['conv_alpha']}"]


def test_multires_noise_is_passed_as_the_gui_passes_it(tmp_path):
    """The GUI passes noise_offset / adaptive_noise_scale only with noise_offset_type "Original" (issue 20: the
    GLoRA and LoKr presets were refused over an adaptive_noise_scale the GUI never passes)."""
    for name in ("sd15 - GLoRA v1.0.json", "sd15 - LoKR v1.0.json", "sd15 - LoKr v1.1.json"):
        gui = _gui(FIXTURES / name)
        assert gui["noise_offset_type"] == "Multires" and float(gui["adaptive_noise_scale"]) != 0
        result = import_gui_config(FIXTURES / name, out_dir=tmp_path)
        training = _training(result.path)
        assert "adaptive_noise_scale" not in training and "noise_offset" not in training
        assert training["multires_noise_iterations"] == gui["multires_noise_iterations"]
        assert training.get("multires_noise_discount", 0.3) == gui["multires_noise_discount"]  # 0.3: the default
        assert any("Multires" in note for note in result.imported.translated)
    original = map_config(_gui(FIXTURES / "locon-AdamW8bit.json")).training
    assert original["noise_offset"] == 0.05 and original["adaptive_noise_scale"] == 0.005
    assert "multires_noise_iterations" not in original


def test_launch_settings_are_listed_not_refused(tmp_path):
    """dynamo_backend & co. go to `accelerate launch` in the GUI; bespoke launches with --dynamo_backend no."""
    gui = _gui(FIXTURES / "locon-AdamW8bit.json")
    assert gui["dynamo_backend"] == "no"
    result = import_gui_config(FIXTURES / "locon-AdamW8bit.json", out_dir=tmp_path)
    skipped = {key: why for key, _, why in result.imported.skipped}
    assert "--dynamo_backend no" in skipped["dynamo_backend"] and "accelerate launch" in skipped["num_processes"]
    assert "dynamo_backend" not in _training(result.path)


def test_the_guis_other_translations(tmp_path):
    warmup = map_config(_gui(FIXTURES / "iA3-Prodigy.json")).training  # lr_warmup 8 (% of the steps)
    assert warmup["lr_warmup_steps"] == 0.08
    extra = map_config(_gui(FIXTURES / "sd15 - LoKr v2.0.json")).training  # additional_parameters
    assert extra["lr_scheduler_type"] == "CosineAnnealingLR"
    assert extra["lr_scheduler_args"] == ["T_max=1000", "eta_min=0e-0"]
    old = map_config(_gui(FIXTURES / "dadaptation.json"))  # an old preset: quoted optimizer_args
    assert old.training["optimizer_args"] == ["decouple=True", "weight_decay=0.01", "betas=0.9,0.99"]
    assert old.training["network_module"] == "lycoris.kohya" and "algo=loha" in old.training["network_args"]
    lion = map_config(_gui(FIXTURES / "lion_optimizer.json"))
    assert lion.dataset["batch_size"] == 8 and lion.dataset["caption_dropout_rate"] == 0.1
    unet_only = {**_gui(FIXTURES / "locon-AdamW.json"), "text_encoder_lr": 0}
    training = map_config(unet_only).training
    assert training["network_train_unet_only"] is True and "text_encoder_lr" not in training
    locon = map_config({**_gui(FIXTURES / "locon-AdamW.json"), "LoRA_type": "LoCon"})  # the GUI's old name
    assert locon.training["network_module"] == "lycoris.kohya" and "algo=locon" in locon.training["network_args"]
    steps = import_gui_config(FIXTURES / "sd15 - GLoRA v1.0.json", out_dir=tmp_path)
    assert any("max_train_steps = 113" in note for note in steps.imported.translated)


@pytest.mark.parametrize("gui_file", REFUSED, ids=[p.stem for p in REFUSED])
def test_other_kinds_of_config_are_refused_with_the_reason(gui_file, tmp_path):
    gui = _gui(gui_file)
    with pytest.raises(ConfigError) as error:
        import_gui_config(gui_file, out_dir=tmp_path / "out")
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{gui_file}: ")
    assert "a kohya_ss GUI setting" not in message  # never says that of a model choice
    if "LoRA_type" in gui and gui.get("sdxl") is True:
        assert "SDXL LoRA config: sdxl = true makes the kohya_ss GUI run sdxl_train_network.py" in message
        assert "bespoke trains SD 1.x LoRAs" in message
    elif gui.get("flux1_checkbox") is True:
        assert "FLUX.1 LoRA config" in message and "flux_train_network.py" in message
    elif "token_string" in gui:
        assert "Textual Inversion config" in message
    elif "train_dir" in gui:
        assert "fine-tuning config" in message
    elif "learning_rate" in gui:
        assert "DreamBooth config" in message and "train_db.py" in message
    else:
        assert "not a kohya_ss GUI training config" in message
    assert not (tmp_path / "out").exists()  # nothing written


def test_what_the_gui_itself_refuses_is_refused(tmp_path):
    base = _gui(FIXTURES / "locon-AdamW.json")
    cases = {
        "Kohya LoHa": ({"LoRA_type": "Kohya LoHa"}, "needs an SDXL or Anima model: the GUI refuses it for SD 1.x"),
        "unknown": ({"LoRA_type": "Magic"}, "is not a LoRA type of the kohya_ss GUI"),
        "extra": ({"additional_parameters": "--no_such_option 3"}, "--no_such_option is not a train_network.py"),
        "rates": ({"learning_rate": 0, "text_encoder_lr": 0, "unet_lr": 0}, "Please input learning rate values"),
        "preset": ({"LoRA_type": "LyCORIS/LoHa", "LyCORIS_preset": "D:/mine.toml"}, "a preset file on the machine"),
    }
    for name, (change, needle) in cases.items():
        path = _write(tmp_path, f"{name}.json", {**base, **change})
        with pytest.raises(ConfigError, match=re.escape(needle)):
            import_gui_config(path, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_suggested_fix_can_be_typed_with_set(tmp_path):
    """The validator's `--set` fix works on `import` itself (issue 20: `import` had no --set)."""
    config = {**_gui(FIXTURES / "locon-AdamW8bit.json"), "noise_offset": 0}  # adaptive_noise_scale alone
    path = _write(tmp_path, "noise.json", config)
    with pytest.raises(ConfigError, match=r"adaptive_noise_scale needs noise_offset.*--set noise_offset=0.05"):
        import_gui_config(path, out_dir=tmp_path)
    assert not (tmp_path / "noise.toml").exists()
    result = import_gui_config(path, out_dir=tmp_path, overrides=("noise_offset=0.05", "max_train_epochs=12"))
    written = toml.load(result.path)
    assert written["training"]["noise_offset"] == 0.05 and written["training"]["max_train_epochs"] == 12
    assert "#   noise_offset=0.05" in result.path.read_text() and result.imported.overrides[0] == "noise_offset=0.05"
    for bad, needle in (("output_dir=x", "set by bespoke"), ("network_dimm=8", "did you mean")):
        with pytest.raises(ConfigError, match=needle):
            import_gui_config(path, out_dir=tmp_path, force=True, overrides=(bad,))


def test_epoch_warnings(tmp_path):
    """1 epoch leaves no best epoch to choose; 300 epochs x 4 prompts draw 1,204 samples (thresholds: 1 epoch,
    more than MANY_SAMPLES samples)."""
    one = import_gui_config(FIXTURES / "sd15 - EDG_LoraOptiSettings.json", out_dir=tmp_path)
    assert len(one.warnings) == 1 and "no best epoch to choose" in one.warnings[0]
    many = import_gui_config(FIXTURES / "iA3-Prodigy-sd15.json", out_dir=tmp_path)
    assert MANY_SAMPLES < 1204 and "draws 1204 samples" in many.warnings[0]
    assert "--set sample_every_n_epochs=12" in many.warnings[0]
    fixed = import_gui_config(FIXTURES / "iA3-Prodigy-sd15.json", out_dir=tmp_path, name="fixed",
                              overrides=("sample_every_n_epochs=12",))
    assert fixed.warnings == []
    assert import_gui_config(FIXTURES / "locon-Adafactor.json", out_dir=tmp_path).warnings == []  # 8 epochs


def test_trainer_packages_are_named(tmp_path):
    lycoris = import_gui_config(FIXTURES / "iA3-Prodigy-sd15.json", out_dir=tmp_path)
    assert [p.pypi for p in lycoris.packages] == ["lycoris-lora", "prodigyopt", "xformers"]
    dadapt = import_gui_config(FIXTURES / "dadaptation.json", out_dir=tmp_path)
    assert "dadaptation" in [p.pypi for p in dadapt.packages]


def test_secrets_are_never_written(tmp_path):
    gui = _gui(FIXTURES / "lion_optimizer.json")
    gui.update(log_with="wandb", wandb_api_key="sk-very-secret")
    result = import_gui_config(_write(tmp_path, "gui.json", gui), out_dir=tmp_path / "out")
    text = result.path.read_text()
    assert "sk-very-secret" not in text and "wandb_api_key = <hidden>" in text
    assert toml.load(result.path)["training"]["log_with"] == "wandb"


def test_bad_input(tmp_path):
    bad = _write(tmp_path, "prompts.json", ["a prompt"])
    with pytest.raises(ConfigError, match="not a kohya_ss GUI config"):
        import_gui_config(bad, out_dir=tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(ConfigError, match="broken.json: not JSON"):
        import_gui_config(broken, out_dir=tmp_path)
    wrong = _write(tmp_path, "wrong.json", {"network_dim": 8, "lr_scheduler": "cosine_with_restart"})
    with pytest.raises(ConfigError, match="cosine_with_restart.*did you mean"):
        import_gui_config(wrong, out_dir=tmp_path)
    assert not (tmp_path / "wrong.toml").exists()  # nothing written for a config that does not validate
    typed = _write(tmp_path, "typed.json", {"network_dim": "eight"})
    with pytest.raises(ConfigError, match="network_dim = 'eight' is not an int"):
        import_gui_config(typed, out_dir=tmp_path)
    first = import_gui_config(PRESETS[0], out_dir=tmp_path)
    before = first.path.read_text()
    with pytest.raises(UsageError, match="exists; choose another --name or pass --force"):
        import_gui_config(PRESETS[1], out_dir=tmp_path, name=first.name)
    assert first.path.read_text() == before
    with pytest.raises(UsageError, match="reserved"):
        import_gui_config(PRESETS[0], out_dir=tmp_path, name="res-512")
    assert import_gui_config(PRESETS[0], out_dir=tmp_path, force=True).path == first.path


def test_preset_names():
    assert preset_name(Path("sd15 - EDG_LoraOptiSettings.json")) == "sd15-edg_loraoptisettings"
