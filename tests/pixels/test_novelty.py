"""Novelty: the nearest training image, near copies, distinct designs; on generated punks and the user's data."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bespoke.dataset.layout import layout_for
from bespoke.dataset.synthetic import make_punk
from bespoke.pixels.novelty import (
    NEAR_COPY,
    TrainingSet,
    distinct_designs,
    novelty,
    read_folder,
    read_prepared,
    shares,
)

TRAIN = [make_punk(i).pixels for i in range(20)]
NAMES = [f"punk_{i:02d}.png" for i in range(20)]
TRAINING = TrainingSet.from_arrays(NAMES, TRAIN)


def test_a_copy_is_named_and_flagged():
    copy = np.clip(TRAIN[7].astype(int) + 4, 0, 255).astype(np.uint8)  # drawn back with a tint
    result = novelty(copy, TRAINING)
    assert result == {"nearest": "punk_07.png", "share": 1.0, "near_copy": True}
    changed = copy.copy()
    changed[:6] = (255, 0, 255)  # a new hat over a quarter of the picture: a variant, no longer a copy
    assert novelty(changed, TRAINING)["share"] == pytest.approx(1 - 6 / 24)
    assert not novelty(changed, TRAINING)["near_copy"]


def test_a_new_design_is_not_a_copy():
    for seed in range(100, 110):
        result = novelty(make_punk(seed).pixels, TRAINING)
        assert result["share"] < NEAR_COPY and not result["near_copy"]


def test_no_training_images_no_novelty():
    assert novelty(TRAIN[0], TrainingSet.from_arrays([], [])) is None


def test_distinct_designs():
    assert distinct_designs([]) == 0
    assert distinct_designs([TRAIN[0], TRAIN[0].copy(), TRAIN[1], TRAIN[0]]) == 2
    assert distinct_designs(TRAIN[:5]) == 5


def test_read_folder_and_prepared(tmp_path):
    for name, punk in zip(NAMES[:3], TRAIN[:3], strict=True):
        Image.fromarray(punk).save(tmp_path / name)
    Image.new("RGB", (48, 48)).save(tmp_path / "big.png")  # not 24 px: not a training punk
    (tmp_path / "broken.png").write_bytes(b"nope")
    folder = read_folder(tmp_path)
    assert folder.names == tuple(NAMES[:3])
    layout = layout_for("stretch", 512)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for i, punk in enumerate(TRAIN[:2]):
        Image.fromarray(punk).resize((512, 512), Image.NEAREST).save(prepared / f"p{i}.png")
    back = read_prepared(prepared, ["p0", "p1", "missing"], layout.edges)
    assert back.names == ("p0", "p1")
    assert shares(TRAIN[1], back).tolist() == pytest.approx([shares(TRAIN[1], TrainingSet.from_arrays(["a"], [TRAIN[0]]))[0], 1.0])


def test_threshold_separates_the_users_designs(shared_dir):
    """Why NEAR_COPY: different training punks never reach it; real samples are far below it."""
    punks = shared_dir / "bespoke_punks"
    if not punks.is_dir():
        pytest.skip("shared dataset absent")
    training = read_folder(punks)
    assert len(training) >= 200
    def same_design(a: str, b: str) -> bool:  # lad_054_sterling / lad_054_sterlingglasses, lad_026/027_chromium...
        (na, _, ta), (nb, _, tb) = (x.split(".")[0].partition("_")[2].partition("_") for x in (a, b))
        return na == nb or ta[:6].lower() == tb[:6].lower()

    for i, name in enumerate(training.names):
        with Image.open(punks / name) as img:
            s = shares(np.asarray(img.convert("RGB")), training)
        s[i] = -1
        j = int(np.argmax(s))
        if not same_design(name, training.names[j]):  # a different design, not a variant of the same one
            assert s[j] < NEAR_COPY, (name, training.names[j], s[j])
