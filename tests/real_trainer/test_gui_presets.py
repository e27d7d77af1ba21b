"""Every SD 1.x LoRA config of the kohya_ss GUI (tests/kohya/data/kohya_gui/, 45088f04) imported by bespoke and
preflighted on the real trainer in one probe: every stage PASSes but those that need a GPU (NEEDS-HARDWARE on a
CPU box), and an optional package the trainer's venv lacks (lycoris-lora, dadaptation) is a FAIL whose fix is to
install it (issue 20). With a trainer venv that has them (BESPOKE_TEST_SD_PYTHON pointing at one), all pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bespoke.dataset.synthetic import write_dataset
from bespoke.kohya.gui_import import import_gui_config
from bespoke.kohya.preflight import FAIL, HARDWARE, PASS
from bespoke.run.plan import PlanRequest, plan_run
from bespoke.run.preflight import preflight_runs
from bespoke.settings import Settings

FIXTURES = Path(__file__).parent.parent / "kohya" / "data" / "kohya_gui"
HARDWARE_STAGES = {"mixed precision", "attention", "optimizer"}


def _importable(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def test_every_imported_gui_preset_preflights(real, tmp_path):
    settings = real.settings()
    scratch = Settings(project_root=tmp_path, outputs_dir=tmp_path / "outputs", datasets_dir=tmp_path / "datasets",
                       cache_dir=tmp_path / "cache", sd_scripts=settings.sd_scripts, sd_python=settings.sd_python,
                       base_model=settings.base_model)
    write_dataset(tmp_path / "datasets" / "punks", count=4, seed=3)
    imported = [import_gui_config(path, out_dir=tmp_path / "presets") for path in sorted(FIXTURES.glob("*.json"))]
    runs = [plan_run(scratch, PlanRequest(resolution=512, dataset=tmp_path / "datasets" / "punks",
                                          preset=str(result.path),
                                          overrides=(f'tokenizer_cache_dir="{real.tokenizer_cache}"',))
                     ).paths.root for result in imported]
    report = preflight_runs(scratch, runs)
    assert len(report.runs) == len(imported) == 23
    missing = {p.pypi: not _importable(str(settings.sd_python), p.module) for r in imported for p in r.packages}
    for result, run in zip(imported, report.runs, strict=True):
        assert run.error is None, (result.name, run.error)
        for stage in run.stages:
            if stage.status == FAIL:  # only a missing optional package, and the fix installs it
                package = next(p for p in result.packages if p.stage == stage.name)
                assert missing[package.pypi] and stage.fix.startswith(f"install `{package.pypi}`"), (result.name, stage)
            elif stage.status == HARDWARE:
                assert stage.name in HARDWARE_STAGES and not report.device.get("cuda"), (result.name, stage)
            else:
                assert stage.status == PASS, (result.name, stage)
