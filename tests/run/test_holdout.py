"""Designs held out for validation: twins stay together (by name and by figure), seeded, a stated share; the two
folders sd-scripts reads; what plan writes (dataset.toml's second [[datasets]], run.json's held-out designs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bespoke.dataset.synthetic import make_punk
from bespoke.kohya.config import load_toml
from bespoke.pixels.figure import figure_mask
from bespoke.pixels.novelty import read_folder
from bespoke.run.holdout import choose, group_designs
from bespoke.run.manifest import load_manifest
from bespoke.run.plan import PlanRequest, plan_run
from bespoke.settings import load_settings


def twin(pixels: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """The same figure on another flat background."""
    out = pixels.copy()
    out[~figure_mask(pixels)] = colour
    return out


def test_background_twins_are_one_design_whatever_their_names():
    punks = [make_punk(seed) for seed in range(6)]
    pictures = [p.pixels for p in punks]
    names = [f"lad_{i:03d}_p{i}" for i in range(6)]
    # lad_006 is lad_001 on a new background under a new number; lad_002_p2b shares lad_002's number only
    pictures.append(twin(punks[1].pixels, (20, 200, 90)))
    names.append("lad_006_p1green")
    pictures.append(make_punk(99).pixels)
    names.append("lad_002_p2b")
    designs = group_designs(names, pictures)
    assert ["lad_001_p1", "lad_006_p1green"] in designs and ["lad_002_p2", "lad_002_p2b"] in designs
    assert sorted(n for d in designs for n in d) == sorted(names) and len(designs) == 6


def test_the_choice_is_seeded_whole_designs_at_the_share_never_everything():
    designs = [[f"d{i}a", f"d{i}b"] if i % 3 == 0 else [f"d{i}"] for i in range(20)]  # 27 pictures
    held = choose(designs, 0.1, seed=7)
    assert held == choose(designs, 0.1, seed=7) and held != choose(designs, 0.1, seed=8)
    assert all(d in designs for d in held)  # whole designs
    count = sum(len(d) for d in held)
    assert 2 <= count <= 3  # floor(2.7) = 2 pictures at least, one design more at most
    assert choose(designs, 0.99, seed=1) != designs and len(choose(designs, 0.99, seed=1)) == 19
    assert choose([["a"], ["b"], ["c"], ["d"]], 0.1, seed=1) == []  # 4 x 0.1 < one picture: none held out
    assert choose([["a", "b", "c"]], 0.5, seed=1) == []  # one design: nothing to validate against


def test_the_users_twins_are_held_out_together(shared_dir):
    training = read_folder(shared_dir / "bespoke_punks")
    names = [n.removesuffix(".png") for n in training.names]
    designs = group_designs(names, [training.rgb(i) for i in range(len(training))])
    assert len(names) == 203 and len(designs) == 163
    for together in (["lad_102_bunya", "lad_102_bunya2", "lad_102_bunya3"],
                     ["lad_012_chromium", "lad_026_chromiumabstractsalmon", "lad_027_chromiumabstractyellow",
                      "lad_028_chromiumabstractgreen"],
                     ["lady_001_hazelnut", "lady_022_gold", "lady_023_silver", "lady_054_hazelnutabstract-3"],
                     ["lady_000_lemon", "lady_051_rosieabstract"],  # twins on checkered/striped backgrounds
                     ["lady_006_pepper", "lady_053_pepperabstract"]):
        assert together in designs
    assert not any({"lad_015_jackson", "lad_017_ink"} <= set(d) for d in designs)  # 0.75 alike, two designs


def _dataset(folder, count: int, twins: int = 0):
    folder.mkdir(parents=True)
    for i in range(count):
        punk = make_punk(500 + i)
        Image.fromarray(punk.pixels).save(folder / f"lad_{i:03d}_x.png")
        (folder / f"lad_{i:03d}_x.txt").write_text(punk.caption)
        if i < twins:
            Image.fromarray(twin(punk.pixels, (250, 40, 200))).save(folder / f"lad_{100 + i:03d}_xpink.png")
            (folder / f"lad_{100 + i:03d}_xpink.txt").write_text(punk.caption)


def test_plan_holds_out_whole_designs_as_a_second_dataset_and_names_them(isolated_project):
    source = isolated_project / "datasets" / "mine"
    _dataset(source, 16, twins=4)  # 20 pictures, 16 designs: 10% = 2 pictures
    settings = load_settings()
    plan = plan_run(settings, PlanRequest(resolution=64, dataset=source))
    held = load_manifest(plan.paths.root).dataset["validation"]
    assert held["share"] == 0.1 and held["seed"] == 42 and held["images"] >= 2 and "figures match" in held["rule"]
    assert held["images"] + held["train_images"] == 20
    names = {n for d in held["designs"] for n in d}
    for i in range(4):  # a held-out twin takes its twin along
        assert ({f"lad_{i:03d}_x", f"lad_{100 + i:03d}_xpink"} & names) in (set(), {f"lad_{i:03d}_x",
                                                                                  f"lad_{100 + i:03d}_xpink"})
    config = load_toml(plan.paths.dataset_toml)
    train_block, validation = config["datasets"]
    assert validation["validation_split"] == 1.0 and validation["validation_seed"] == 42
    train_dir, held_dir = train_block["subsets"][0]["image_dir"], validation["subsets"][0]["image_dir"]
    assert sorted(p.stem for p in Path(held_dir).glob("*.png")) == sorted(names)
    assert len(list(Path(train_dir).glob("*.png"))) == held["train_images"]
    assert not names & {p.stem for p in Path(train_dir).glob("*.png")}
    assert all((Path(held_dir) / f"{n}.txt").is_file() for n in names)  # captions go along
    # the same request finds the same run (and the same folders, made once)
    again = plan_run(settings, PlanRequest(resolution=64, dataset=source))
    assert again.run_id == plan.run_id and not again.created
    # another share is another run
    other = plan_run(settings, PlanRequest(resolution=64, dataset=source,
                                           overrides=("bespoke.validation_share=0.25",)))
    assert other.run_id != plan.run_id
    off = plan_run(settings, PlanRequest(resolution=64, dataset=source, overrides=("bespoke.validation_share=0",)))
    assert len(load_toml(off.paths.dataset_toml)["datasets"]) == 1
    assert load_manifest(off.paths.root).dataset["validation"] is None


@pytest.mark.parametrize("value, words", [("1.5", "below 1"), ('"x"', "must be float")])
def test_a_bad_share_is_a_one_line_error(isolated_project, synthetic_dataset, value, words):
    from bespoke.errors import ConfigError

    with pytest.raises(ConfigError, match=words):
        plan_run(load_settings(), PlanRequest(resolution=64, dataset=synthetic_dataset,
                                              overrides=(f"bespoke.validation_share={value}",)))
