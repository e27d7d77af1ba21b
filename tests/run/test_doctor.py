"""`bespoke doctor`: real probes in the trainer's Python, against the fake sd-scripts checkout."""

from __future__ import annotations

import json
import sys

from click.testing import CliRunner
from locations import FAKE_DIR

from bespoke.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def checks_of(result) -> dict:
    return {c["name"]: c for c in json.loads(result.stdout[:result.stdout.rindex("]") + 1])}


def test_ready_machine_passes_with_warnings_only(isolated_project):
    base = isolated_project / "sd15.safetensors"
    base.write_bytes(b"x" * 1000)
    result = invoke("--sd-scripts", str(FAKE_DIR), "--python", sys.executable, "--base-model", str(base),
                    "doctor", "--json")
    assert result.exit_code == 0, result.output
    checks = checks_of(result)
    assert checks["sd-scripts"]["level"] == "ok"
    assert checks["accelerate"]["level"] == "ok" and checks["trainer python"]["level"] == "ok"
    assert checks["torch"]["level"] in ("ok", "warning")  # warning = no CUDA on this box
    assert checks["base model"]["level"] == "ok"
    assert checks["sd-scripts options"]["level"] == "ok", checks["sd-scripts options"]
    assert "ready to train" in result.output


def test_older_sd_scripts_without_a_key_bespoke_writes_is_an_error(isolated_project, monkeypatch):
    # the default preset's 64 px layer writes resize_interpolation (sd-scripts >= 0.10 only); plan a run first
    # so doctor checks the keys of a real planned training.toml
    from bespoke.dataset.synthetic import write_dataset
    from bespoke.run.plan import PlanRequest, plan_run
    from bespoke.settings import load_settings

    write_dataset(isolated_project / "ds", count=2, seed=1)
    settings = load_settings().with_overrides(sd_scripts=FAKE_DIR, sd_python=sys.executable)
    plan = plan_run(settings, PlanRequest(resolution=64, dataset=isolated_project / "ds",
                                          overrides=("training.network_dim=8",)))
    monkeypatch.setenv("FAKE_TRAINER_DROP_OPTIONS", "network_dim,not_written_by_bespoke")
    result = invoke("--sd-scripts", str(FAKE_DIR), "--python", sys.executable, "doctor", "--json")
    assert result.exit_code == 1
    check = checks_of(result)["sd-scripts options"]
    assert check["level"] == "error" and "does not know network_dim " in check["message"]
    assert str(plan.paths.training_toml) in check["message"] and "update sd-scripts" in check["fix"]
    assert "fix: update sd-scripts" in result.output
    assert checks_of(result)["base model"]["level"] == "warning"  # the default hub id, not cached here


def test_missing_checkout_python_and_base_model_each_come_with_a_fix(isolated_project):
    result = invoke("--sd-scripts", str(isolated_project / "nope"), "--python", str(isolated_project / "nopython"),
                    "--base-model", str(isolated_project / "missing.safetensors"), "doctor", "--json")
    assert result.exit_code == 1
    checks = checks_of(result)
    assert checks["sd-scripts"]["level"] == "error" and "git clone" in checks["sd-scripts"]["fix"]
    assert checks["trainer python"]["level"] == "error" and "--python" in checks["trainer python"]["fix"]
    assert checks["base model"]["level"] == "error" and "does not exist" in checks["base model"]["message"]
    assert "Error: doctor found 3 problem(s)" in result.output


def test_no_checkout_configured(isolated_project):
    result = invoke("--python", str(isolated_project / "nopython"), "doctor")
    assert result.exit_code == 1
    assert "no sd-scripts checkout configured" in result.output and "--sd-scripts PATH" in result.output


def test_doctor_names_the_optional_packages_your_presets_and_runs_need(isolated_project, monkeypatch):
    """Which optional trainer packages (bespoke.kohya.packages) the user's presets and runs need, and whether the
    trainer's Python has them: asked of that Python itself (a package put on its path counts as installed)."""
    from bespoke.dataset.synthetic import write_dataset
    from bespoke.run.plan import PlanRequest, plan_run
    from bespoke.settings import load_settings

    presets = isolated_project / "kohya_configs"
    presets.mkdir()
    (presets / "my-locon.toml").write_text('[bespoke]\ndescription = "LoCon"\n[training]\n'
                                           'network_module = "lycoris.kohya"\nnetwork_args = ["algo=locon"]\n')
    (presets / "my-dadapt.toml").write_text('[bespoke]\ndescription = "DAdapt"\n[training]\n'
                                            'optimizer_type = "DAdaptAdam"\nlearning_rate = 1.0\n')
    site = isolated_project / "trainer-site"
    (site / "dadaptation").mkdir(parents=True)
    (site / "dadaptation" / "__init__.py").write_text("")
    # the trainer's environment is cleaned of the caller's PYTHONPATH (kohya.launch): a trainer Python of its own
    python = isolated_project / "trainer-python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{site}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    write_dataset(isolated_project / "ds", count=2, seed=1)
    settings = load_settings().with_overrides(sd_scripts=FAKE_DIR, sd_python=str(python))
    run = plan_run(settings, PlanRequest(resolution=64, dataset=isolated_project / "ds",
                                         overrides=("optimizer_type=Prodigy",))).paths.root

    result = invoke("--sd-scripts", str(FAKE_DIR), "--python", str(python), "doctor", "--json")
    checks = checks_of(result)
    lycoris = checks["package lycoris-lora"]
    assert lycoris["level"] == "warning" and "not installed in the trainer's venv" in lycoris["message"]
    assert "preset my-locon" in lycoris["message"] and "install `lycoris-lora`" in lycoris["fix"]
    dadapt = checks["package dadaptation"]
    assert dadapt["level"] == "ok" and "installed" in dadapt["message"] and "preset my-dadapt" in dadapt["message"]
    prodigy = checks["package prodigyopt"]
    assert f"run {run.name}" in prodigy["message"]
    import importlib.util

    if importlib.util.find_spec("prodigyopt") is None:  # a run needs it: the machine is not ready
        assert prodigy["level"] == "error" and result.exit_code == 1
    assert "fix: install `lycoris-lora` in the trainer's venv" in result.output
    unneeded = checks["unneeded packages"]
    assert unneeded["level"] == "info" and "lion-pytorch" in unneeded["message"]
