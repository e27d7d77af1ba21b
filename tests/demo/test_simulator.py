"""The sample simulator: sd-scripts naming, honest run.json, determinism, a quality curve with a peak."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from manifest_helpers import change_manifest, manifest_of
from PIL import Image
from review_fixtures import make_planned_run

from bespoke.dataset.synthetic import make_punk
from bespoke.demo.simulator import SampleSpec, quality, render_sample, simulate_run
from bespoke.errors import ConfigError, RunError
from bespoke.pixels.metrics import colors_nearest
from bespoke.run.paths import RunPaths

# FACTS.md section 3: sd-scripts sample names, parsed from the right
SD_SAMPLE = re.compile(
    r"^(?:(?P<name>.*)_)?(?:e(?P<epoch>\d{6,})|(?P<step>\d{6,}))_(?P<prompt>\d{2,})_(?P<ts>\d{14})(?:_(?P<seed>\d+))?\.png$"
)


def test_writes_sd_scripts_named_samples_and_marks_the_run_simulated(tmp_path):
    run = make_planned_run(tmp_path, "64-test-aaaa", resolution=64, prompts=3, epochs=4)
    result = simulate_run(run)
    names = sorted(p.name for p in RunPaths(run).sample_dir.glob("*.png"))
    assert len(names) == len(result.samples) == 4 * 3
    parsed = [SD_SAMPLE.match(n) for n in names]
    assert all(parsed), names
    assert {(int(m["epoch"]), int(m["prompt"])) for m in parsed} == {(e, p) for e in range(1, 5) for p in range(3)}
    assert {m["name"] for m in parsed} == {"64-test-aaaa"}
    assert {int(m["seed"]) for m in parsed} == {1, 2, 3}  # the prompts' --d seeds
    with Image.open(RunPaths(run).sample_dir / names[0]) as img:
        assert img.size == (64, 64) and img.mode == "RGB"  # the prompt's --w/--h

    manifest = manifest_of(run)
    assert manifest["status"] == "finished" and manifest["simulated"] is True
    assert manifest["epochs_done"] == 4
    assert "no model was trained" in manifest["simulator"]["note"]
    assert manifest["loss_history"] and manifest["attempt"]["argv"] == []  # no trainer was launched
    assert not list(RunPaths(run).model_dir.glob("*.safetensors"))  # no fake checkpoints


def test_sample_at_first_adds_epoch_zero(tmp_path):
    run = make_planned_run(tmp_path, "64-first", resolution=64, prompts=2, epochs=2)
    paths = RunPaths(run)
    paths.training_toml.write_text(paths.training_toml.read_text() + "sample_at_first = true\n")
    simulate_run(run)
    epochs = sorted({int(SD_SAMPLE.match(p.name)["epoch"]) for p in paths.sample_dir.glob("*.png")})
    assert epochs == [0, 1, 2]


def test_deterministic_for_a_seed(tmp_path):
    def pixels(root):
        run = make_planned_run(root, "64-det", resolution=64, prompts=2, epochs=2)
        simulate_run(run, seed=5)
        out = {}
        for path in RunPaths(run).sample_dir.glob("*.png"):
            m = SD_SAMPLE.match(path.name)
            out[(m["epoch"], m["prompt"])] = np.asarray(Image.open(path)).copy()
        return out

    a, b = pixels(tmp_path / "a"), pixels(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    other = render_sample(SampleSpec(make_punk(1).pixels, 64, 64, 1, 2, seed=999))
    assert not np.array_equal(other, a[("000001", "00")])


def test_quality_peaks_late_then_overfits():
    curve = [quality(e, 10) for e in range(0, 11)]
    assert curve[0] == 0.0
    peak = int(np.argmax(curve))
    assert 7 <= peak <= 8
    assert curve[10] < curve[peak] and curve[1] < curve[peak]


def test_samples_sharpen_then_overfit_in_the_historical_metric():
    # measured on the images themselves: mean colors_nearest over several punks at 512 px
    def mean_colors(epoch):
        return np.mean([colors_nearest(render_sample(SampleSpec(make_punk(s).pixels, 512, 512, epoch, 10,
                                                                seed=s * 31 + epoch))) for s in range(4)])

    early, best, late = mean_colors(1), mean_colors(8), mean_colors(10)
    assert early > best + 150
    assert late > best


def test_bad_samples_are_worse():
    punk = make_punk(2).pixels
    good = colors_nearest(render_sample(SampleSpec(punk, 256, 256, 8, 10, seed=3)))
    bad = colors_nearest(render_sample(SampleSpec(punk, 256, 256, 8, 10, seed=3, bad=True)))
    assert bad > good


def test_refuses_a_run_that_already_has_samples(tmp_path):
    run = make_planned_run(tmp_path, "64-twice", resolution=64, prompts=2, epochs=2)
    simulate_run(run)
    before = {p.name: p.read_bytes() for p in RunPaths(run).sample_dir.glob("*.png")}
    manifest_before = RunPaths(run).run_json.read_text()
    with pytest.raises(RunError, match="already holds 4 samples"):
        simulate_run(run)
    assert {p.name: p.read_bytes() for p in RunPaths(run).sample_dir.glob("*.png")} == before
    assert RunPaths(run).run_json.read_text() == manifest_before


def test_refuses_a_real_run(tmp_path):
    run = make_planned_run(tmp_path, "64-real", resolution=64, prompts=2, epochs=2)
    change_manifest(run, status="finished")
    with pytest.raises(RunError, match="only fills planned runs"):
        simulate_run(run)
    assert not RunPaths(run).sample_dir.exists()
    assert json.loads(RunPaths(run).run_json.read_text())["status"] == "finished"


def test_missing_prompt_file_is_a_clear_error(tmp_path):
    run = make_planned_run(tmp_path, "64-noprompts", resolution=64, prompts=2, epochs=2)
    RunPaths(run).prompts_txt.unlink()
    with pytest.raises(ConfigError, match="no prompt file"):
        simulate_run(run)
    assert manifest_of(run)["status"] == "planned"


def _with_training_set(run, resolution, punks):
    """Give a planned run a prepared dataset (R px images, prepare.json with names, layout, palette)."""
    from bespoke.dataset.layout import layout_for
    from bespoke.dataset.report import SCHEMA_VERSION

    prepared = run.parent / f"{run.name}-prepared"
    prepared.mkdir()
    layout = layout_for("stretch", resolution)
    for i, punk in enumerate(punks):
        Image.fromarray(punk).resize((resolution, resolution), Image.NEAREST).save(prepared / f"t{i}.png")
    colors = np.unique(np.concatenate([p.reshape(-1, 3) for p in punks]), axis=0)
    (prepared / "prepare.json").write_text(json.dumps({
        "schema_version": SCHEMA_VERSION, "layout": layout.to_json(), "images": [{"name": f"t{i}"} for i in range(len(punks))],
        "palette": ["#" + bytes(int(v) for v in c).hex() for c in colors]}))
    change_manifest(run, dataset={"name": "synthetic", "prepared_dir": str(prepared), "layout": layout.to_json()})


def test_over_trained_run_copies_training_images_and_the_rule_picks_a_middle_epoch(tmp_path):
    from bespoke.pixels.novelty import TrainingSet, shares
    from bespoke.review.process import process_run

    training = [make_punk(seed).pixels for seed in range(1, 9)]  # the prompts' --d seeds 1-4 among them
    run = make_planned_run(tmp_path, "256-over", resolution=256, prompts=4, epochs=10)
    _with_training_set(run, 256, training)
    result = simulate_run(run)
    assert result.simulator["copy_share_per_epoch"]["10"] == pytest.approx(0.9)
    assert result.simulator["copy_share_per_epoch"]["7"] == 0.0 and result.simulator["training_images"] == 8
    report = process_run(run).report
    rows = {r.epoch: r for r in report.epochs}
    best = report.best
    assert best is not None and best.epoch not in (9, 10) and best.epoch >= 5  # a middle epoch, not the end
    assert (rows[10].near_copy_pct or 0) >= 50 and rows[best.epoch].near_copy_pct == 0
    assert rows[10].score.terms["new"] < best.terms["new"]  # and the report says why
    # the copies name the training image the prompt describes
    copies = [s for s in report.samples if s.epoch == 10 and s.scoring.novelty and s.scoring.novelty.near_copy]
    assert copies and all(s.scoring.novelty and s.scoring.novelty.nearest == f"t{s.prompt_index}" for s in copies)
    # before the peak the simulated model draws new punks, none near a training image
    names = TrainingSet.from_arrays([str(i) for i in range(8)], training)
    assert all(s.scoring.novelty and not s.scoring.novelty.near_copy for s in report.samples if s.epoch is not None
               and s.epoch <= 7)
    assert shares(training[0], names).max() == 1.0
