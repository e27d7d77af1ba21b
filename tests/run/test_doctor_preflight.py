"""`bespoke doctor` preflights every shipped preset x resolution and the newest run (fake sd-scripts), and stops
saying "ready to train" when one would not train on this box."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner
from locations import FAKE_DIR

from bespoke.cli import main
from bespoke.run.preflight import shipped_combinations


def doctor(base):
    result = CliRunner().invoke(main, ["--sd-scripts", str(FAKE_DIR), "--python", sys.executable, "--base-model",
                                       str(base), "doctor", "--json"], catch_exceptions=False)
    checks = {c["name"]: c for c in json.loads(result.stdout[:result.stdout.rindex("]") + 1])}
    return result, checks


def test_every_shipped_preset_and_resolution_is_preflighted(isolated_project):
    assert shipped_combinations() == [(512, None), (256, None), (128, None), (64, None), (512, "baseline-512")]
    base = isolated_project / "sd15.safetensors"
    base.write_bytes(b"x" * 1000)
    result, checks = doctor(base)
    names = [n for n in checks if n.startswith("preflight")]
    assert names == ["preflight preset 512", "preflight preset 256", "preflight preset 128", "preflight preset 64",
                     "preflight preset 512 baseline-512"]
    assert all(checks[n]["level"] == "ok" for n in names), checks
    assert result.exit_code == 0 and "ready to train" in result.output
    assert not list(isolated_project.glob("outputs/*"))  # planned in a temporary folder, not the user's outputs


@pytest.mark.slow
def test_no_xformers_no_bitsandbytes_no_bf16_or_no_offline_tokenizer_is_not_ready(isolated_project, monkeypatch):
    base = isolated_project / "sd15.safetensors"
    base.write_bytes(b"x" * 1000)
    monkeypatch.setenv("FAKE_TRAINER_MISSING", "xformers,bitsandbytes")
    monkeypatch.setenv("FAKE_TRAINER_GPU", "fp16")  # a GPU without bf16
    result, checks = doctor(base)
    baseline = checks["preflight preset 512 baseline-512"]
    assert result.exit_code == 1 and "ready to train" not in result.output
    assert baseline["level"] == "error"
    for needle in ("No xformers", "No bitsandbytes", "bfloat16"):
        assert needle in baseline["message"], baseline
    assert "--set xformers=false" in baseline["fix"]
    assert checks["preflight preset 64"]["level"] == "ok"  # fp16 + sdpa + AdamW train on that GPU
    monkeypatch.delenv("FAKE_TRAINER_MISSING")
    monkeypatch.setenv("FAKE_TRAINER_GPU", "bf16")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result, checks = doctor(base)
    assert result.exit_code == 1 and "tokenizer FAIL" in checks["preflight preset 64"]["message"]
