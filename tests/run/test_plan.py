"""`plan`: run folders, run ids, nothing rewritten, nothing half-written, and the CLI for every resolution."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from manifest_helpers import manifest_of

from bespoke.cli import main
from bespoke.errors import ConfigError, RunError
from bespoke.kohya.prompts import parse_prompt_file
from bespoke.kohya.validate import validate_dataset_toml, validate_training_toml
from bespoke.run.facts import sd_scripts_commit
from bespoke.run.paths import RunPaths
from bespoke.run.plan import PlanRequest, RunPlan, launch_spec_for, plan_run
from bespoke.settings import load_settings

RESOLUTIONS = (512, 256, 128, 64)


@pytest.fixture
def settings(isolated_project):
    return load_settings(isolated_project)


def _snapshot(root: Path) -> dict:
    """Every file below root with its bytes and mtime: proves nothing was rewritten."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


def _plan(settings, dataset, resolution=64, **kwargs) -> RunPlan:
    return plan_run(settings, PlanRequest(resolution=resolution, dataset=dataset, **kwargs))


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_plan_writes_a_valid_run_folder(settings, synthetic_dataset, resolution):
    plan = _plan(settings, synthetic_dataset, resolution)
    assert plan.created
    assert plan.run_id.startswith(f"{resolution}-default-") and len(plan.run_id.rsplit("-", 1)[1]) == 8
    assert plan.paths.root == settings.outputs_dir / plan.run_id
    paths = plan.paths
    for path in (paths.training_toml, paths.dataset_toml, paths.prompts_txt, paths.run_json):
        assert path.is_file()
    assert paths.logs_dir.is_dir()
    training = validate_training_toml(paths.training_toml)
    dataset = validate_dataset_toml(paths.dataset_toml)
    assert training == plan.training
    assert training["resolution"] == f"{resolution},{resolution}"
    # run-local paths are relative to the run folder, where the trainer runs: the folder can move
    assert training["output_dir"] == "model" and (paths.root / training["output_dir"]) == paths.model_dir
    assert training["logging_dir"] == "logs/tensorboard"
    assert training["sample_prompts"] == "config/prompts.txt"
    assert training["pretrained_model_name_or_path"] == settings.base_model
    image_dir = Path(dataset["datasets"][0]["subsets"][0]["image_dir"])
    assert sorted(p.stem for p in image_dir.glob("*.png")) == sorted(p.stem for p in synthetic_dataset.glob("*.png"))
    prompts = parse_prompt_file(paths.prompts_txt)
    assert {(p.width, p.height) for p in prompts} == {(resolution, resolution)}
    manifest = manifest_of(paths.root)
    assert manifest["status"] == "planned" and manifest["id"] == plan.run_id
    assert manifest["resolution"] == resolution and manifest["preset"] is None
    assert manifest["simulated"] is False and manifest["layout"] == "stretch"
    assert manifest["dataset"]["images"] == 8
    assert manifest["dataset"]["layout"]["resolution"] == resolution
    assert manifest["dataset"]["palette_size"] > 0
    assert manifest["num_epochs"] == 10 and manifest["output_name"] == f"bespoke_{resolution}px"
    assert manifest["argv"] == plan.argv and manifest["env_overrides"] == plan.env_overrides
    import hashlib

    for name, path in (("training.toml", paths.training_toml), ("dataset.toml", paths.dataset_toml),
                       ("prompts.txt", paths.prompts_txt)):
        assert manifest["config_sha256"][name] == hashlib.sha256(path.read_bytes()).hexdigest()
    argv = plan.argv
    script_at = next(
        i for i, arg in enumerate(argv) if arg.endswith("train_network.py"))
    assert argv[argv.index("--config_file") + 1] == "config/accelerate.yaml"
    assert (paths.config_dir / "accelerate.yaml").is_file()
    assert argv[script_at + 1:script_at + 3] == ["--config_file", "config/training.toml"]
    assert argv[argv.index("--dataset_config") + 1] == "config/dataset.toml"
    assert argv[argv.index("--mixed_precision") + 1] == training["mixed_precision"]
    assert argv[argv.index("--dataset_config") - 3].endswith("train_network.py")
    assert not list(settings.outputs_dir.glob(".*"))  # no temp folder left


def test_baseline_plan(settings, synthetic_dataset):
    plan = _plan(settings, synthetic_dataset, 512, preset="baseline-512")
    assert plan.run_id.startswith("512-baseline-512-")
    assert plan.training["optimizer_type"] == "AdamW8bit" and plan.training["mixed_precision"] == "bf16"
    assert len(plan.prompts) == 7 and {p.width for p in plan.prompts} == {512}
    assert plan.manifest.preset == "baseline-512"
    assert plan.argv[plan.argv.index("--mixed_precision") + 1] == "bf16"


def test_same_config_same_folder_nothing_rewritten(settings, synthetic_dataset):
    first = _plan(settings, synthetic_dataset, 128, overrides=("network_dim=8",))
    before = _snapshot(settings.outputs_dir)
    again = _plan(settings, synthetic_dataset, 128, overrides=("network_dim=8",))
    assert again.run_id == first.run_id and again.created is False
    assert again.argv == first.argv and again.manifest.created_at == first.manifest.created_at
    assert _snapshot(settings.outputs_dir) == before
    # a user file dropped into the run folder survives re-planning untouched
    (first.paths.root / "notes.txt").write_text("mine")
    _plan(settings, synthetic_dataset, 128, overrides=("network_dim=8",))
    assert (first.paths.root / "notes.txt").read_text() == "mine"


def test_changed_config_gets_a_new_folder(settings, synthetic_dataset, tmp_path):
    base = _plan(settings, synthetic_dataset, 64).run_id
    ids = {
        "override": _plan(settings, synthetic_dataset, 64, overrides=("network_dim=8",)).run_id,
        "layout": _plan(settings, synthetic_dataset, 64, layout="pad").run_id,
        "trigger": _plan(settings, synthetic_dataset, 64, trigger="bspk").run_id,
    }
    prompts = tmp_path / "mine.txt"
    prompts.write_text("a punk --d 5\n")
    ids["prompts"] = _plan(settings, synthetic_dataset, 64, prompts=prompts).run_id
    other_model = settings.with_overrides(base_model="/models/other.safetensors")
    ids["base_model"] = plan_run(other_model, PlanRequest(resolution=64, dataset=synthetic_dataset)).run_id
    assert len(set(ids.values()) | {base}) == len(ids) + 1, ids
    # the run folder's location does not enter the id
    moved = settings.with_overrides(outputs_dir=tmp_path / "elsewhere")
    assert plan_run(moved, PlanRequest(resolution=64, dataset=synthetic_dataset)).run_id == base


def test_changed_dataset_gets_a_new_folder(settings, synthetic_dataset):
    first = _plan(settings, synthetic_dataset, 64).run_id
    caption = sorted(synthetic_dataset.glob("*.txt"))[0]
    caption.write_text(caption.read_text() + ", extra tag")
    assert _plan(settings, synthetic_dataset, 64).run_id != first


def test_user_prompt_file_keeps_its_sizes_and_fills_missing(settings, synthetic_dataset, tmp_path):
    prompts = tmp_path / "mine.txt"
    prompts.write_text("# mine\na punk --w 256 --h 128 --d 1\nanother punk\n")
    plan = _plan(settings, synthetic_dataset, 64, prompts=prompts)
    assert [(p.width, p.height) for p in plan.prompts] == [(256, 128), (64, 64)]
    assert parse_prompt_file(plan.paths.prompts_txt)[0].name == "mine"


def _assert_nothing_written(settings):
    assert not settings.outputs_dir.exists() or not any(settings.outputs_dir.iterdir())


@pytest.mark.parametrize("kwargs, fragment", [
    ({"overrides": ("network_dimm=8",)}, 'did you mean "network_dim"'),
    ({"overrides": ("min_bucket_reso=128",)}, "min_bucket_reso 128 > resolution 64"),
    ({"overrides": ("mixed_precision=fp32",)}, "'fp32' is not one of no, fp16, bf16"),
    ({"overrides": ("color_aug=true",)}, "cannot be used with cache_latents"),
    ({"preset": "baselin-512"}, 'did you mean "baseline-512"'),
    ({"layout": "tile"}, "layout 'tile' is not one of stretch, pad"),
    ({"overrides": ("train_batch_size=8",)}, "batch_size = 32 overrides the training value train_batch_size = 8"),
    ({"overrides": ("training.keep_tokens=1",)}, "keep_tokens = 3 overrides the training value keep_tokens = 1"),
])
def test_bad_requests_leave_nothing(settings, synthetic_dataset, kwargs, fragment):
    with pytest.raises(ConfigError) as err:
        _plan(settings, synthetic_dataset, 64, **kwargs)
    assert fragment in str(err.value)
    _assert_nothing_written(settings)


def test_bad_prompt_file_leaves_nothing(settings, synthetic_dataset, tmp_path):
    prompts = tmp_path / "bad.txt"
    prompts.write_text("ok --w 64\nbad --w 65\n")
    with pytest.raises(ConfigError, match=rf"{prompts}:2: --w 65"):
        _plan(settings, synthetic_dataset, 64, prompts=prompts)
    _assert_nothing_written(settings)


def test_failure_while_writing_leaves_no_half_folder(settings, synthetic_dataset, monkeypatch):
    import bespoke.run.plan as planning

    def boom(run_dir, manifest):
        raise OSError("disk full")

    monkeypatch.setattr(planning, "save_manifest", boom)
    with pytest.raises(OSError, match="disk full"):
        _plan(settings, synthetic_dataset, 64)
    assert list(settings.outputs_dir.iterdir()) == []


def test_existing_folder_without_run_json_is_not_touched(settings, synthetic_dataset):
    plan = _plan(settings, synthetic_dataset, 64)
    plan.paths.run_json.unlink()
    before = _snapshot(plan.paths.root)
    with pytest.raises(RunError, match="exists but has no run.json"):
        _plan(settings, synthetic_dataset, 64)
    assert _snapshot(plan.paths.root) == before


def test_demo_mark_and_launch_spec(settings, synthetic_dataset, tmp_path):
    plan = plan_run(settings, PlanRequest(resolution=64, dataset=synthetic_dataset), demo=True)
    assert manifest_of(plan.paths.root)["demo"] is True
    spec = launch_spec_for(settings, plan.paths, plan.training, gpu_ids=("0", "1"))
    assert spec.gpu_ids == ("0", "1") and spec.mixed_precision == "fp16"
    assert spec.cwd == plan.paths.root  # the trainer starts in the run folder; config paths are relative to it
    assert spec.script_args == ("--config_file", "config/training.toml", "--dataset_config", "config/dataset.toml")
    assert launch_spec_for(settings, plan.paths, {}).mixed_precision == "no"
    checkout = tmp_path / "sd-scripts"
    (checkout / ".git" / "refs" / "heads").mkdir(parents=True)
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (checkout / ".git" / "refs" / "heads" / "main").write_text("48d368fa557731ad0488c07304dfeba8c07910eb\n")
    configured = settings.with_overrides(sd_scripts=checkout)
    assert launch_spec_for(configured, RunPaths(tmp_path), {}).script == checkout / "train_network.py"
    assert sd_scripts_commit(checkout) == "48d368fa557731ad0488c07304dfeba8c07910eb"
    assert sd_scripts_commit(tmp_path / "nothing") is None


# ------------------------------------------------------------------ CLI


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_cli_plan_each_resolution(synthetic_dataset, isolated_project, resolution):
    runner = CliRunner()
    result = runner.invoke(main, ["plan", "-r", str(resolution), "--dataset", str(synthetic_dataset)])
    assert result.exit_code == 0, result.output
    assert "new run folder" in result.output
    assert "launch command:" in result.output and "--config_file" in result.output
    result = runner.invoke(main, ["plan", "-r", str(resolution), "--dataset", str(synthetic_dataset), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["created"] is False and data["run_id"].startswith(f"{resolution}-default-")
    assert shlex.split(data["command"]) == data["argv"]
    assert Path(data["run_dir"]).parent == isolated_project / "outputs"


def test_cli_plan_baseline_and_default_dataset(synthetic_dataset, isolated_project):
    runner = CliRunner()
    result = runner.invoke(main, ["plan", "-r", "512", "--preset", "baseline-512"])
    assert result.exit_code == 3
    assert "bespoke_punks does not exist" in result.output
    synthetic_dataset.rename(isolated_project / "datasets" / "bespoke_punks")
    result = runner.invoke(main, ["plan", "-r", "512", "--preset", "baseline-512", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run_id"].startswith("512-baseline-512-") and len(data["prompts"]) == 7


def test_cli_plan_errors_are_one_line(synthetic_dataset):
    runner = CliRunner()
    result = runner.invoke(main, ["plan", "-r", "64", "--dataset", str(synthetic_dataset), "--set", "network_dimm=4"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: --set 'network_dimm=4': 'network_dimm' is not a train_network.py option, dataset key or bespoke key "
        '(did you mean "network_dim"?)']


def test_cli_presets_lists_them():
    result = CliRunner().invoke(main, ["presets", "--json"])
    assert result.exit_code == 0
    names = [row["name"] for row in json.loads(result.stdout)]
    assert {"base", "res-512", "res-64", "baseline-512"} <= set(names)
    result = CliRunner().invoke(main, ["presets"])
    assert result.exit_code == 0 and "baseline-512" in result.output


def test_cli_check_hand_edited_files(synthetic_dataset, settings, tmp_path):
    plan = _plan(settings, synthetic_dataset, 128)
    files = [str(plan.paths.training_toml), str(plan.paths.dataset_toml), str(plan.paths.prompts_txt)]
    result = CliRunner().invoke(main, ["check", *files])
    assert result.exit_code == 0, result.output
    assert "training config" in result.output and "dataset config" in result.output and "4 prompts" in result.output
    edited = tmp_path / "training.toml"
    edited.write_text(plan.paths.training_toml.read_text().replace("network_dim =", "network_dimm ="))
    result = CliRunner().invoke(main, ["check", str(plan.paths.dataset_toml), str(edited)])
    assert result.exit_code == 2
    assert f"{edited}: key 'network_dimm' is not a train_network.py option" in result.output.replace("\n", "")
    assert "1 of 2 file(s) failed the check" in result.output


def test_replan_reports_hand_edited_configs_without_touching_them(synthetic_dataset, settings):
    from bespoke.run.plan import modified_configs

    plan = _plan(settings, synthetic_dataset, 64)
    assert modified_configs(plan.paths, plan.manifest) == []
    edited = plan.paths.dataset_toml.read_text().replace("num_repeats = 10", "num_repeats = 2")
    plan.paths.dataset_toml.write_text(edited)
    result = CliRunner().invoke(main, ["plan", "-r", "64", "--dataset", str(synthetic_dataset)])
    assert result.exit_code == 0, result.output
    assert "dataset.toml changed since planning" in result.output.replace("\n", " ")
    assert plan.paths.dataset_toml.read_text() == edited
    result = CliRunner().invoke(main, ["plan", "-r", "64", "--dataset", str(synthetic_dataset), "--json"])
    assert json.loads(result.stdout)["modified_configs"] == ["dataset.toml"]


def test_plan_with_a_new_name_on_an_existing_run_says_it_renamed_it(synthetic_dataset):
    def plan_cli(*extra):
        result = CliRunner().invoke(main, ["plan", "-r", "64", "--dataset", str(synthetic_dataset), *extra])
        assert result.exit_code == 0, result.output
        return result

    first = plan_cli("--name", "first try")
    assert "new run folder" in first.stdout
    run_dir = next((synthetic_dataset.parent.parent / "outputs").iterdir())
    configs = _snapshot(run_dir / "config")
    same = plan_cli("--name", "first try")
    assert "existing run folder (unchanged)" in same.stdout and "renamed" not in same.output
    renamed = plan_cli("--name", "second")
    assert "(unchanged)" not in renamed.output
    assert "existing run folder (configs unchanged; renamed 'first try' -> 'second')" in renamed.stdout
    assert manifest_of(run_dir)["name"] == "second"
    assert _snapshot(run_dir / "config") == configs  # what trains is untouched: only the label changed
    unnamed = plan_cli()  # no --name: the name stays
    assert "existing run folder (unchanged)" in unnamed.stdout and manifest_of(run_dir)["name"] == "second"
