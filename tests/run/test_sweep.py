"""`bespoke sweep` and `bespoke runs`: real sweeps with the fake trainer, and the pure parts (files, shards)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from locations import REPO
from manifest_helpers import manifest_of, write_run_json
from rich.console import Console

from bespoke.cli import main
from bespoke.errors import ConfigError, UsageError
from bespoke.pipeline.runs import runs_overview
from bespoke.run.sweep_file import (
    SweepEntry,
    load_sweep_file,
    parse_gpus,
    parse_shard,
    shard_items,
    sweep_entries,
)

TINY = ("--set", "max_train_epochs=2", "--set", "mixed_precision=no")




def seen(record: Path) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def runs_by_resolution(project: Path) -> dict[int, Path]:
    return {manifest_of(p)["resolution"]: p for p in (project / "outputs").iterdir()
            if p.is_dir() and (p / "run.json").exists()}


@pytest.mark.slow
def test_sweep_continues_past_a_failed_run_and_rerun_skips_finished(fake, isolated_project, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_FAIL_RESOLUTION", "128")
    result = invoke("sweep", "-r", "256,128,64", *TINY, "--json")
    assert result.exit_code == 5
    assert "1 of 3 runs did not finish" in result.output
    runs = runs_by_resolution(isolated_project)
    assert {r: manifest_of(p)["status"] for r, p in runs.items()} == {256: "finished", 128: "failed", 64: "finished"}
    launched = [next(r for r, p in runs.items() if Path(c["cwd"]) == p.resolve()) for c in seen(fake)]
    assert launched == [256, 128, 64]  # the 64 px run ran after the 128 px failure
    table = json.loads(result.stdout[result.stdout.index("["):result.stdout.rindex("]") + 1])
    assert [(row["resolution"], row["status"]) for row in table] == [(256, "finished"), (128, "failed"),
                                                                    (64, "finished")]
    # finished runs were processed: the table carries each one's best epoch and its mean colours
    for row in table:
        processed = (runs[row["resolution"]] / "report" / "report.json").is_file()
        assert processed == (row["status"] == "finished")
        assert (row["best_epoch"] in (1, 2)) == processed and (row["mean_colors"] is not None) == processed
    assert "sweep results" in result.output and "fake trainer failure" in result.output

    monkeypatch.delenv("FAKE_TRAINER_FAIL_RESOLUTION")
    again = invoke("sweep", "-r", "256,128,64", *TINY)  # fault fixed: only the failed run trains again
    assert again.exit_code == 0, again.output
    assert again.output.count("already finished, skipped") == 2 and len(seen(fake)) == 4
    assert manifest_of(runs[128])["status"] == "finished"
    # it failed before its first checkpoint: started over, the samples drawn before training kept aside
    assert list((runs[128] / "model.prev-1" / "sample").glob("*_e000000_*.png"))
    assert (runs[128] / "logs" / "train.1.log").exists()


@pytest.mark.slow
def test_gpus_run_one_child_per_gpu_concurrently_and_ctrl_c_stops_them_all(fake, isolated_project):
    import os
    import signal
    import subprocess
    import time

    # both children hang at step 2: they must run at the same time, each pinned to its own GPU
    env = {**os.environ, "FAKE_TRAINER_HANG_AT_STEP": "2"}
    cmd = [sys.executable, "-m", "bespoke", "sweep", "-r", "128,64", "--gpus", "0,1", *TINY]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while len(seen(fake)) < 2 or not all(
                "avr_loss" in (p / "logs" / "train.log").read_text()
                for p in runs_by_resolution(isolated_project).values()):
            assert time.monotonic() < deadline and proc.poll() is None, "children did not start together"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    children = seen(fake)
    assert sorted(c["env"]["CUDA_VISIBLE_DEVICES"] for c in children) == ["0", "1"]
    for run in runs_by_resolution(isolated_project).values():
        manifest = manifest_of(run)
        assert manifest["status"] == "interrupted"
        launched = manifest["attempt"]  # what ran; manifest["argv"] is the plan's command
        assert "--gpu_ids" not in launched["argv"] and "--multi_gpu" not in launched["argv"]
        assert launched["argv"][launched["argv"].index("--num_processes") + 1] == "1"
        assert launched["env_overrides"]["CUDA_VISIBLE_DEVICES"] in ("0", "1")
    for child in children:
        assert not Path(f"/proc/{child['pid']}").exists() or "zombie" in Path(
            f"/proc/{child['pid']}/status").read_text().lower(), "a trainer outlived the sweep"


def test_shard_runs_this_machines_share_of_the_planned_runs(fake, isolated_project, monkeypatch):
    from bespoke.run import sweep

    ran = []
    monkeypatch.setattr(sweep.SweepRunner, "run_sequential", lambda self, dirs: ran.append(dirs) or [])
    shares = []
    for i in (1, 2, 3):
        ran.clear()
        result = invoke("sweep", "-r", "512,256,128,64", "--shard", f"{i}/3", *TINY)
        assert result.exit_code == 0, result.output
        shares.append(sorted(d.name for d in ran[0]))
        # a machine creates only its own share's run folders, never the other machines'
        created = {p.name for p in (isolated_project / "outputs").iterdir() if not p.name.startswith(".")}
        assert created == {name for share in shares for name in share}
    all_ids = sorted(p.name for p in (isolated_project / "outputs").iterdir() if not p.name.startswith("."))
    assert len(all_ids) == 4
    assert shares == [all_ids[0::3], all_ids[1::3], all_ids[2::3]]
    assert len(seen(fake)) == 0


def test_shard_items_is_a_deterministic_partition():
    ids = ["64-x-3", "512-x-1", "128-x-9", "256-x-2", "64-y-0"]
    shares = [shard_items(ids, (i, 3)) for i in (1, 2, 3)]
    assert sorted(sum(shares, [])) == sorted(ids)
    assert shares == [["128-x-9", "64-x-3"], ["256-x-2", "64-y-0"], ["512-x-1"]]
    assert shard_items(list(reversed(ids)), (2, 3)) == shares[1]
    assert shard_items(ids, None) == sorted(ids)


@pytest.mark.parametrize("text", ["0/2", "3/2", "1-2", "a/b", "2"])
def test_bad_shard_is_a_usage_error(text):
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_gpus_and_resolutions_are_checked():
    assert parse_gpus("0, 2") == ("0", "2")
    with pytest.raises(UsageError, match="distinct GPU"):
        parse_gpus("0,0")
    with pytest.raises(UsageError, match="not one of"):
        invoke_parse("-r", "512,300")


def invoke_parse(*args):
    from bespoke.run.sweep_file import parse_resolutions

    return parse_resolutions(args[1])


def test_sweep_file_entries_preset_and_set_precedence(tmp_path):
    path = tmp_path / "sweep-x.toml"
    path.write_text('preset = "baseline-512"\noverrides = { seed = 1 }\n'
                    '[[run]]\nresolution = 512\noverrides = ["network_dim=8"]\n'
                    '[[run]]\nresolution = 64\npreset = "other"\n[run.overrides]\nnetwork_dim = 4\n')
    entries = sweep_entries(None, "cli-preset", ("seed=7",), path)
    assert entries == [SweepEntry(512, "baseline-512", ("seed=1", "network_dim=8", "seed=7")),
                       SweepEntry(64, "other", ("seed=1", "network_dim=4", "seed=7"))]
    assert [e.resolution for e in sweep_entries((64,), None, (), path)] == [64]
    assert sweep_entries((256, 64), "p", (), None) == [SweepEntry(256, "p"), SweepEntry(64, "p")]


@pytest.mark.parametrize("text, message", [
    ("[[run]]\nresolutin = 512\n", 'unknown key \'resolutin\' (did you mean "resolution"?)'),
    ("[[run]]\nresolution = '512'\n", "resolution must be an integer"),
    ("[[run]]\nresolution = 300\n", "not one of"),
    ("prest = 'x'\n[[run]]\nresolution = 64\n", 'did you mean "preset"?'),
    ("description = 'nothing'\n", "no [[run]] tables"),
    ("[[run]]\nresolution = 64\noverrides = 3\n", "overrides must be a table"),
])
def test_bad_sweep_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "sweep-bad.toml"
    path.write_text(text)
    with pytest.raises((ConfigError, UsageError)) as info:
        load_sweep_file(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_shipped_sweep_files_load():
    files = sorted((REPO / "kohya_configs").glob("sweep-*.toml"))
    assert files
    for path in files:
        assert load_sweep_file(path)
    assert [e.resolution for e in load_sweep_file(REPO / "kohya_configs" / "sweep-resolutions.toml")] == [
        512, 256, 128, 64]


def test_runs_lists_status_epochs_best_and_marks_simulated(isolated_project):
    outputs = isolated_project / "outputs"
    write_run_json(outputs / "512-a-1", **{"id": "512-a-1", "status": "finished", "resolution": 512, "preset": "a",
                                         "epochs_done": 10, "epochs_total": 10})
    from bespoke.review.records import Best, ProcessReport
    from bespoke.review.report import write_report

    write_report(outputs / "512-a-1" / "report", ProcessReport(
        created_at="2026-01-01T00:00:00Z", source=str(outputs / "512-a-1"), run_id="512-a-1", simulated=False,
        methods=["grid"], palette=None, tolerance=5.0, near_copy_threshold=0.8,
        novelty_tolerance=8.0, training=None, layout_hint=None, samples=[], errors=[], epochs=[],
        best=Best(epoch=8, method="grid", rule="test", score=0.5, terms={})))
    write_run_json(outputs / "64-demo-2", **{"id": "64-demo-2", "status": "finished", "resolution": 64,
                                           "preset": None, "simulated": True, "num_epochs": 4, "epochs_done": 4})
    (outputs / "not-a-run").mkdir()
    items = runs_overview(outputs)
    assert [(i.id, i.best_epoch, i.simulated, i.epochs_total) for i in items] == [
        ("512-a-1", 8, False, 10), ("64-demo-2", None, True, 4)]
    result = invoke("runs", "--json")  # with each run's name and Slurm view (none here)
    assert json.loads(result.stdout) == [{**i.to_json(), "name": None, "label": None, "slurm": None} for i in items]
    table = invoke("runs")
    assert "(simulated)" in table.output and "512-a-1" in table.output


@pytest.mark.parametrize("width", [80, 120])
def test_runs_fits_the_terminal_with_names_and_slurm(isolated_project, monkeypatch, width):
    """On an 80-column terminal a named run on Slurm still reads whole: name under the id, Slurm's view under
    the status, no word split; from WIDE columns the resolution and preset columns come back."""
    outputs = isolated_project / "outputs"
    run_id = "512-baseline-512-3f2a9c1d"
    write_run_json(outputs / run_id, **{"id": run_id, "status": "interrupted", "resolution": 512,
                                        "preset": "baseline-512", "epochs_done": 8, "epochs_total": 10})
    slurm = {"state": "RUNNING", "job": "41_2", "node": "node-gpu-07", "elapsed": "1:02:33"}
    monkeypatch.setattr("bespoke.pipeline.runs.slurm_columns",
                        lambda dirs: {run_id: {"name": "dim sweep high lr", "label": "dim sweep high lr",
                                               "slurm": slurm}})
    terminal = Console(width=width, file=io.StringIO(), highlight=False, color_system=None)
    monkeypatch.setattr("bespoke.console.out", terminal)
    assert invoke("runs").exit_code == 0
    lines = terminal.file.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    text = "\n".join(lines)
    for whole in (run_id, "dim sweep high lr", "interrupted", "RUNNING node-gpu-07 1:02:33", "8/10"):
        assert whole in text, (whole, text)
    assert ("baseline-512 " in text.replace(run_id, "")) == (width >= 100)


def test_sweep_without_a_checkout_fails_once_before_planning(isolated_project):
    result = invoke("sweep", "-r", "128,64", *TINY)
    assert result.exit_code == 2
    assert result.output.count("no sd-scripts checkout configured") == 1
    assert not (isolated_project / "outputs").exists()


def test_a_sweep_file_with_a_syntax_error_is_one_line_naming_file_and_line(isolated_project):
    path = isolated_project / "sweep-bad.toml"
    path.write_text('description = "x"\n[[run]\nresolution = 64\n')
    with pytest.raises(ConfigError, match=r"sweep-bad.toml, line 2, column \d+: not valid TOML"):
        load_sweep_file(path)
    result = CliRunner().invoke(main, ["sweep", "--sweep", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {path}, line 2")
    path.write_text("run = [1, 2]\n")
    with pytest.raises(ConfigError, match="each run is a \\[\\[run\\]\\] table"):
        load_sweep_file(path)
    path.write_bytes(b'description = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_sweep_file(path)


def test_sweep_overrides_keep_windows_paths_exactly(isolated_project):
    from bespoke.kohya.presets import parse_override

    path = isolated_project / "sweep-win.toml"
    path.write_text("[[run]]\nresolution = 64\nname = 'win'\n"
                    "overrides = { output_name = 'C:\\new\\table\\x', tokenizer_cache_dir = \"D:\\\\cache\\\\tok\" }\n")
    entry = load_sweep_file(path)[0]
    assert entry.name == "win"
    values = {key: value for _table, key, value in map(parse_override, entry.overrides)}
    assert values == {"output_name": "C:\\new\\table\\x", "tokenizer_cache_dir": "D:\\cache\\tok"}
