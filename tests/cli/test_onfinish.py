"""`--on-finish CMD` runs exactly once when `train` or `sweep` ends, whatever the outcome (finished, a failed
trainer, Ctrl-C, a crash of bespoke itself), with the outcome in its environment; the budget and the stop rule
flags reach the run; the loop's bad flags are one-line errors before anything runs."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest
from click.testing import CliRunner
from faultkit import launch, make_run, wait_for

from bespoke.cli import main
from bespoke.run.paths import RunPaths
from bespoke.run.supervision import Supervision

# the command appends one JSON line of what it was told; the path is its only argument
RECORDER = ("import json, os, sys; open(sys.argv[1], 'a').write(json.dumps({k: v for k, v in os.environ.items() "
            "if k.startswith('BESPOKE_') and k not in ('BESPOKE_PROJECT', 'BESPOKE_SD_SCRIPTS', 'BESPOKE_PYTHON')})"
            " + chr(10))")


def on_finish(record) -> str:
    return f"{sys.executable} -c \"{RECORDER}\" {record}"


def told(record) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def _train(run, *args):
    return CliRunner().invoke(main, ["train", "--run", str(run), "--no-process", *args])


@pytest.mark.slow
def test_it_runs_once_when_the_run_finishes_or_its_trainer_fails(fake, isolated_project, monkeypatch, tmp_path):
    record = tmp_path / "told.jsonl"
    run = make_run(isolated_project)
    result = _train(run, "--on-finish", on_finish(record), "--gpu-price", "1.5")
    assert result.exit_code == 0, result.output
    [finished] = told(record)
    assert finished["BESPOKE_OUTCOME"] == "finished" and finished["BESPOKE_EXIT_CODE"] == "0"
    assert finished["BESPOKE_KIND"] == "run" and finished["BESPOKE_RUN"] == "hand"
    assert finished["BESPOKE_RUN_DIR"] == str(run) and float(finished["BESPOKE_COST_USD"]) >= 0
    failing = make_run(isolated_project, "failing")
    monkeypatch.setenv("FAKE_TRAINER_FAIL_AT_STEP", "3")
    result = _train(failing, "--on-finish", on_finish(record))
    assert result.exit_code != 0
    assert [(t["BESPOKE_OUTCOME"], t["BESPOKE_EXIT_CODE"], t["BESPOKE_RUN"]) for t in told(record)[1:]] == [
        ("failed", str(result.exit_code), "failing")]


@pytest.mark.slow
def test_it_runs_once_when_bespoke_itself_crashes(fake, isolated_project, monkeypatch, tmp_path):
    record = tmp_path / "told.jsonl"
    run = make_run(isolated_project)
    original = Supervision.tick

    def buggy_tick(self):
        original(self)
        if self.manifest.epochs_done >= 1:
            raise RuntimeError("injected bug")

    monkeypatch.setattr(Supervision, "tick", buggy_tick)
    result = _train(run, "--on-finish", on_finish(record))
    assert isinstance(result.exception, RuntimeError)
    assert [(t["BESPOKE_OUTCOME"], t["BESPOKE_EXIT_CODE"]) for t in told(record)] == [("crashed", "1")]


@pytest.mark.slow
def test_it_runs_once_after_ctrl_c(isolated_project, tmp_path):
    record = tmp_path / "told.jsonl"
    run = make_run(isolated_project)
    process = launch(isolated_project, run, "--on-finish", on_finish(record), FAKE_TRAINER_STEP_SECONDS="0.3")
    try:
        assert wait_for(lambda: any(RunPaths(run).model_dir.glob("hand-000001.safetensors")), 60)
        os.killpg(process.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole foreground group
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err.decode(errors="replace")
    [interrupted] = told(record)
    assert interrupted["BESPOKE_OUTCOME"] == "interrupted" and interrupted["BESPOKE_EXIT_CODE"] == "130"
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"


@pytest.mark.slow
def test_a_sweep_runs_it_once_for_all_its_runs(fake, isolated_project, synthetic_dataset, tmp_path):
    record = tmp_path / "told.jsonl"
    result = CliRunner().invoke(main, ["sweep", "-r", "64,128", "--dataset", str(synthetic_dataset),
                                       "--set", "max_train_epochs=1", "--no-process", "--on-finish",
                                       on_finish(record)])
    assert result.exit_code == 0, result.output
    [sweep] = told(record)
    assert sweep["BESPOKE_KIND"] == "sweep" and sweep["BESPOKE_OUTCOME"] == "finished"
    assert len(sweep["BESPOKE_RUNS"].split()) == 2, (sweep, result.output)


@pytest.mark.parametrize("args, words", [
    (["--budget", "5"], "--budget needs a price"),
    (["--budget", "-1", "--gpu-price", "2"], "--budget -1.0: the most to spend"),
    (["--gpu-price", "-2"], "--gpu-price -2.0"),
    (["--stop-when", "soon"], "--stop-when 'soon': choose peaked"),
    (["--notify", "ftp://x"], "--notify 'ftp://x'"),
    (["--on-finish", "echo 'unclosed"], "--on-finish"),
])
def test_bad_loop_flags_are_one_line_errors_before_anything_runs(isolated_project, args, words, tmp_path):
    result = CliRunner().invoke(main, ["train", "--run", str(tmp_path / "nowhere"), *args])
    assert result.exit_code == 2 and words in result.output, result.output
