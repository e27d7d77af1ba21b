"""The one checkpoint discovery: which file holds which epoch (kohya/FACTS.md §4)."""

from __future__ import annotations

import json
from pathlib import Path

from lora_fixtures import write_lora

from bespoke.kohya.checkpoints import by_epoch, epochs_done, find_checkpoints, newest_state_dir
from bespoke.kohya.naming import epoch_checkpoint_name, epoch_from_filename, final_checkpoint_name


def _lora(model: Path, name: str, epoch: int, steps: int) -> Path:
    return write_lora(model / name, epoch=epoch, num_epochs=3, ss_steps=steps)


def test_epoch_files_and_the_final_file_by_their_metadata(tmp_path):
    model = tmp_path / "model"
    name = "punks [v2]*"  # glob characters in an output name: compared exactly, never globbed
    _lora(model, epoch_checkpoint_name(name, 1), 1, 10)
    _lora(model, epoch_checkpoint_name(name, 2), 2, 20)
    _lora(model, final_checkpoint_name(name), 3, 30)
    _lora(model, f"{name}-step00000005.safetensors", 1, 5)  # a step save is not an epoch
    _lora(model, "other-000001.safetensors", 1, 10)  # another output name
    (model / f"{name}-000004.safetensors").write_bytes(b"half written")  # unreadable: epoch from its name
    found = find_checkpoints(model, name)
    assert [(c.path.name, c.epoch, c.steps, c.final) for c in found] == [
        ("punks [v2]*-000001.safetensors", 1, 10, False), ("punks [v2]*-000002.safetensors", 2, 20, False),
        ("punks [v2]*.safetensors", 3, 30, True), ("punks [v2]*-000004.safetensors", 4, None, False)]
    assert epochs_done(found) == 4
    assert {e: c.path.name for e, c in by_epoch(found).items()}[3] == "punks [v2]*.safetensors"
    assert find_checkpoints(tmp_path / "missing", name) == []


def test_an_epoch_file_wins_over_the_final_file_of_the_same_epoch(tmp_path):
    model = tmp_path / "model"
    _lora(model, "n-000002.safetensors", 2, 20)
    _lora(model, "n.safetensors", 2, 20)
    assert by_epoch(find_checkpoints(model, "n"))[2].path.name == "n-000002.safetensors"


def test_final_file_still_being_written_has_no_epoch(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "n.safetensors").write_bytes(b"\x00" * 4)
    (found,) = find_checkpoints(model, "n")
    assert found.final and found.epoch is None and by_epoch([found]) == {}


def test_names():
    assert epoch_from_filename("x-000012.safetensors", "x") == 12
    assert epoch_from_filename("x-12.safetensors", "x") is None  # sd-scripts writes 6 digits or more
    assert epoch_from_filename("x-step00000012.safetensors", "x") is None
    assert epoch_from_filename("y-000012.safetensors", "x") is None
    assert epoch_from_filename("y-000012.safetensors", None) == 12


def test_newest_state_folder_by_step(tmp_path):
    model = tmp_path / "model"
    for name, step in (("n-000001-state", 2), ("n-000002-state", 4), ("n-state", 3)):
        (model / name).mkdir(parents=True)
        (model / name / "train_state.json").write_text(json.dumps({"current_epoch": 1, "current_step": step}))
        (model / name / "random_states_0.pkl").write_bytes(b"rng")
    # interrupted while saving: train_state.json is written first, accelerate's files after (real trainer)
    (model / "n-000003-state").mkdir()
    (model / "n-000003-state" / "train_state.json").write_text(json.dumps({"current_epoch": 3, "current_step": 6}))
    (model / "broken-state").mkdir()
    (model / "broken-state" / "train_state.json").write_text("{ nope")
    assert newest_state_dir(model) == model / "n-000002-state"
    assert newest_state_dir(tmp_path / "none") is None
