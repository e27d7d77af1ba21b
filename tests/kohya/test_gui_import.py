"""`bespoke import kohya-gui`: real kohya_ss GUI presets (tests/kohya/data/kohya_gui/, see SOURCES.md) become
presets that validate at every resolution, with every GUI setting either carried over or listed with a reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import toml

from bespoke.errors import ConfigError, UsageError
from bespoke.kohya.config import RUN_LOCAL_KEYS, build_training_config
from bespoke.kohya.gui_import import coerce, import_gui_config, map_config, preset_name
from bespoke.kohya.options import train_network_options
from bespoke.kohya.presets import PRESETS_DIR, resolve_preset

FIXTURES = Path(__file__).parent / "data" / "kohya_gui"
PRESETS = sorted(FIXTURES.glob("*.json"))
TRANSLATED = {"LoRA_type", "optimizer", "optimizer_args", "epoch", "use_8bit_adam", "use_wandb", "noise_offset_type",
              "conv_dim", "conv_alpha", "use_cp", "factor", "decompose_both", "train_on_input", "rank_dropout",
              "module_dropout", "lr_warmup", "max_token_length", "train_batch_size"}


def _resolved(preset_file: Path, resolution: int = 512):
    folder = preset_file.parent
    for layer in [PRESETS_DIR / "base.toml", *PRESETS_DIR.glob("res-*.toml")]:
        shutil.copyfile(layer, folder / layer.name)
    return resolve_preset(resolution, preset_file.stem, presets_dir=folder)


def test_there_are_at_least_three_real_gui_presets():
    assert len(PRESETS) >= 3
    assert "bmaltais/kohya_ss" in (FIXTURES / "SOURCES.md").read_text()


@pytest.mark.parametrize("gui_file", PRESETS, ids=[p.stem for p in PRESETS])
def test_round_trip(gui_file, tmp_path):
    gui = json.loads(gui_file.read_text())
    result = import_gui_config(gui_file, out_dir=tmp_path)
    assert result.resolutions == [64, 128, 256, 512]
    written = toml.load(result.path)
    preset = _resolved(result.path)
    training = build_training_config(preset, base_model="m", run_local={k: k for k in RUN_LOCAL_KEYS})
    skipped = {k for k, _, _ in result.imported.skipped}
    options = train_network_options()
    for key, value in gui.items():
        if key in TRANSLATED or value in ("", None):
            continue
        if key in written["training"]:  # carried over: the trainer gets the GUI's value, typed
            assert training[key] == written["training"][key] == coerce(value, options[key].type, key, "t"), key
        elif key in written["dataset"]:
            assert preset.dataset[key] == written["dataset"][key], key
        else:  # nothing dropped silently: translated, listed, empty, or a GUI zero that means "off"
            assert key in skipped or float(value) == 0, key
    header = result.path.read_text().split("[bespoke]")[0]
    for key in skipped:
        assert f"#   {key} = " in header  # the file itself says what was not imported


def test_gui_translations():
    gui = json.loads((FIXTURES / "dadaptation.json").read_text())
    imported = map_config(gui)
    assert imported.training["optimizer_type"] == "DAdaptation"
    assert imported.training["optimizer_args"] == ["decouple=True", "weight_decay=0.01", "betas=0.9,0.99"]
    assert imported.training["network_module"] == "lycoris.kohya"
    assert imported.training["network_args"] == ["algo=loha", "conv_dim=8", "conv_alpha=8"]
    assert imported.training["learning_rate"] == 1.0 and imported.training["seed"] == 31337
    assert imported.dataset["shuffle_caption"] is True
    lion = map_config(json.loads((FIXTURES / "lion_optimizer.json").read_text()))
    assert lion.training["max_train_epochs"] == 1  # "epoch": "1"
    assert lion.dataset["batch_size"] == 8 and lion.dataset["caption_dropout_rate"] == 0.1
    assert "multires_noise_iterations" in map_config(json.loads((FIXTURES / "loha-sd15.json").read_text())).training


def test_secrets_are_never_written(tmp_path):
    gui = json.loads((FIXTURES / "lion_optimizer.json").read_text())
    gui.update(use_wandb=True, wandb_api_key="sk-very-secret")
    path = tmp_path / "gui.json"
    path.write_text(json.dumps(gui))
    result = import_gui_config(path, out_dir=tmp_path / "out")
    text = result.path.read_text()
    assert "sk-very-secret" not in text and "wandb_api_key = <hidden>" in text
    assert toml.load(result.path)["training"]["log_with"] == "wandb"


def test_bad_input(tmp_path):
    bad = tmp_path / "prompts.json"
    bad.write_text('["a prompt"]')
    with pytest.raises(ConfigError, match="not a kohya_ss GUI config"):
        import_gui_config(bad, out_dir=tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(ConfigError, match="broken.json: not JSON"):
        import_gui_config(broken, out_dir=tmp_path)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"network_dim": 8, "lr_scheduler": "cosine_with_restart"}))
    with pytest.raises(ConfigError, match="cosine_with_restart.*did you mean"):
        import_gui_config(wrong, out_dir=tmp_path)
    assert not (tmp_path / "wrong.toml").exists()  # nothing written for a config that does not validate
    typed = tmp_path / "typed.json"
    typed.write_text(json.dumps({"network_dim": "eight"}))
    with pytest.raises(ConfigError, match="network_dim = 'eight' is not an int"):
        import_gui_config(typed, out_dir=tmp_path)
    first = import_gui_config(PRESETS[0], out_dir=tmp_path)
    with pytest.raises(UsageError, match="exists; choose another --name or pass --force"):
        import_gui_config(PRESETS[0], out_dir=tmp_path)
    with pytest.raises(UsageError, match="reserved"):
        import_gui_config(PRESETS[0], out_dir=tmp_path, name="res-512")
    assert import_gui_config(PRESETS[0], out_dir=tmp_path, force=True).path == first.path


def test_preset_names():
    assert preset_name(Path("sd15 - EDG_LoraOptiSettings.json")) == "sd15-edg_loraoptisettings"
