"""The Slurm parts that need no cluster: the job-array script (run by bash), resource requests, [slurm] in
bespoke.toml, the refusals of `sweep --slurm`; and run names (plan, train, sweeps, runs). The sweep through a
real Slurm is tests/run/test_slurm_cluster.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from manifest_helpers import manifest_of, write_run_json

from bespoke.cli import main
from bespoke.errors import ConfigError, UsageError
from bespoke.run.manifest import load_manifest
from bespoke.run.names import name_labels, shared_name_notes
from bespoke.run.slurm import SlurmRequest, require_slurm, script_text, slurm_request
from bespoke.run.slurm_sweep import short_elapsed
from bespoke.settings import SlurmSettings, load_settings


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_array_script_runs_task_i_on_run_i_with_its_log_in_the_run_folder(tmp_path):
    runs = [tmp_path / "outputs" / "64-default-aaaa", tmp_path / "outputs" / "a run with 'quotes' $x"]
    request = SlurmRequest(partition="gpu", account="lab", time="04:00:00", gres="gpu:1", max_concurrent=2,
                           extra=("--qos=low",))
    text = script_text("sweep-1234", tmp_path / "sweep", runs, request, ["/bin/echo", "bespoke", "--outputs", "o"],
                       tmp_path)
    for line in ("#SBATCH --array=0-1%2", "#SBATCH --requeue", "#SBATCH --partition=gpu", "#SBATCH --account=lab",
                 "#SBATCH --time=04:00:00", "#SBATCH --gres=gpu:1", "#SBATCH --qos=low",
                 f"#SBATCH --output={tmp_path / 'sweep'}/slurm-%A_%a.out", "#SBATCH --job-name=bespoke-sweep-1234"):
        assert line in text.splitlines()
    script = tmp_path / "slurm-array.sh"
    script.write_text(text)
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_JOB_ID": "77"}
    subprocess.run(["bash", str(script)], env=env, check=True, timeout=30)  # as Slurm would start task 1
    log = (runs[1] / "logs" / "slurm.log").read_text()
    assert "slurm task 77_1" in log
    assert f"bespoke --outputs o train --run {runs[1]} --quiet" in log  # the path arrives intact
    assert not (runs[0] / "logs").exists()


def test_requests_take_flags_over_bespoke_toml():
    settings = SlurmSettings(partition="cpu", time="01:00:00", max_concurrent=4, extra=("--qos=low",))
    request = slurm_request(settings, partition="gpu", gres="gpu:2")
    assert (request.partition, request.time, request.gres, request.max_concurrent) == ("gpu", "01:00:00", "gpu:2", 4)
    assert request.sbatch_lines() == ["--partition=gpu", "--time=01:00:00", "--gres=gpu:2", "--qos=low"]
    with pytest.raises(UsageError, match="--time 4h: write a Slurm time limit"):
        slurm_request(settings, time="4h")
    with pytest.raises(UsageError, match="--max-concurrent 0"):
        slurm_request(settings, max_concurrent=0)
    assert short_elapsed("00:01:05") == "1:05" and short_elapsed("00:00:07") == "0:07"
    assert short_elapsed("1-02:00:00") == "1-02:00:00"


@pytest.mark.parametrize("text, fragment", [
    ('[slurm]\npartiton = "gpu"\n', 'unknown key slurm.partiton (did you mean "partition"?)'),
    ('[slurm]\nmax-concurrent = 0\n', "slurm.max-concurrent must be at least 1"),
    ('[slurm]\nmax-concurrent = "2"\n', "slurm.max-concurrent must be int"),
    ('[slurm]\nextra = "--qos=low"\n', "slurm.extra must be a list of strings"),
    ('[slurms]\npartition = "gpu"\n', 'unknown key \'slurms\' (did you mean "slurm"?)'),
    ('presets_dir = "nowhere"\n', "presets_dir"),
    ('[slurm]\npartition = "gpu\n', "bespoke.toml, line 2"),
])
def test_bad_slurm_settings_are_one_line_errors(isolated_project, text, fragment):
    (isolated_project / "bespoke.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(isolated_project)
    assert fragment in str(err.value) and "bespoke.toml" in str(err.value)


def test_slurm_settings_from_bespoke_toml(isolated_project):
    (isolated_project / "bespoke.toml").write_text(
        '[slurm]\npartition = "gpu"\naccount = "lab"\ntime = "2:00:00"\ngres = "gpu:1"\nmax-concurrent = 3\n'
        'cpus-per-task = 8\nmem = "32G"\nextra = ["--qos=low", "constraint=a100"]\n')
    slurm = load_settings(isolated_project).slurm
    assert slurm == SlurmSettings("gpu", "lab", "2:00:00", "gpu:1", 3, 8, "32G", ("--qos=low", "--constraint=a100"))
    assert slurm_request(slurm).sbatch_lines() == [
        "--partition=gpu", "--account=lab", "--time=2:00:00", "--gres=gpu:1", "--cpus-per-task=8", "--mem=32G",
        "--qos=low", "--constraint=a100"]


def test_sweep_slurm_refuses_what_slurm_decides_and_needs_slurm(fake, monkeypatch, isolated_project):
    result = CliRunner().invoke(main, ["sweep", "-r", "64", "--slurm", "--gpus", "0,1"])
    assert result.exit_code == 2 and "drop --gpus/--shard" in result.output
    result = CliRunner().invoke(main, ["sweep", "-r", "64", "--partition", "gpu"])
    assert result.exit_code == 2 and "are for --slurm" in result.output
    monkeypatch.setenv("PATH", str(isolated_project))  # no sbatch anywhere
    with pytest.raises(UsageError, match="--slurm needs Slurm's commands"):
        require_slurm()
    result = CliRunner().invoke(main, ["sweep", "-r", "64", "--slurm"])
    assert result.exit_code == 2 and "sbatch" in result.output and "Traceback" not in result.output
    assert not (isolated_project / "outputs").exists()  # nothing planned


def test_cancel_names_what_it_cannot_find(isolated_project, monkeypatch):
    if subprocess.run(["which", "sbatch"], capture_output=True).returncode != 0:
        pytest.skip("Slurm's commands are not installed")
    write_run_json(isolated_project / "outputs" / "64-default-abcd1234", id="64-default-abcd1234")
    result = CliRunner().invoke(main, ["cancel", "64-default-abcd1235"])
    assert result.exit_code == 4
    assert 'no such sweep or run (did you mean "64-default-abcd1234"?)' in result.output


def test_names_tell_runs_sharing_one_apart(isolated_project):
    outputs = isolated_project / "outputs"
    made = [write_run_json(outputs / run_id, id=run_id, name=name, resolution=64, preset=None, overrides=overrides)
            for run_id, name, overrides in (("a", "dim", ["network_dim=4", "max_train_epochs=2"]),
                                            ("b", "dim", ["network_dim=8", "max_train_epochs=2"]),
                                            ("c", "solo", []), ("d", None, []))]
    manifests = [load_manifest(outputs / m.id) for m in made]
    assert name_labels(manifests) == {"a": "dim · network_dim 4", "b": "dim · network_dim 8", "c": "solo"}
    assert shared_name_notes(manifests) == ["name 'dim' is shared by 2 runs: network_dim 4 vs 8"]


@pytest.mark.slow
def test_plan_and_train_take_a_name_and_the_id_stays_the_hash(fake, isolated_project):
    first = invoke("plan", "-r", "64", "--name", "first try", "--set", "max_train_epochs=1", "--json")
    plan = json.loads(first.stdout)
    assert plan["name"] == "first try" and plan["run_id"].startswith("64-default-")
    again = json.loads(invoke("plan", "-r", "64", "--name", "renamed", "--set", "max_train_epochs=1", "--json").stdout)
    assert again["run_id"] == plan["run_id"] and again["name"] == "renamed"  # a label, not part of the id
    assert manifest_of(Path(plan["run_dir"]))["name"] == "renamed"
    trained = invoke("train", "-r", "64", "--name", "trained", "--set", "max_train_epochs=1", "--no-process")
    assert trained.exit_code == 0, trained.output
    assert manifest_of(Path(plan["run_dir"]))["name"] == "trained"
    bad = CliRunner().invoke(main, ["plan", "-r", "64", "--name", "two\nlines"])
    assert bad.exit_code == 2 and "one printable line" in bad.output
    bad = CliRunner().invoke(main, ["train", "--run", plan["run_id"], "--name", "x"])
    assert bad.exit_code == 2 and "--name" in bad.output


@pytest.mark.slow
def test_a_sweep_carries_entry_names_into_run_json_and_its_table(fake, isolated_project, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    path = isolated_project / "sweep-dim.toml"
    path.write_text('overrides = { max_train_epochs = 1 }\n'
                    '[[run]]\nresolution = 64\nname = "dim"\noverrides = { network_dim = 4 }\n'
                    '[[run]]\nresolution = 64\nname = "dim"\noverrides = { network_dim = 8 }\n')
    result = invoke("sweep", "--sweep", str(path), "--no-process", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("["):result.stdout.rindex("]") + 1])
    assert [row["name"] for row in rows] == ["dim", "dim"]
    assert {manifest_of(Path(row["path"]))["name"] for row in rows} == {"dim"}
    assert "dim · network_dim 4" in result.output and "dim · network_dim 8" in result.output
    assert "name 'dim' is shared by 2 runs: network_dim 4 vs 8" in result.output
    listed = json.loads(invoke("runs", "--json").stdout)
    assert sorted(r["label"] for r in listed) == ["dim · network_dim 4", "dim · network_dim 8"]
    review = invoke("review", *(row["run"] for row in rows), "--json", "-q")  # the legends name the runs
    assert review.exit_code == 0, review.output
    html = Path(json.loads(review.stdout)["html"]).read_text()
    assert "dim · network_dim 4" in html and "dim · network_dim 8" in html
