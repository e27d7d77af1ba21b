"""`bespoke train` end to end with the fake trainer launched through the real `accelerate launch` (CPU),
plus the pieces it is made of: the process runner, progress parsing, the run lock, resume rules.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import toml
from click.testing import CliRunner
from manifest_helpers import change_manifest, manifest_of, write_run_json

from bespoke.cli import main
from bespoke.kohya.preflight import GATE_SCRIPT
from bespoke.run.paths import RunPaths

TINY = ("--set", "max_train_epochs=2", "--set", "mixed_precision=no")




def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def only_run(project: Path) -> Path:
    runs = [p for p in (project / "outputs").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 1, runs
    return runs[0]


def seen(record: Path) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def hand_run(project: Path, image_dir: Path, *, save_state: bool = False, epochs: int = 2) -> Path:
    """A run folder written by hand (what plan writes), for cases plan would refuse (e.g. an empty image dir)."""
    paths = RunPaths(project / "outputs" / "hand")
    paths.config_dir.mkdir(parents=True)
    paths.prompts_txt.write_text("punk --w 64 --h 64 --d 1\n")
    paths.training_toml.write_text(toml.dumps({"model": {"output_dir": str(paths.model_dir), "output_name": "hand"},
                                               "training": {"max_train_epochs": epochs, "save_every_n_epochs": 1,
                                                            "sample_every_n_epochs": 1, "save_state": save_state,
                                                            "sample_prompts": str(paths.prompts_txt),
                                                            "mixed_precision": "no",
                                                            "network_module": "networks.lora"}}))
    paths.dataset_toml.write_text(toml.dumps({"datasets": [{"resolution": 64, "batch_size": 2, "subsets": [
        {"image_dir": str(image_dir), "num_repeats": 1, "caption_extension": ".txt"}]}]}))
    write_run_json(paths.root, **{"id": "hand", "status": "planned", "resolution": 64, "preset": None})
    return paths.root


# ---------------------------------------------------------------- real launches


@pytest.mark.slow
def test_clean_run_manifest_disk_and_personal_accelerate_config_does_not_leak(fake, isolated_project, tmp_path):
    personal = tmp_path / "hf_home" / "accelerate" / "default_config.yaml"
    personal.parent.mkdir(parents=True)
    personal.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nmixed_precision: fp16\n"
                        "num_processes: 2\nnum_machines: 1\ngpu_ids: all\nuse_cpu: false\ndebug: true\n")
    result = invoke("train", "-r", "64", *TINY)
    assert result.exit_code == 0, result.output
    run = only_run(isolated_project)
    assert f"run {run.name} finished: 2 epochs" in result.output
    manifest = manifest_of(run)
    attempt = manifest["attempt"]
    assert manifest["status"] == "finished" and attempt["exit_code"] == 0 and manifest["epochs_done"] == 2
    # the plan's command, run in the run folder behind bespoke's preflight gate (gate.py: the probe's stages,
    # then train_network.py in the same process)
    gate = attempt["argv"].index(str(GATE_SCRIPT))
    assert attempt["argv"][gate:gate + 2] == [str(GATE_SCRIPT), "logs/preflight.json"]
    assert attempt["argv"][:gate] + attempt["argv"][gate + 2:] == manifest["argv"] and attempt["cwd"] == str(run)
    assert "bespoke preflight passed: 10 stages" in (run / "logs" / "train.log").read_text()
    assert attempt["argv"][1:3] == ["-m", "accelerate.commands.launch"]
    assert attempt["argv"][attempt["argv"].index("--mixed_precision") + 1] == "no"
    assert attempt["env_overrides"] == {"PYTHONUNBUFFERED": "1"}
    # bespoke's own versions (from plan) and the trainer's (this attempt) are both kept
    assert manifest["versions"]["bespoke"] and attempt["trainer"]["versions"]["accelerate"] not in (
        "unknown", "not installed")
    assert len(attempt["trainer"]["sd_scripts_commit"]) == 40 or attempt["trainer"]["sd_scripts_commit"] == "unknown"
    final = [c for c in manifest["checkpoints"] if c["final"]]
    assert [(c["file"].split("/")[-1], c["epoch"]) for c in manifest["checkpoints"]] == [
        ("bespoke_64px-000001.safetensors", 1), ("bespoke_64px.safetensors", 2)] and final[0]["epoch"] == 2
    assert manifest["samples"]["count"] > 0 and set(manifest["samples"]["by_epoch"]) == {"0", "1", "2"}
    assert manifest["final_loss"] is not None
    log = (run / "logs" / "train.log").read_text()
    assert "epoch 2/2" in log and "model saved." in log
    assert log.startswith(f"[bespoke] $ cd {run} && PYTHONUNBUFFERED=1 ")
    # what the trainer really saw: one process, no distributed launcher, no debug mode, mixed precision "no"
    (saw,) = seen(fake)
    assert saw["env"].get("ACCELERATE_MIXED_PRECISION") == "no"
    script = next(i for i, word in enumerate(manifest["argv"]) if word.endswith("train_network.py"))
    assert saw["argv"] == manifest["argv"][script + 1:] and saw["cwd"] == str(run)  # after the gate: as if direct
    assert "ACCELERATE_DEBUG_MODE" not in saw["env"] and "WORLD_SIZE" not in saw["env"]

    again = invoke("train", "-r", "64", *TINY)  # the same request finds the finished run and skips it
    assert again.exit_code == 0
    assert "already finished" in again.output and len(seen(fake)) == 1
    assert not (run / "logs" / "train.1.log").exists()


@pytest.mark.slow
def test_failing_trainer_exit_code_and_log_tail(fake, isolated_project, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_FAIL_AT_STEP", "3")
    result = invoke("train", "-r", "64", *TINY)
    assert result.exit_code == 5
    assert "RuntimeError: fake trainer failure at step 3" in result.output  # the log tail is shown
    assert "failed: trainer exited with code 1" in result.output
    manifest = manifest_of(only_run(isolated_project))
    assert manifest["status"] == "failed" and manifest["attempt"]["exit_code"] == 1
    assert any("fake trainer failure" in line for line in manifest["attempt"]["log_tail"])
    assert len(manifest["attempt"]["log_tail"]) <= 30


def test_an_empty_image_dir_is_refused_before_launch(fake, isolated_project):
    empty = isolated_project / "empty_images"
    empty.mkdir()
    run = hand_run(isolated_project, empty)
    result = invoke("train", "--run", str(run))  # refused before launch: the trainer would "succeed" with nothing
    assert result.exit_code == 2 and "does not exist" not in result.output
    assert "sd-scripts would print 'No data found' and exit 0" in result.output and not seen(fake)
    assert manifest_of(run)["status"] == "planned"


def _wait_for(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_ctrl_c_stops_the_group_marks_interrupted_then_resume_finishes(fake, isolated_project):
    from bespoke.dataset.synthetic import write_dataset

    images = isolated_project / "imgs"
    write_dataset(images, count=4, seed=2)
    run = hand_run(isolated_project, images, save_state=True, epochs=3)
    env = {**os.environ, "FAKE_TRAINER_HANG_AT_STEP": "5"}  # 2 steps per epoch: hangs in epoch 3
    cmd = [sys.executable, "-m", "bespoke", "train", "--run", str(run)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert _wait_for(lambda: len(seen(fake)) == 1 and (run / "model" / "hand-000002-state").is_dir()
                         and "epoch 3/3" in (run / "logs" / "train.log").read_text())
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does to bespoke's foreground group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err
    trainer_pid = seen(fake)[0]["pid"]
    assert _wait_for(lambda: not _alive(trainer_pid), 10), "the trainer outlived bespoke"
    manifest = manifest_of(run)
    assert manifest["status"] == "interrupted" and manifest["epochs_done"] == 2
    assert manifest["attempt"]["signal"] == "SIGINT"
    assert not (run / ".lock.json").exists()  # the holder's record goes with the OS lock

    result = invoke("train", "--run", str(run))  # no hang now: resumes from the epoch-2 state
    assert result.exit_code == 0, result.output
    assert "resuming from hand-000002-state" in result.output
    assert seen(fake)[1]["resume"].endswith("hand-000002-state")
    manifest = manifest_of(run)
    assert manifest["status"] == "finished" and manifest["epochs_done"] == 3
    assert manifest["attempt"]["argv"][-2:] == ["--resume", "model/hand-000002-state"]
    assert manifest["attempt"]["number"] == 2 and manifest["attempt"]["resumed_from"] == "hand-000002-state"
    assert (run / "logs" / "train.1.log").exists()  # the interrupted session's log is kept


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); it is not running
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


# ---------------------------------------------------------------- resume rules and the lock (no launch)


def test_interrupted_run_without_state_needs_restart_then_restart_keeps_old_work(fake, isolated_project,
                                                                                  monkeypatch):
    from bespoke.dataset.synthetic import write_dataset
    from bespoke.run import train as training

    write_dataset(isolated_project / "imgs", count=2, seed=2)
    run = hand_run(isolated_project, isolated_project / "imgs")
    model = run / "model"
    model.mkdir()
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(2, "float32")}, str(model / "hand-000001.safetensors"),
              metadata={"ss_epoch": "1", "ss_steps": "2"})
    old_work = (model / "hand-000001.safetensors").read_bytes()
    (run / "logs").mkdir()
    (run / "logs" / "train.log").write_text("old log\n")
    change_manifest(run, status="interrupted")
    result = invoke("train", "--run", str(run))
    assert result.exit_code == 4, result.output
    assert "no *-state folder to resume from" in result.output and "--restart" in result.output
    assert (model / "hand-000001.safetensors").read_bytes() == old_work
    assert manifest_of(run)["status"] == "interrupted"

    calls = []
    monkeypatch.setattr(training, "launch_spec_for", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(
        RuntimeError("stop before launching")))
    with pytest.raises(RuntimeError, match="stop before launching"):
        training.train_run(training_settings(), run, training.TrainOptions(restart=True, preflight=False))
    assert (run / "model.prev-1" / "hand-000001.safetensors").read_bytes() == old_work
    assert (run / "logs" / "train.1.log").read_text() == "old log\n"


def training_settings():
    from bespoke.settings import load_settings

    return load_settings()


HOLDER = r"""
import sys, time
from pathlib import Path
from bespoke.run.lock import RunLock
from bespoke.run.paths import RunPaths
with RunLock(RunPaths(Path(sys.argv[1])), "hand"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_concurrent_invocation_is_refused_while_the_holder_lives(fake, isolated_project):
    run = hand_run(isolated_project, isolated_project / "imgs")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        before = (run / "run.json").read_bytes()
        result = invoke("train", "--run", str(run))
        assert result.exit_code == 4
        assert f"run hand is in use by pid {holder.pid}" in result.output
        assert (run / "run.json").read_bytes() == before and len(seen(fake)) == 0
    finally:
        holder.kill()
        holder.wait()
    # the OS released the lock with its dead holder: no takeover step, the next one simply gets it
    from bespoke.run.lock import RunLock

    with RunLock(RunPaths(run), "hand") as lock:
        assert lock.previous["pid"] == holder.pid


def test_a_dead_holders_record_is_replaced_and_the_lock_is_exclusive(isolated_project):
    import socket

    from bespoke.run.lock import RunLock, record_path

    paths = RunPaths(isolated_project / "r")
    paths.root.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record_path(paths).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started_at": "x",
                                              "trainer_pid": dead.pid}))
    with RunLock(paths, "r"):
        assert json.loads(record_path(paths).read_text())["pid"] == os.getpid()
        with pytest.raises(Exception, match=f"in use by pid {os.getpid()}"):
            RunLock(paths, "r").acquire()
    assert not record_path(paths).exists()


def test_no_takeover_while_the_previous_trainer_lives(isolated_project):
    import socket

    from bespoke.errors import RunError
    from bespoke.run.lock import RunLock, record_path
    from bespoke.run.proctree import start_time

    paths = RunPaths(isolated_project / "r")
    paths.root.mkdir()
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record_path(paths).write_text(json.dumps({"pid": 999999, "host": socket.gethostname(), "started_at": "x",
                                                  "trainer_pid": orphan.pid,
                                                  "trainer_started": start_time(orphan.pid)}))
        with pytest.raises(RunError, match=f"previous attempt \\(pid {orphan.pid}\\) is still running"):
            RunLock(paths, "r", orphan_wait=0.3).acquire()
    finally:
        orphan.kill()
        orphan.wait()
    with RunLock(paths, "r", orphan_wait=0.3):
        pass


def test_a_lock_from_another_host_is_never_taken(isolated_project):
    from bespoke.errors import RunError
    from bespoke.run.lock import RunLock, record_path

    paths = RunPaths(isolated_project / "r")
    paths.root.mkdir()
    record_path(paths).write_text(json.dumps({"pid": 1, "host": "other-machine", "started_at": "x"}))
    with pytest.raises(RunError, match="on other-machine"):
        RunLock(paths, "r").acquire()
    assert "other-machine" in record_path(paths).read_text()


# ---------------------------------------------------------------- process runner


SCRIPT = r"""
import sys, time
sys.stdout.write("epoch 1/2\n"); sys.stdout.flush()
for i in range(1, 4):
    sys.stderr.write(f"\rsteps:  {i*33}%|###| {i}/3 [00:0{i}<00:01, 1.00it/s, avr_loss=0.{i}]"); sys.stderr.flush()
sys.stderr.write("\n"); sys.stdout.write("saving checkpoint: /x/a-000001.safetensors\r\n")
sys.stdout.buffer.write(b"\xff tail without newline")
"""


def test_runner_logs_every_byte_and_splits_lines_on_cr_and_lf(tmp_path):
    from bespoke.run.runner import rotate_log, run_logged

    log = tmp_path / "logs" / "train.log"
    log.parent.mkdir()
    log.write_text("older\n")
    assert rotate_log(log).name == "train.1.log"
    log.write_text("old\n")
    assert rotate_log(log).name == "train.2.log" and (tmp_path / "logs" / "train.1.log").read_text() == "older\n"
    lines = []
    result = run_logged([sys.executable, "-c", SCRIPT], dict(os.environ), log,
                        on_line=lambda stream, line: lines.append((stream, line)))
    assert result.exit_code == 0 and not result.interrupted
    data = log.read_bytes()
    assert b"\rsteps:  66%|###| 2/3" in data and b"\xff tail without newline" in data
    assert ("stdout", "epoch 1/2") in lines
    assert [line for s, line in lines if s == "stderr"] == [
        f"steps:  {i * 33}%|###| {i}/3 [00:0{i}<00:01, 1.00it/s, avr_loss=0.{i}]" for i in range(1, 4)]
    assert ("stdout", "saving checkpoint: /x/a-000001.safetensors") in lines
    # the unterminated tail is delivered, last on its stream (the two streams are read by two threads, so
    # their lines interleave in any order)
    assert [line for s, line in lines if s == "stdout"][-1] == "\ufffd tail without newline"


STUBBORN = r"""
import os, signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def test_stop_escalates_to_sigkill_for_the_whole_group(tmp_path):
    import threading

    from bespoke.run.runner import run_logged

    stop = threading.Event()
    pids = []

    def on_line(stream, line):
        if line.strip().isdigit():
            pids.append(int(line))
            stop.set()

    result = run_logged([sys.executable, "-c", STUBBORN], dict(os.environ), tmp_path / "t.log", on_line=on_line,
                        stop=stop, stop_timeouts=(0.3, 0.3))
    assert result.interrupted and result.exit_code == -signal.SIGKILL
    assert _wait_for(lambda: not _alive(pids[0]), 30), "grandchild survived"


# ---------------------------------------------------------------- progress parsing


def test_parse_trainer_lines():
    from bespoke.kohya.output import (
        CheckpointSaved,
        EpochStarted,
        NoData,
        StepProgress,
        TrainingInfo,
        parse_line,
    )

    step = parse_line("steps:  42%|████▏     | 5/12 [00:03<00:04,  1.60it/s, avr_loss=0.123]")
    assert step == StepProgress(5, 12, 3.0, 4.0, 0.123)
    assert parse_line("steps:   0%|          | 0/12 [00:00<?, ?it/s]") == StepProgress(0, 12, 0.0, None, None)
    assert parse_line("epoch 3/10") == EpochStarted(3, 10)
    assert parse_line("saving checkpoint: /o/m/x-000003.safetensors") == CheckpointSaved("/o/m/x-000003.safetensors")
    assert parse_line("  total optimization steps / 学習ステップ数: 120") == TrainingInfo(total_steps=120)
    assert isinstance(parse_line("2026 ERROR No data found. Please verify arguments"), NoData)
    assert parse_line("override steps. steps for 10 epochs is / 指定エポックまでのステップ数: 120") is None
    assert parse_line("epoch is incremented. current_epoch: 0, epoch: 1") is None


def test_log_tail_collapses_tqdm_redraws(tmp_path):
    from bespoke.kohya.output import log_tail

    log = tmp_path / "train.log"
    log.write_bytes(b"[bespoke] $ cmd\nline one\r\nsteps: 1/3\rsteps: 2/3\rsteps: 3/3\nTraceback\n" +
                    b"".join(f"x{i}\n".encode() for i in range(40)))
    tail = log_tail(log, 30)
    assert len(tail) == 30 and tail[-1] == "x39"
    assert log_tail(log, 100)[:3] == ["line one", "steps: 3/3", "Traceback"]


def _view_events(run_id="r1"):
    """What a run tells its observer: spawned, an epoch began, a step, a checkpoint and a sample, the end."""
    from bespoke.run import events
    from bespoke.run.progress import RunProgress

    state = RunProgress(run_id)
    yield events.Started(run_id, Path("run"), 123, 1, 2)
    state.feed("stdout", "epoch 1/2")
    yield from (events.TrainerSaid(run_id, f"epoch {e.epoch}/{e.total}") for e in state.take_said())
    state.feed("stderr", "steps:  50%|##| 1/2 [00:01<00:01, 1.0it/s, avr_loss=0.5]")
    yield events.Progress(state.snapshot())
    yield events.CheckpointWritten(run_id, Path("m/x-000001.safetensors"), 1)
    yield events.SamplesWritten(run_id, (Path("m/sample/x_e000001_00_20260101000000_1.png"),))
    yield events.Progress(state.snapshot())


def test_plain_view_logs_lines_and_quiet_prints_nothing():
    import io

    from rich.console import Console

    from bespoke.cli.display import TrainView

    for quiet in (False, True):
        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=False, width=120)
        view = TrainView(console, quiet=quiet, plain_every=0.0)
        for event in _view_events():
            view(event)
        text = buffer.getvalue()
        if quiet:
            assert text == ""
        else:
            assert "epoch 1/2" in text and "checkpoint x-000001.safetensors" in text
            assert "1 new sample (epoch 1)" in text and "step 1/2 loss 0.5000" in text
            assert text.count("step 1/2 loss 0.5000") == 1  # a pipe gets a line only when it changed


def test_trainer_error_skips_accelerates_wrapper():
    from bespoke.kohya.output import trainer_error

    tail = ["Traceback (most recent call last):", "RuntimeError: fake trainer failure at step 3",
            "Traceback (most recent call last):", "    raise subprocess.CalledProcessError(returncode=1, cmd=cmd)",
            "subprocess.CalledProcessError: Command '[...]' returned non-zero exit status 1."]
    assert trainer_error(tail) == "RuntimeError: fake trainer failure at step 3"
    assert trainer_error(["2026-01-01 ERROR extra keys not allowed"]) is None
    assert trainer_error(["ERROR    No data found."]) == "ERROR    No data found."


def test_live_view_on_a_terminal_draws_the_bar_and_messages():
    import io

    from rich.console import Console

    from bespoke.cli.display import TrainView

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, highlight=False)
    view = TrainView(console)
    for event in _view_events():
        view(event)
    assert view.bar is not None
    view.bar.refresh()
    text = buffer.getvalue()
    assert "r1 epoch 1/2" in text and "step 1/2" in text and "loss 0.5000" in text
    assert "checkpoint x-000001.safetensors" in text


@pytest.mark.parametrize("args, message", [
    (("train",), "give -r RESOLUTION"),
    (("train", "--run", "outputs/x", "-r", "64"), "--run trains an existing run folder"),
    (("train", "-r", "64", "--gpus", "0,0"), "distinct GPU"),
    (("sweep", "--shard", "5/4"), "--shard 5/4"),
    (("sweep", "-r", "512,100"), "'100' is not one of"),
])
def test_bad_flags_are_usage_errors_and_create_nothing(isolated_project, args, message):
    result = invoke(*args)
    assert result.exit_code == 2 and message in result.output
    assert not (isolated_project / "outputs").exists()


@pytest.mark.parametrize("checkout", [None, "empty"])
def test_train_without_a_checkout_stops_before_launching(isolated_project, tmp_path, checkout):
    from bespoke.dataset.synthetic import write_dataset

    write_dataset(isolated_project / "datasets" / "bespoke_punks", count=4, seed=5)
    args = []
    if checkout:
        (tmp_path / checkout).mkdir()
        args = ["--sd-scripts", str(tmp_path / checkout)]
    result = CliRunner().invoke(main, [*args, "train", "-r", "64", *TINY])
    assert result.exit_code == 2
    expected = "no sd-scripts checkout configured" if checkout is None else f"{checkout}: no train_network.py"
    assert expected in result.output
    run = only_run(isolated_project)
    assert manifest_of(run)["status"] == "planned"  # nothing launched, nothing changed but the plan
    assert not (run / "model").exists() and not (run / ".lock").exists()
