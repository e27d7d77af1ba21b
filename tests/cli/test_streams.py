"""Streams that script well: results (launch command, tables, --json) on stdout, messages on stderr."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from bespoke.cli import main


def test_plan_prints_its_launch_command_on_stdout(synthetic_dataset):
    result = CliRunner().invoke(main, ["plan", "-r", "64", "--dataset", str(synthetic_dataset)])
    assert result.exit_code == 0, result.output
    assert "launch command" in result.stdout and "train_network.py" in result.stdout
    assert "train_network.py" not in result.stderr
    as_json = CliRunner().invoke(main, ["plan", "-r", "64", "--dataset", str(synthetic_dataset), "--json"])
    assert json.loads(as_json.stdout)["run_id"]  # stdout is the JSON alone


def test_doctor_json_is_alone_on_stdout(isolated_project):
    result = CliRunner().invoke(main, ["doctor", "--json"])
    checks = json.loads(result.stdout)  # the human report went to stderr
    assert checks and all("level" in c for c in checks)
    assert "fix:" in result.stderr or "ready to train" in result.stderr


def test_a_pipe_gets_whole_lines(synthetic_dataset):
    done = subprocess.run([sys.executable, "-m", "bespoke", "presets"], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "COLUMNS": "40"})
    assert done.returncode == 0, done.stderr
    assert ("layers: base <- res-R <- --preset NAME|FILE <- --set key=value; a kohya_configs/ folder in the project "
            "is searched first") in done.stdout.splitlines()
    assert "…" not in done.stdout


def test_plan_notes_go_to_stderr_and_stdout_holds_the_plan_alone(synthetic_dataset):
    result = CliRunner().invoke(main, ["plan", "-r", "64", "--dataset", str(synthetic_dataset)])
    assert result.exit_code == 0, result.output
    assert "no sd-scripts checkout configured" in result.stderr
    assert "no sd-scripts checkout configured" not in result.stdout and "note:" not in result.stdout
    assert "launch command" in result.stdout
