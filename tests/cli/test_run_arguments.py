"""Every command names runs and datasets the same way (bespoke.run.paths): a run folder, a run id, a unique run id
prefix; a dataset folder or a dataset name. And a finished run folder moved elsewhere still works."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from locations import FAKE_DIR

from bespoke.cli import main

TINY = ("--set", "max_train_epochs=2", "--set", "mixed_precision=no")


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def trained_run(project: Path) -> Path:
    result = invoke("train", "-r", "64", "--dataset", "bespoke_punks", *TINY, "-q")
    assert result.exit_code == 0, result.output
    (run,) = [p for p in (project / "outputs").iterdir() if (p / "run.json").is_file()]
    return run


@pytest.mark.slow
def test_every_command_takes_a_run_id_a_prefix_or_a_path(fake, isolated_project, monkeypatch):
    run = trained_run(isolated_project)  # `train --dataset NAME` resolves the name like `plan` does
    prefix = run.name[:len("64-default-") + 3]
    for form in (run.name, prefix, str(run), str(run.relative_to(isolated_project))):
        assert invoke("train", "--run", form).output.count("already finished") == 1, form
        inspected = invoke("inspect", form, "--json")
        assert inspected.exit_code == 0, (form, inspected.output)
        assert json.loads(inspected.stdout)["run"] == str(run)
        processed = invoke("process", form, "--json", "--workers", "1")
        assert processed.exit_code == 0, (form, processed.output)
        assert json.loads(processed.stdout)["run_id"] == run.name
        reviewed = invoke("review", form, "--json", "-q", "--no-process")
        assert reviewed.exit_code == 0, (form, reviewed.output)
        assert json.loads(reviewed.stdout)["runs"][0]["run_dir"] == str(run)
    generated = invoke("generate", prefix, "--epoch", "1", "--seeds", "3", "--json", "-q", "--no-process")
    assert generated.exit_code == 0, generated.output
    assert json.loads(generated.stdout)["run"] == str(run)
    planned = invoke("plan", "-r", "64", "--dataset", "bespoke_punks", *TINY, "--json")
    assert json.loads(planned.stdout)["run_dir"] == str(run)  # the same request finds the same run


def test_unknown_and_ambiguous_run_arguments(isolated_project):
    outputs = isolated_project / "outputs"
    for name in ("64-default-aaaa1111", "64-default-aaaa2222"):
        (outputs / name).mkdir(parents=True)
        (outputs / name / "run.json").write_text(json.dumps({"schema_version": 2, "id": name}))
    for command in (("inspect",), ("process",), ("review",), ("generate",), ("train", "--run")):
        ambiguous = invoke(*command, "64-default-aaaa")
        assert ambiguous.exit_code == 4, (command, ambiguous.output)
        assert "2 runs start with it (64-default-aaaa1111, 64-default-aaaa2222)" in ambiguous.output
        typo = invoke(*command, "64-defualt-aaaa1111")
        assert typo.exit_code == 4 and 'did you mean "64-default-aaaa1111"' in typo.output, (command, typo.output)
    folder = isolated_project / "not-a-run"
    folder.mkdir()
    assert "not a bespoke run folder (no run.json)" in invoke("review", str(folder)).output


def test_every_command_takes_a_dataset_name_or_folder(isolated_project, synthetic_dataset):
    # synthetic_dataset lives at <project>/datasets/synthetic: "synthetic" is its name
    by_name = invoke("plan", "-r", "64", "--dataset", "synthetic", "--json")
    by_path = invoke("plan", "-r", "64", "--dataset", str(synthetic_dataset), "--json")
    assert by_name.exit_code == by_path.exit_code == 0, by_name.output + by_path.output
    assert json.loads(by_name.stdout)["run_id"] == json.loads(by_path.stdout)["run_id"]
    assert invoke("prepare", "synthetic", "-r", "64", "-q").exit_code == 0
    for command in (("plan", "-r", "64"), ("train", "-r", "64"), ("sweep", "-r", "64"), ("prepare",)):
        flag = () if command == ("prepare",) else ("--dataset",)
        result = invoke(*command, *flag, "synthtic")
        # train and sweep stop earlier without an sd-scripts checkout: the dataset is checked by plan and prepare
        if command[0] in ("plan", "prepare"):
            assert result.exit_code == 3, (command, result.output)
            assert 'did you mean "synthetic"' in result.output and "datasets there: synthetic" in result.output


@pytest.mark.slow
def test_a_finished_run_folder_moved_elsewhere_still_works(fake, isolated_project, tmp_path):
    run = trained_run(isolated_project)
    moved = tmp_path / "copied home" / run.name
    moved.parent.mkdir()
    shutil.move(str(run), str(moved))
    assert not run.exists()
    inspected = invoke("inspect", str(moved), "--json")
    assert inspected.exit_code == 0, inspected.output
    files = [c["path"] for c in json.loads(inspected.stdout)["checkpoints"]]
    assert files and all(f.startswith(str(moved / "model")) for f in files)
    assert all(not c["mismatches"] for c in json.loads(inspected.stdout)["checkpoints"])
    processed = invoke("process", str(moved), "--json", "--force", "--workers", "1")
    assert processed.exit_code == 0, processed.output
    report = json.loads(processed.stdout)
    assert report["samples"] and all((moved / s["file"]).is_file() for s in report["samples"])
    reviewed = invoke("review", str(moved), "-q")
    assert reviewed.exit_code == 0, reviewed.output
    assert (moved / "report" / "index.html").is_file()
    generated = invoke("generate", str(moved), "--epoch", "2", "--seeds", "1", "--json", "-q")
    assert generated.exit_code == 0, generated.output
    record = json.loads(generated.stdout)
    assert record["checkpoint"]["path"] == str(moved / "model" / "bespoke_64px.safetensors")
    assert record["report"]["samples"] == 7  # the 7 baseline prompts x 1 seed, processed
    # the trainer reads the moved folder's own paths: the configs name nothing outside but the prepared images
    training = (moved / "config" / "training.toml").read_text()
    assert str(isolated_project / "outputs") not in training
    assert invoke("train", "--run", str(moved)).output.count("already finished") == 1
    assert not list(FAKE_DIR.glob("*.png"))  # nothing was written beside the trainer
