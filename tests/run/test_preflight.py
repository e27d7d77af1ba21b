"""`bespoke preflight` against the fake sd-scripts (tests/fakes/sd_scripts with its library/ stand-ins), and
`train` / `sweep` refusing to launch what preflight rejects. The same stages against the real trainer:
tests/real_trainer/test_real_trainer.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import toml
from click.testing import CliRunner

from bespoke.cli import main
from bespoke.errors import PreflightError
from bespoke.kohya.preflight import STAGE_NAMES

CPU_SAFE = ("--set", "mixed_precision=no")
REFUSED = 7  # "the trainer would stop": its own exit code, apart from a crash (1) and a trainer failure (5)


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def plan(*args) -> Path:
    result = invoke("plan", "--json", *args)
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


def preflight_json(*runs) -> tuple[int, dict]:
    result = invoke("preflight", "--json", *[str(r) for r in runs])
    return result.exit_code, json.loads(result.stdout)


def stages(report: dict, index: int = 0) -> dict[str, dict]:
    return {s["name"]: s for s in report["runs"][index]["stages"]}


def test_every_stage_passes_for_a_clean_plan_and_the_table_names_them(fake):
    run = plan("-r", "64")
    code, report = preflight_json(run)
    assert code == 0 and report["ok"], report
    assert list(stages(report)) == list(STAGE_NAMES)
    assert {s["status"] for s in stages(report).values()} == {"PASS"}
    table = invoke("preflight", str(run))
    assert table.exit_code == 0 and "every stage passed" in table.output
    assert "arguments" in table.stdout and "network" in table.stdout  # the table is on stdout


def edit_configs(run: Path, training: dict | None = None, dataset: dict | None = None) -> None:
    """Edit a planned run's TOMLs by hand (bespoke's validator would refuse these values at plan time)."""
    path = run / "config" / "training.toml"
    data = toml.loads(path.read_text())
    for key, value in (training or {}).items():
        section = next((s for s in data.values() if isinstance(s, dict) and key in s), None)
        (section if section is not None else data)[key] = value
    path.write_text(toml.dumps(data))
    path = run / "config" / "dataset.toml"
    data = toml.loads(path.read_text())
    data["datasets"][0].update(dataset or {})
    path.write_text(toml.dumps(data))


def test_bucket_steps_and_persistent_workers_fail_with_the_trainers_message_and_a_fix(fake):
    run = plan("-r", "64")
    edit_configs(run, {"max_data_loader_n_workers": 0, "persistent_data_loader_workers": True},
                 {"bucket_reso_steps": 16, "min_bucket_reso": 16})
    code, report = preflight_json(run)
    assert code == REFUSED and not report["ok"]
    found = stages(report)
    assert found["buckets"]["status"] == "FAIL"
    assert "bucket_reso_steps is 16. it must be divisible by 64" in found["buckets"]["message"]
    assert "--set bucket_reso_steps=64" in found["buckets"]["fix"]
    assert found["data loader"]["status"] == "FAIL"
    assert "persistent_workers option needs num_workers > 0" in found["data loader"]["message"]
    assert "--set persistent_data_loader_workers=false" in found["data loader"]["fix"]
    assert found["dataset"]["status"] == "PASS" and found["optimizer"]["status"] == "PASS"


def test_an_empty_image_dir_is_no_data_found_and_later_dataset_stages_are_skipped(fake, isolated_project):
    run = plan("-r", "64")
    dataset_toml = run / "config" / "dataset.toml"
    data = toml.loads(dataset_toml.read_text())
    empty = isolated_project / "empty"
    empty.mkdir()
    data["datasets"][0]["subsets"][0]["image_dir"] = str(empty)
    dataset_toml.write_text(toml.dumps(data))
    code, report = preflight_json(run)
    found = stages(report)
    assert code == REFUSED and found["dataset"]["status"] == "FAIL" and "No data found" in found["dataset"]["message"]
    assert found["buckets"]["status"] == "SKIPPED" and found["data loader"]["status"] == "SKIPPED"


def test_hardware_this_box_lacks_is_never_a_pass(fake, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_GPU", "none")
    monkeypatch.setenv("FAKE_TRAINER_MISSING", "xformers,bitsandbytes")
    base = plan("-r", "64")  # base preset: fp16
    baseline = plan("-r", "512", "--preset", "baseline-512")  # bf16, xformers, AdamW8bit
    cpu = plan("-r", "64", *CPU_SAFE)
    code, report = preflight_json(base, baseline, cpu)
    assert code == REFUSED
    assert stages(report, 0)["mixed precision"]["status"] == "NEEDS-HARDWARE"
    assert "requires a GPU" in stages(report, 0)["mixed precision"]["message"]
    low = stages(report, 1)
    assert [low[n]["status"] for n in ("optimizer", "attention", "mixed precision")] == ["NEEDS-HARDWARE"] * 3
    assert "No xformers" in low["attention"]["message"] and "--set xformers=false" in low["attention"]["fix"]
    assert "No bitsandbytes" in low["optimizer"]["message"]
    assert report["runs"][2]["ok"], report["runs"][2]


def test_on_a_gpu_box_missing_packages_fail_and_bf16_needs_a_gpu_that_has_it(fake, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_GPU", "fp16")  # a T4: CUDA, no bf16
    monkeypatch.setenv("FAKE_TRAINER_MISSING", "xformers,bitsandbytes")
    code, report = preflight_json(plan("-r", "512", "--preset", "baseline-512"))
    found = stages(report)
    assert code == REFUSED
    assert found["attention"]["status"] == "FAIL" and found["optimizer"]["status"] == "FAIL"
    assert found["mixed precision"]["status"] == "NEEDS-HARDWARE" and "bfloat16" in found["mixed precision"]["message"]
    monkeypatch.setenv("FAKE_TRAINER_GPU", "bf16")
    monkeypatch.delenv("FAKE_TRAINER_MISSING")
    code, report = preflight_json(plan("-r", "512", "--preset", "baseline-512"))
    assert code == 0, report


def test_offline_without_a_tokenizer_fails_and_tokenizer_cache_dir_fixes_it(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, report = preflight_json(plan("-r", "64"))
    assert code == REFUSED and stages(report)["tokenizer"]["status"] == "FAIL"
    assert "tokenizer_cache_dir" in stages(report)["tokenizer"]["fix"]
    cache = tmp_path / "tok"
    (cache / "openai_clip-vit-large-patch14").mkdir(parents=True)
    code, report = preflight_json(plan("-r", "64", "--set", f'tokenizer_cache_dir="{cache}"'))
    assert code == 0, report


def test_a_probe_that_cannot_import_sd_scripts_is_a_clean_error(fake, monkeypatch, tmp_path):
    broken = tmp_path / "broken_sd_scripts"
    broken.mkdir()
    (broken / "train_network.py").write_text("raise ImportError('No module named diffusers')\n")
    run = plan("-r", "64")
    monkeypatch.setenv("BESPOKE_SD_SCRIPTS", str(broken))
    result = invoke("preflight", str(run))
    assert result.exit_code == 5
    assert "No module named diffusers" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_train_does_not_launch_what_preflight_rejects_and_no_preflight_does(fake, isolated_project, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_GPU", "none")  # a box without a GPU: the default preset's fp16 cannot run
    result = invoke("train", "-r", "64", "--set", "max_train_epochs=1")
    assert result.exit_code == REFUSED, result.output
    assert "mixed precision" in result.output and "--no-preflight" in result.output
    assert not fake.exists()  # the gate stopped the launch before the fake trainer's own code ran
    run = next(p for p in (isolated_project / "outputs").iterdir() if p.is_dir())
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "planned" and manifest.get("attempt") is None  # run.json as it was
    assert "bespoke preflight: the trainer would stop: mixed precision NEEDS-HARDWARE" in (
        run / "logs" / "train.log").read_text()
    gate = json.loads((run / "logs" / "preflight.json").read_text())
    assert gate["gate"] and {s["name"]: s["status"] for s in gate["jobs"][0]["stages"]}["mixed precision"] == \
        "NEEDS-HARDWARE"
    launched = invoke("train", "--run", str(run), "--no-preflight")
    assert fake.exists() and launched.exit_code in (0, 5)


@pytest.mark.slow
def test_train_whose_sd_scripts_cannot_import_is_a_clean_trainer_error(fake, isolated_project, monkeypatch,
                                                                          tmp_path):
    run = plan("-r", "64", *CPU_SAFE)
    broken = tmp_path / "broken_sd_scripts"
    broken.mkdir()
    (broken / "train_network.py").write_text("raise ImportError('No module named diffusers')\n")
    monkeypatch.setenv("BESPOKE_SD_SCRIPTS", str(broken))
    result = invoke("train", "--run", str(run))
    assert result.exit_code == 5, result.output
    assert "preflight could not run" in result.output and "No module named diffusers" in result.output
    assert "Traceback" not in result.output
    assert json.loads((run / "run.json").read_text())["status"] == "planned"


def test_sweep_preflights_every_run_before_launching_any(fake, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_GPU", "none")
    result = invoke("sweep", "-r", "128,64", "--no-process")
    assert result.exit_code == REFUSED, result.output
    assert "128-" in result.output and "64-" in result.output and "mixed precision" in result.output
    assert not fake.exists()


def test_a_refusal_has_an_exit_code_of_its_own_and_the_help_names_it():
    from bespoke.errors import BespokeError

    def kinds(cls):
        return [cls, *(k for sub in cls.__subclasses__() for k in kinds(sub))]

    codes = [k.exit_code for k in kinds(BespokeError) if k is not PreflightError]
    assert PreflightError.exit_code == REFUSED and REFUSED not in codes and REFUSED != 1  # 1: a crash
    assert "7    preflight refused" in invoke("--help").output


def _gate(run: Path):
    """gate.py as accelerate starts it: in the run folder, with the report path, the script and its arguments."""
    import subprocess
    import sys

    from locations import FAKE_DIR

    from bespoke.kohya.preflight import GATE_SCRIPT

    argv = [sys.executable, str(GATE_SCRIPT), "logs/preflight.json", str(FAKE_DIR / "train_network.py"),
            "--config_file", "config/training.toml", "--dataset_config", "config/dataset.toml"]
    return subprocess.Popen(argv, cwd=run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_gate_alone_refuses_before_the_script_runs_and_writes_its_report(fake, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_GPU", "none")
    run = plan("-r", "64")  # fp16 on a box without a GPU
    (run / "logs").mkdir(exist_ok=True)
    gate = _gate(run)
    out, err = gate.communicate(timeout=120)
    assert gate.returncode == 1, err
    assert "bespoke preflight: the trainer would stop: mixed precision NEEDS-HARDWARE" in err
    report = json.loads((run / "logs" / "preflight.json").read_text())
    assert report["gate"] and set(report["seconds"]) == {"import", "stages"} and report["device"]["cuda"] is False
    assert not fake.exists()  # train_network.py never ran


@pytest.mark.slow
def test_the_gate_alone_becomes_the_trainer_in_its_own_process(fake):
    run = plan("-r", "64", *CPU_SAFE, "--set", "max_train_epochs=1")
    (run / "logs").mkdir(exist_ok=True)
    gate = _gate(run)
    out, err = gate.communicate(timeout=120)
    assert gate.returncode == 0, err
    assert "bespoke preflight passed: 10 stages" in out
    (launch,) = [json.loads(line) for line in fake.read_text().splitlines()]
    assert launch["pid"] == gate.pid  # sd-scripts imported once: the check and the training, one process
