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
    assert "train_data_dir" in text and "set by bespoke" in text and "no_token_padding" in text
    assert "validated at 64 px, 128 px, 256 px, 512 px" in text
    again = CliRunner().invoke(main, ["import", "kohya-gui", str(GUI), "--out", str(tmp_path), "--json"])
    assert again.exit_code == 2 and "exists" in again.output  # never overwritten without --force
    forced = CliRunner().invoke(main, ["import", "kohya-gui", str(GUI), "--out", str(tmp_path), "--json", "--force"])
    data = json.loads(forced.stdout)
    assert data["training"]["unet_lr"] == 3.333e-05 and data["dataset"]["batch_size"] == 8


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
