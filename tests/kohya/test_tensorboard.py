"""TensorBoard event files as sd-scripts writes them (the fixture was written by torch.utils.tensorboard's
SummaryWriter 2.21, as accelerate's tracker does): read without the tensorboard package."""

from __future__ import annotations

import shutil
import struct
import time
from pathlib import Path

import pytest
from locations import FAKE_DIR

from bespoke.kohya.tensorboard import (
    EPOCH_TAG,
    VALIDATION_TAG,
    epoch_losses,
    epoch_scalars,
    event_files,
    read_scalars,
)

DATA = Path(__file__).parents[1] / "review" / "data" / "tensorboard"


def test_reads_every_scalar_of_a_real_event_file():
    [path] = event_files(DATA)
    scalars = read_scalars(path)
    tags = {tag for tag, _, _ in scalars}
    assert tags == {"loss/current", "loss/average", "lr/unet", "loss/epoch_average", "new_style"}
    assert [(s, round(v, 4)) for t, s, v in scalars if t == "loss/epoch_average"] == [(1, 0.13), (2, 0.11), (3, 0.09)]
    assert [round(v, 4) for t, s, v in scalars if t == "loss/current"][:3] == [0.19, 0.18, 0.17]
    assert ("new_style", 1, 1.5) in scalars  # a tensor-valued scalar (SummaryWriter new_style=True)


def test_epoch_losses_of_a_run_folder_and_a_resumed_run(tmp_path):
    logs = tmp_path / "logs" / "tensorboard"
    shutil.copytree(DATA, logs)
    assert {e: round(v, 4) for e, v in epoch_losses(logs).items()} == {1: 0.13, 2: 0.11, 3: 0.09}
    assert epoch_losses(tmp_path / "nowhere") == {}


def test_a_file_cut_short_keeps_what_was_complete(tmp_path):
    [path] = event_files(DATA)
    data = path.read_bytes()
    cut = tmp_path / "events.out.tfevents.1.host"
    cut.write_bytes(data[: len(data) - 7])  # the trainer was killed while writing its last record
    whole, short = read_scalars(path), read_scalars(cut)
    assert short == whole[:-1]


def test_not_an_event_file(tmp_path):
    junk = tmp_path / "events.out.tfevents.junk"
    junk.write_bytes(struct.pack("<Q", 3) + b"\0" * 4 + b"\xff\xff\xff" + b"\0" * 4)
    with pytest.raises(ValueError):
        read_scalars(junk)
    assert epoch_losses(tmp_path) == {}  # skipped, never fatal for a review


def test_the_validation_loss_beside_the_training_loss_of_a_resumed_run(tmp_path, monkeypatch):
    """Two launches' event files (as the fake trainer writes them, in the real format): epoch_scalars reads both
    tags at once; the later launch wins for an epoch it logged again."""
    monkeypatch.syspath_prepend(str(FAKE_DIR))
    from fake_tensorboard import EventWriter

    first = EventWriter(str(tmp_path), None)
    for epoch in (1, 2):
        first.scalars(epoch, {"loss/epoch_average": 0.2 / epoch, "loss/validation/epoch_average": 0.3 / epoch})
    time.sleep(1.1)  # the next launch's folder is named by the second it started
    second = EventWriter(str(tmp_path), None)
    second.scalars(2, {"loss/epoch_average": 0.09, "loss/validation/epoch_average": 0.14})
    second.scalars(3, {"loss/epoch_average": 0.08})
    found = epoch_scalars(tmp_path, (EPOCH_TAG, VALIDATION_TAG))
    assert {e: round(v, 4) for e, v in found[EPOCH_TAG].items()} == {1: 0.2, 2: 0.09, 3: 0.08}
    assert {e: round(v, 4) for e, v in found[VALIDATION_TAG].items()} == {1: 0.3, 2: 0.14}
