"""`bespoke import kohya-gui`: the preset is written, the settings not imported are listed on stdout."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bespoke.cli import main

GUI = Path(__file__).parent.parent / "kohya" / "data" / "kohya_gui" / "lion_optimizer.json"


def test_import_kohya_gui_lists_what_it_did_not_take(tmp_path):
    result = CliRunner().invoke(main, ["import", "kohya-gui", str(GUI), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lion_optimizer.toml").is_file()
    text = " ".join(result.stdout.split())
    assert "not imported from lion_optimizer.json" in text and "train_data_dir" in text and "set by bespoke" in text
    assert "fields the GUI itself does not pass for an SD 1.x LoRA were ignored" in text  # no_token_padding & co.
    assert "validated at 64 px, 128 px, 256 px, 512 px" in text
    assert "warning: max_train_epochs = 1: one trained epoch" in " ".join(result.stderr.split())  # "epoch": "1"
    again = CliRunner().invoke(main, ["import", "kohya-gui", str(GUI), "--out", str(tmp_path), "--json"])
    assert again.exit_code == 2 and "exists" in again.output  # never overwritten without --force
    forced = CliRunner().invoke(main, ["import", "kohya-gui", str(GUI), "--out", str(tmp_path), "--json", "--force",
                                       "--set", "max_train_epochs=10"])
    data = json.loads(forced.stdout)
    assert data["training"]["unet_lr"] == 3.333e-05 and data["dataset"]["batch_size"] == 8
    assert data["overrides"] == ["max_train_epochs=10"] and data["warnings"] == []


def test_with_nothing_left_out_there_is_no_table(tmp_path):
    """A config whose every setting is taken prints no empty "not imported" table (issue 20)."""
    config = tmp_path / "small.json"
    config.write_text(json.dumps({"LoRA_type": "LyCORIS/LoHa", "network_dim": 8, "network_alpha": 4,
                                  "learning_rate": 0.0002, "optimizer": "AdamW", "epoch": 10, "xformers": "sdpa"}))
    result = CliRunner().invoke(main, ["import", "kohya-gui", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "not imported" not in result.stdout and "┏" not in result.stdout
    assert "translated as the kohya_ss GUI does" in result.stdout and "algo=loha" in result.stdout
    assert "needs `lycoris-lora` in the trainer's venv" in " ".join(result.stdout.split())
    assert result.stderr == ""  # 10 epochs: no warning


def test_import_refuses_an_sdxl_preset_in_one_line(tmp_path):
    sdxl = GUI.parent / "refused" / "SDXL - LoKR v1.0.json"
    result = CliRunner().invoke(main, ["import", "kohya-gui", str(sdxl), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    assert len(result.stderr.strip().splitlines()) == 1 and "sdxl_train_network.py" in result.stderr


def test_import_of_a_prompt_list_is_a_config_error(tmp_path):
    bad = tmp_path / "prompts.json"
    bad.write_text('["a prompt"]')
    result = CliRunner().invoke(main, ["import", "kohya-gui", str(bad), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not a kohya_ss GUI config" in result.output


def test_check_of_a_gui_config_points_at_import(tmp_path):
    """`bespoke check` on a kohya_ss GUI config says what it is and which command brings it in."""
    result = CliRunner().invoke(main, ["check", str(GUI)])
    assert result.exit_code == 2, result.output
    assert "kohya_ss GUI config" in result.output and f"bespoke import kohya-gui {GUI}" in result.output
    prompts = tmp_path / "prompts.json"
    prompts.write_text('{"prompt": "a punk"}')  # a dict, but no GUI key: still the prompt-file message
    other = CliRunner().invoke(main, ["check", str(prompts)])
    assert other.exit_code == 2 and "must be a JSON list of prompts" in other.output
