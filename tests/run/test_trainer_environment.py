"""The trainer's environment end to end: every process bespoke starts in the trainer's Python (the launch, gen_img.py,
the preflight and environment probes) runs without the caller's PYTHONPATH and its kind, run.json and
generate.json say what was removed, and the one environment probe answers for doctor, run.json and preflight."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from locations import FAKE_DIR
from lora_fixtures import make_run_with_checkpoints

from bespoke.cli import main
from bespoke.kohya.environment import OPTIONAL_PACKAGES, DeviceFacts
from bespoke.run.facts import trainer_facts
from bespoke.run.generate import GenerateRequest, generate
from bespoke.run.preflight import preflight_runs
from bespoke.settings import load_settings

LEAK = "PYTHONPATH leaked into the trainer's Python"


def poisoned_pythonpath(monkeypatch, folder: Path, *modules: str) -> str:
    """A PYTHONPATH whose `modules` raise on import: any process of the trainer's Python that got it would fail."""
    for name in modules:
        package = folder / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f"raise ImportError({LEAK!r})\n")
    monkeypatch.setenv("PYTHONPATH", str(folder))
    return str(folder)


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def plan(*args) -> Path:
    result = invoke("plan", "--json", *args)
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


def test_the_probes_run_without_the_callers_pythonpath_and_say_so(fake, monkeypatch, tmp_path):
    run = plan("-r", "64", "--set", "mixed_precision=no")
    leak = poisoned_pythonpath(monkeypatch, tmp_path / "leak", "json", "torch", "accelerate")
    monkeypatch.setenv("FAKE_TRAINER_GPU", "fp16")
    report = preflight_runs(load_settings(), [run])
    assert report.ok, report.to_json()  # probe.py imports json first thing: a leak would crash it
    assert report.env_removed == {"PYTHONPATH": leak}
    # the preflight probe's device is the environment probe's reading (envprobe.device), here of the fake's torch
    assert report.device == {"torch": "0.0+fake", "cuda": True, "bf16": False, "gpus": ["fake GPU (fp16)"],
                             "gpu": "fake GPU (fp16)"}
    assert DeviceFacts.from_json(report.device) == DeviceFacts(cuda=True, bf16=False, gpus=("fake GPU (fp16)",))
    facts = trainer_facts(load_settings())  # imports torch and accelerate: both poisoned on the leak
    assert facts.errors == {} and facts.python == sys.version.split()[0]
    import accelerate

    assert facts.accelerate == accelerate.__version__ and facts.torch is not None
    assert [p.name for p in facts.packages] == list(OPTIONAL_PACKAGES)
    assert all(p.error == "not installed" for p in facts.packages if not p.importable)


def test_doctor_reports_versions_devices_and_optional_packages_from_the_one_probe(fake, monkeypatch, tmp_path):
    base = tmp_path / "sd15.safetensors"
    base.write_bytes(b"x" * 1000)
    (tmp_path / "mods" / "lycoris").mkdir(parents=True)  # a package the trainer's Python has, but broken
    (tmp_path / "mods" / "lycoris" / "__init__.py").write_text("raise RuntimeError('built for another torch')\n")
    (tmp_path / "mods" / "dadaptation.py").write_text("__version__ = '3.2'\n")
    shim = tmp_path / "trainer-python"  # the trainer's Python: this one, with those packages on its own path
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -c "
                    f"\"import sys; sys.path.insert(0, '{tmp_path / 'mods'}'); sys.argv = sys.argv[1:]; "
                    f"import runpy; runpy.run_path(sys.argv[0], run_name='__main__')\" \"$@\"\n")
    shim.chmod(0o755)
    result = CliRunner().invoke(main, ["--sd-scripts", str(FAKE_DIR), "--python", str(shim), "--base-model",
                                       str(base), "doctor", "--json"], catch_exceptions=False)
    checks = {c["name"]: c for c in json.loads(result.stdout[:result.stdout.rindex("]") + 1])}
    assert checks["accelerate"]["level"] == "ok" and checks["sd-scripts options"]["level"] == "ok"
    packages = checks["optional packages"]
    assert packages["level"] == "warning" and "dadaptation 3.2" in packages["message"]
    assert "lycoris (RuntimeError: built for another torch)" in packages["message"]
    assert "not installed: xformers, bitsandbytes" in packages["message"]


@pytest.mark.slow
def test_train_records_what_it_removed_and_the_trainers_environment(fake, monkeypatch, tmp_path):
    run = plan("-r", "64", "--set", "mixed_precision=no", "--set", "max_train_epochs=1")
    leak = poisoned_pythonpath(monkeypatch, tmp_path / "leak", "torch", "accelerate")
    monkeypatch.setenv("PYTHONSAFEPATH", "1")  # would hide train_network.py's own folder from its imports
    result = invoke("train", "--run", str(run))
    assert result.exit_code == 0, result.output
    attempt = json.loads((run / "run.json").read_text())["attempt"]
    assert attempt["env_removed"] == {"PYTHONPATH": leak, "PYTHONSAFEPATH": "1"}
    trainer = attempt["trainer"]
    import accelerate

    assert trainer["versions"]["accelerate"] == accelerate.__version__ and trainer["errors"] == {}
    assert set(trainer["packages"]) == {"xformers", *OPTIONAL_PACKAGES} and trainer["device"]["cuda"] is False
    assert f"PYTHONPATH={leak}" not in (run / "logs" / "train.log").read_text()


@pytest.mark.slow
def test_generate_records_what_it_removed(isolated_project, monkeypatch, tmp_path):
    (isolated_project / "base.safetensors").write_bytes(b"not really a model")
    run = make_run_with_checkpoints(isolated_project, epochs=1, dim=4, alpha=2)
    leak = poisoned_pythonpath(monkeypatch, tmp_path / "leak", "torch", "accelerate")
    monkeypatch.setenv("VIRTUAL_ENV", str(tmp_path / "bespoke-venv"))  # not where the trainer's Python lives
    settings = load_settings().with_overrides(sd_scripts=FAKE_DIR, sd_python=sys.executable)
    record = generate(settings, run, GenerateRequest(epoch=1, seeds=(1,), preflight=False))
    assert record["status"] == "finished"
    on_disk = json.loads((Path(record["outdir"]) / "generate.json").read_text())
    assert on_disk["env_removed"] == {"PYTHONPATH": leak, "VIRTUAL_ENV": str(tmp_path / "bespoke-venv")}
    assert os.environ["PYTHONPATH"] == leak  # bespoke's own environment is the caller's: only the trainer's is cleaned


@pytest.mark.real_trainer
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("BESPOKE_TEST_SD_PYTHON") or not os.environ.get("BESPOKE_TEST_SD_SCRIPTS"),
                    reason="needs the real trainer (BESPOKE_TEST_SD_SCRIPTS, BESPOKE_TEST_SD_PYTHON)")
def test_the_real_trainers_environment():
    settings = load_settings().with_overrides(sd_scripts=Path(os.environ["BESPOKE_TEST_SD_SCRIPTS"]),
                                              sd_python=os.environ["BESPOKE_TEST_SD_PYTHON"])
    facts = trainer_facts(settings, options=True)
    assert facts.errors == {} and facts.python and facts.torch and facts.accelerate
    # sd-scripts' requirements.txt installs these (FACTS §8): the probe must find every one importable
    assert {"bitsandbytes", "prodigyopt", "lion_pytorch", "schedulefree", "prodigyplus", "pytorch_optimizer",
            "tensorboard"} <= set(facts.importable)
    assert facts.options is not None and {"network_dim", "sample_prompts", "resize_interpolation"} <= set(facts.options)
    print(f"\nthe real trainer's environment: {json.dumps(facts.to_json()['versions'])}, {facts.device.describe()}, "
          f"importable: {', '.join(facts.importable)}")
