"""`bespoke demo` end to end, small: real planning, simulated samples, real process, the sweep review."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from manifest_helpers import manifest_of

from bespoke.cli import main
from bespoke.run.paths import RunPaths, list_run_dirs

# run the demo the way a user does, and prove it never imports torch or accelerate
_DRIVER = """
import runpy, sys
sys.argv = ["bespoke", *sys.argv[1:]]
try:
    runpy.run_module("bespoke", run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
heavy = sorted(m for m in ("torch", "accelerate") if m in sys.modules)
print("HEAVY:" + ",".join(heavy), file=sys.stderr)
sys.exit(code)
"""


def _demo(out: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _DRIVER, "demo", "--out", str(out), "--epochs", "2",
                           "--prompts", "2", *args], cwd=cwd, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_demo_end_to_end_then_reuses_everything(isolated_project, tmp_path):
    out = tmp_path / "demo"
    first = _demo(out, cwd=isolated_project)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "HEAVY:\n" in first.stderr or first.stderr.rstrip().endswith("HEAVY:")
    assert "SIMULATED" in first.stderr
    report_line = [line for line in first.stdout.splitlines() if line.startswith("report:")][-1]
    html = Path(report_line.split("report:", 1)[1].strip())
    assert html.is_file() and html.parent.parent == out / "outputs"

    runs = list_run_dirs(out / "outputs")
    assert sorted(manifest_of(r)["resolution"] for r in runs) == [64, 128, 256, 512]
    for run in runs:
        manifest = manifest_of(run)
        assert manifest["simulated"] is True and manifest["status"] == "finished" and manifest["demo"] is True
        assert manifest["epochs_done"] == 2
        # the argv that would launch it is recorded and printed
        assert manifest["argv"][-4:] == ["--config_file", "config/training.toml",
                                         "--dataset_config", "config/dataset.toml"]
        assert f"cd {run} && " in first.stderr.replace("\n", "")  # the trainer starts in the run folder
        report = json.loads((RunPaths(run).report_dir / "report.json").read_text())
        assert report["simulated"] is True and report["palette"] is not None
        assert len(report["samples"]) == 2 * 3  # e0 (sample_at_first) + 2 epochs, 2 prompts
        size = manifest["resolution"]
        assert {(s["width"], s["height"]) for s in report["samples"]} == {(size, size)}
        assert list((html.parent / "sheets" / run.name).glob("*.png"))  # the review folder holds its sheets
    text = html.read_text()
    assert "SIMULATED — not real training" in text
    assert (out / "datasets" / "synthetic_punks").is_dir()
    assert len(list((out / "datasets" / "synthetic_punks").glob("*.png"))) == 24

    samples_before = {p: p.stat().st_mtime_ns for r in runs for p in RunPaths(r).sample_dir.glob("*.png")}
    second = _demo(out, "--quiet", cwd=isolated_project)
    assert second.returncode == 0, second.stderr[-3000:]
    assert list_run_dirs(out / "outputs") == runs  # same config -> same run folders
    assert {p: p.stat().st_mtime_ns for p in samples_before} == samples_before  # nothing re-simulated


def test_demo_never_overwrites_a_different_prompt_file(tmp_path):
    out = tmp_path / "demo"
    prompts = out / "datasets" / "demo_prompts_2_seed0.txt"
    prompts.parent.mkdir(parents=True)
    prompts.write_text("my own prompts\n")
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--epochs", "2", "--prompts", "2", "--quiet"])
    assert result.exit_code == 4
    assert "never overwrites" in result.output
    assert prompts.read_text() == "my own prompts\n"
    assert not (out / "outputs").exists()


def test_demo_rejects_a_file_as_out(tmp_path):
    target = tmp_path / "file"
    target.write_text("keep me")
    result = CliRunner().invoke(main, ["demo", "--out", str(target), "--quiet"])
    assert result.exit_code == 2
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("flag", ["--epochs", "--prompts"])
def test_demo_bounds(flag, tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), flag, "0"])
    assert result.exit_code == 2
    assert not (tmp_path / "d").exists()


def test_demo_resumes_a_half_simulated_run(tmp_path):
    from manifest_helpers import change_manifest

    from bespoke.demo.demo import run_demo
    from bespoke.settings import load_settings

    out = tmp_path / "demo"
    first = run_demo(load_settings(), out, epochs=1, prompts=1, resolutions=(64,))
    run = first.runs[0].run_dir
    change_manifest(run, status="running")  # as if the previous demo was stopped (Ctrl-C) while simulating
    samples = sorted(p.name for p in RunPaths(run).sample_dir.glob("*.png"))
    again = run_demo(load_settings(), out, epochs=1, prompts=1, resolutions=(64,))
    assert again.runs[0].simulated_now and manifest_of(run)["status"] == "finished"
    # what the stopped demo drew is kept aside, never deleted; the run has a full set again
    assert sorted(p.name for p in (run / "model.prev-1" / "sample").glob("*.png")) == samples
    assert len(list(RunPaths(run).sample_dir.glob("*.png"))) == len(samples)
