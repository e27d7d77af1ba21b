"""The recorded baseline as data, the evaluation protocol's statistics, evaluate/compare on runs whose
samples are written here, and the whole chain with the fake trainer and the fake gen_img.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from locations import FAKE_DIR
from manifest_helpers import write_run_json
from PIL import Image

from bespoke.cli import main
from bespoke.errors import RunError, UsageError
from bespoke.pixels.metrics import is_clean
from bespoke.review.baseline import (
    FOOTNOTE,
    compare,
    compare_rows,
    evaluate_run,
    load_evaluation,
    recorded_baseline,
    recorded_epochs,
    summarize_epoch,
)
from bespoke.run.paths import RunPaths

FAKES = FAKE_DIR
NAMES = ["green_bg_lad", "brown_eyes_lady", "golden_earrings", "sunglasses_lad", "melon_lady", "cash_lad",
         "carbon_lad"]


@pytest.fixture
def wide_console(monkeypatch):
    from bespoke.console import console

    # the private field, so that undoing restores "not set" (the public setter would pin the old width)
    monkeypatch.setattr(console, "_width", 240)
    return console


# ---------------------------------------------------------------- the data file


def test_recorded_epoch_means_recompute_from_per_prompt_values():
    data = recorded_baseline()
    assert [p["name"] for p in data["prompts"]] == NAMES
    assert [e["epoch"] for e in data["epochs"]] == list(range(1, 11)) and data["epochs"][-1]["label"] == "final"
    for epoch in data["epochs"]:
        values = [epoch["colors_nearest"][n] for n in NAMES]
        assert round(sum(values) / 7, 1) == epoch["mean"], epoch["epoch"]
        flags = [is_clean(epoch["colors_nearest"][n], epoch["top10_coverage"][n]) for n in NAMES]
        assert sum(flags) == epoch["clean"] == 0 and epoch["n"] == 7
    epoch8 = recorded_epochs()[8]
    assert [epoch8["colors_nearest"][n] for n in NAMES] == [222, 261, 146, 202, 301, 167, 217]
    assert epoch8["mean"] == 216.6 == data["headline"]["mean_colors_nearest"]
    assert [epoch8["top10_coverage"][n] for n in NAMES] == [0.453, 0.370, 0.517, 0.443, 0.233, 0.530, 0.398]
    proto = data["protocol"]
    assert (proto["steps"], proto["guidance_scale"], proto["width"], proto["height"]) == (30, 7.5, 512, 512)
    assert proto["seed"] is None and "NEAREST" in proto["downscale"]
    assert "estimate, never measured" in data["clean_definition"]["forty_percent"]
    assert data["provenance"]["repo"] == "bespokepunk/bespokebaby2"


def test_recorded_data_matches_shared_baseline(shared_dir):
    source = json.loads((shared_dir / "baseline" / "baseline.json").read_text())
    ev = source["eval"]
    data = recorded_baseline()
    assert data["prompts"] == [{"name": p["name"], "prompt": p["prompt"]} for p in ev["prompts"]]
    assert data["negative_prompt"] == ev["negative_prompt"]
    for epoch in data["epochs"]:
        key = "final_10" if epoch["epoch"] == 10 else str(epoch["epoch"])
        assert epoch["colors_nearest"] == ev["per_prompt_all_epochs"][key]
        assert epoch["mean"] == ev["averages_all_epochs"][key]
    import re

    coverage8 = re.search(r"top-10 coverage ([\d.,]+)\)", source["clean_definition"]["epoch8_under_code_definition"])[1]
    assert [recorded_epochs()[8]["top10_coverage"][n] for n in NAMES] == [float(v) for v in coverage8.split(",")]


def test_recorded_coverage_recomputes_from_the_recovered_images(shared_dir):
    from bespoke.pixels.metrics import colors_nearest, top10_coverage

    folder = shared_dir / "baseline" / "caption_fix_eval_24px"
    if not folder.is_dir():
        pytest.skip("recovered 24 px images not present")
    recorded = recorded_epochs()
    for epoch, entry in recorded.items():
        for name in NAMES:
            file = folder / (f"final_e10_{name}.png" if epoch == 10 else f"e{epoch:02d}_{name}.png")
            with Image.open(file) as img:
                arr = np.asarray(img.convert("RGB"))
                assert colors_nearest(img) == entry["colors_nearest"][name]
            assert round(top10_coverage(arr), 3) == entry["top10_coverage"][name], (epoch, name)


def test_baseline_preset_prompts_are_the_recorded_protocol():
    from bespoke.kohya.gen_img import prompts_from_file
    from bespoke.kohya.presets import presets_folder

    prompts = prompts_from_file(presets_folder() / "prompts-baseline.txt")
    data = recorded_baseline()
    assert [(p.name, p.prompt) for p in prompts] == [(p["name"], p["prompt"]) for p in data["prompts"]]
    for p in prompts:
        assert (p.negative, p.width, p.height, p.steps, p.scale) == (data["negative_prompt"], 512, 512, 30, 7.5)


# ---------------------------------------------------------------- statistics


def _images(values_by_seed: dict[int, list[int]], clean_at=None) -> list[dict]:
    return [{"file": f"{n}_s{seed}.png", "prompt": n, "seed": seed, "colors_nearest": v,
             "top10_coverage": 0.9 if clean_at and v <= clean_at else 0.3, "clean": bool(clean_at and v <= clean_at)}
            for seed, values in values_by_seed.items() for n, v in zip(NAMES, values, strict=True)]


def test_summarize_epoch_spread_and_inside_rule():
    rec = recorded_epochs()[8]  # 216.6
    # four seeds whose 7-prompt means are 200, 210, 220, 230 -> mean 215, sd 12.9: 216.6 is inside
    images = _images({s: [m] * 7 for s, m in zip((1, 2, 3, 4), (200, 210, 220, 230), strict=True)})
    e = summarize_epoch(images, NAMES, rec)
    assert (e["n"], e["seeds_per_prompt"], e["mean"], e["sd"], e["min"], e["max"]) == (28, 4, 215.0, 12.9, 200.0, 230.0)
    assert e["inside"] is True and e["difference"] == -1.6 and e["recorded_clean_pct"] == 0.0
    assert e["per_prompt"]["cash_lad"] == {"n": 4, "mean": 215.0, "values": [200, 210, 220, 230],
                                           "seeds": [1, 2, 3, 4], "top10_coverage_mean": 0.3, "recorded": 167}
    # a tight cluster far away: outside
    far = summarize_epoch(_images({1: [40] * 7, 2: [42] * 7}, clean_at=50), NAMES, rec)
    assert far["inside"] is False and far["clean_pct"] == 100.0 and far["mean"] == 41.0
    # one seed: no spread, undecided
    one = summarize_epoch(_images({1: [216] * 7}), NAMES, rec)
    assert one["sd"] is None and one["inside"] is None and one["mean"] == 216.0
    # per-seed means, not pooled: seeds differ per prompt order but sets are by seed rank
    mixed = _images({1: [100, 200, 300, 400, 500, 100, 200], 2: [110, 210, 310, 410, 510, 110, 210]})
    m = summarize_epoch(mixed, NAMES, rec)
    assert m["seed_means"] == [257.1, 267.1]
    # a missing prompt: no complete seed set, the mean is over what is there
    partial = summarize_epoch([i for i in _images({1: [216] * 7}) if i["prompt"] != "cash_lad"], NAMES, rec)
    assert partial["complete"] is False and partial["seeds_per_prompt"] == 0 and partial["inside"] is None


# ---------------------------------------------------------------- evaluate/compare on a run written here


def _punk_sample(colours: int, seed: int) -> Image.Image:
    """A 512 px sample whose 24 px NEAREST reduction has exactly `colours` colours (blocky 24-cell image)."""
    rng = np.random.default_rng(seed)
    palette = rng.choice(256 ** 3, size=colours, replace=False)
    cells = np.concatenate([palette, rng.choice(palette, 576 - colours)])
    rng.shuffle(cells)
    grid = np.stack([(cells >> 16) & 255, (cells >> 8) & 255, cells & 255], axis=-1).reshape(24, 24, 3)
    return Image.fromarray(grid.astype(np.uint8), "RGB").resize((512, 512), Image.NEAREST)


def make_sampled_run(root: Path, colours_by_epoch: dict[int, list[int]], prompts_text: str | None = None,
                     sampler: str = "pndm") -> Path:
    """A run folder whose model/sample/ holds sd-scripts-named samples of the baseline prompts."""
    import toml

    from bespoke.kohya.presets import presets_folder

    run = root / "outputs" / "512-baseline-512-test"
    paths = RunPaths(run)
    paths.config_dir.mkdir(parents=True)
    paths.training_toml.write_text(toml.dumps({"training": {"output_name": "bb", "max_train_epochs": 10,
                                                            "sample_sampler": sampler}}))
    paths.prompts_txt.write_text(prompts_text or (presets_folder() / "prompts-baseline.txt").read_text())
    write_run_json(run, **{"id": run.name, "status": "finished", "resolution": 512, "preset": "baseline-512"})
    paths.sample_dir.mkdir(parents=True)
    for epoch, colours in colours_by_epoch.items():
        for index, count in enumerate(colours):
            _punk_sample(count, epoch * 10 + index).save(
                paths.sample_dir / f"bb_e{epoch:06d}_{index:02d}_20261122031500_{1000 + index}.png")
    (paths.sample_dir / "bb_000004_00_20261122031500_1000.png").write_bytes(b"")  # a step sample: ignored
    return run


def test_evaluate_samples_and_compare(isolated_project, wide_console):
    run = make_sampled_run(isolated_project, {1: [300] * 7, 8: [222, 261, 146, 202, 301, 167, 217], 9: [40] * 7})
    result = evaluate_run(None, run)
    assert result["via"] == "samples" and result["seeds_per_prompt"] == 1 and result["deviations"] == []
    assert result["skipped"]["step_samples"] == 1
    by_epoch = {e["epoch"]: e for e in result["epochs"]}
    assert by_epoch[8]["mean"] == 216.6 and by_epoch[8]["difference"] == 0.0 and by_epoch[8]["inside"] is None
    assert by_epoch[1]["mean"] == 300.0 and by_epoch[1]["n"] == 7
    assert by_epoch[8]["per_prompt"]["golden_earrings"]["values"] == [146]
    assert any("1 seed per prompt" in n for n in result["notes"])
    saved = load_evaluation(run)
    assert saved["schema_version"] == 1 and saved["epochs"] == json.loads(json.dumps(result["epochs"]))

    rows = compare_rows(saved)
    assert [r["epoch"] for r in rows] == list(range(1, 11))
    row8 = rows[7]
    assert (row8["recorded_mean"], row8["mean"], row8["difference"], row8["recorded_clean_pct"]) == (216.6, 216.6,
                                                                                                      0.0, 0.0)
    assert rows[9]["mean"] is None and rows[9]["label"] == "final"

    out = CliRunner().invoke(main, ["baseline", "compare", str(run)])
    assert out.exit_code == 0, out.output
    assert "216.6" in out.output and "8 *" in out.output and "10 (final)" in out.output
    assert "estimate, never measured" in out.output and "0/7 clean at epoch 8" in out.output
    data = json.loads(CliRunner().invoke(main, ["baseline", "compare", str(run), "--json"]).stdout)
    assert data["rows"][7]["mean"] == 216.6 and data["footnote"] == FOOTNOTE


def test_compare_evaluates_first_when_needed(isolated_project):
    run = make_sampled_run(isolated_project, {2: [100] * 7})
    assert load_evaluation(run) is None
    result = compare(run)
    assert result["evaluated_now"] is True and load_evaluation(run) is not None
    assert next(r for r in result["rows"] if r["epoch"] == 2)["difference"] == round(100 - 335.7, 1)
    assert compare(run)["evaluated_now"] is False


def test_evaluate_flags_protocol_deviations_and_bad_runs(isolated_project):
    from bespoke.kohya.presets import presets_folder

    text = (presets_folder() / "prompts-baseline.txt").read_text().replace("--w 512 --h 512", "--w 64 --h 64")
    run = make_sampled_run(isolated_project, {1: [50] * 7}, prompts_text=text, sampler="euler_a")
    result = evaluate_run(None, run)
    assert "green_bg_lad: width 64 (protocol: 512)" in result["deviations"]
    assert "samples drawn with sampler euler_a (protocol: pndm)" in result["deviations"]

    other = isolated_project / "other"
    other_run = make_sampled_run(other, {1: [50] * 7}, prompts_text="a red punk --d 1\n")
    before = sorted(p.name for p in (other_run / "model" / "sample").iterdir())
    with pytest.raises(RunError, match="none of its prompts is one of the 7 baseline prompts"):
        evaluate_run(None, other_run)
    assert not (other_run / "report").exists()
    assert sorted(p.name for p in (other_run / "model" / "sample").iterdir()) == before

    empty = make_sampled_run(isolated_project / "empty", {})
    with pytest.raises(RunError, match="no epoch samples of the baseline prompts yet"):
        evaluate_run(None, empty)
    with pytest.raises(UsageError, match="choose samples or generate"):
        evaluate_run(None, empty, via="magic")
    result = CliRunner().invoke(main, ["baseline", "evaluate", str(isolated_project / "nope")])
    assert result.exit_code == 4 and "no such run folder" in result.output


def test_corrupt_evaluation_file_is_a_clear_error(isolated_project):
    run = make_sampled_run(isolated_project, {1: [50] * 7})
    (run / "report").mkdir()
    (run / "report" / "baseline_eval.json").write_text("{not json")
    with pytest.raises(RunError, match="unreadable"):
        load_evaluation(run)


# ---------------------------------------------------------------- the whole chain with the fakes


@pytest.mark.slow
def test_baseline_plan_train_evaluate_compare_end_to_end(synthetic_dataset, monkeypatch, wide_console):
    from bespoke.run.train import train_run
    from bespoke.settings import load_settings

    monkeypatch.setenv("BESPOKE_SD_SCRIPTS", str(FAKES))
    cli = CliRunner()
    planned = cli.invoke(main, ["baseline", "plan", "--dataset", str(synthetic_dataset), "--set", "max_train_epochs=2",
                                "--json"])
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.stdout)
    assert "baseline-512" in plan["run_id"] and plan["training"]["network_dim"] == 32
    run = Path(plan["run_dir"])
    settings = load_settings()
    trained = train_run(settings, run)
    assert trained.status == "finished", trained.reason

    # via the samples sd-scripts (the fake) wrote during training: 7 baseline prompts, 1 seed each
    samples = evaluate_run(settings, run, via="samples")
    assert [e["epoch"] for e in samples["epochs"]] == [0, 1, 2]
    assert all(e["n"] == 7 and e["complete"] for e in samples["epochs"])

    # via gen_img.py: 2 seeds per prompt and epoch, through accelerate
    result = cli.invoke(main, ["baseline", "evaluate", str(run), "--via", "generate", "--seeds-per-prompt", "2"])
    assert result.exit_code == 0, result.output
    evaluation = load_evaluation(run)
    assert evaluation["via"] == "generate" and [e["epoch"] for e in evaluation["epochs"]] == [1, 2]
    for e in evaluation["epochs"]:
        assert e["n"] == 14 and e["seeds_per_prompt"] == 2 and e["sd"] is not None and e["inside"] in (True, False)
        assert sorted(e["per_prompt"]["melon_lady"]["seeds"]) == [1, 2]
    # the fake LoRA draws cleaner punks at epoch 2 than at epoch 1
    assert evaluation["epochs"][1]["mean"] < evaluation["epochs"][0]["mean"]
    assert (run / "generated" / "e000002" / "carbon_lad_s2.png").is_file()

    out = cli.invoke(main, ["baseline", "compare", str(run)])
    assert out.exit_code == 0, out.output
    assert "via generate, 2 seed(s) per prompt, sampler pndm" in out.output
    assert "323.9" in out.output and "|recorded - mean| <= 2 x sd" in out.output
