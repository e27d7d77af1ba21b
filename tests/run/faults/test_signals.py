"""SIGINT, SIGTERM and SIGHUP at startup, mid-epoch, during a checkpoint save and during sampling; kill -9 of
bespoke. For each: the exit code, what is on disk afterwards, no process of the trainer left, and the same
command run again continues to a finished run without losing an epoch.

The twelve signal cases run four at a time (each in its own folder) so the suite stays quick on two cores.
What a re-run does is decided by what is on disk (bespoke.run.resume), so the three signals at one moment must
leave the same folder — asserted — and one of them per moment (each signal at least once) is re-run.
Set BESPOKE_FAULT_TABLE=path to get the measured table as Markdown (conftest.py).
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from faultkit import (
    EPOCHS,
    PROMPTS,
    deliver,
    disk_state,
    launch,
    log_text,
    make_run,
    seen,
    trainers,
    wait_for,
)

pytestmark = pytest.mark.slow  # every case launches a trainer (and bespoke) and signals it

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}


def _hanging(where: str):
    return lambda run: f"fake trainer: hanging in {where}" in log_text(run)


# where -> (fake trainer knobs, "the moment has come", the run resumes from a state folder afterwards)
MOMENTS = {
    "startup": ({"FAKE_TRAINER_HANG_IN": "startup"}, _hanging("startup"), False),
    "mid-epoch": ({"FAKE_TRAINER_HANG_AT_STEP": "3"},
                  lambda run: "epoch 2/3" in log_text(run) and (run / "model" / "hand-000001-state").is_dir(), True),
    "checkpoint save": ({"FAKE_TRAINER_HANG_IN": "save"}, _hanging("save"), False),
    "sampling": ({"FAKE_TRAINER_HANG_IN": "sample"}, _hanging("sample"), True),
}
CASES = [(s, w) for w in MOMENTS for s in SIGNALS]
RERUN = {("SIGINT", "startup"), ("SIGTERM", "mid-epoch"), ("SIGHUP", "checkpoint save"), ("SIGTERM", "sampling")}


def _signal_case(base: Path, sig_name: str, where: str) -> dict:
    root = base / f"{sig_name}-{where.replace(' ', '-')}"
    root.mkdir()
    run = make_run(root)
    knobs, ready, _ = MOMENTS[where]
    proc = launch(root, run, **knobs)
    try:
        assert wait_for(lambda: ready(run), 240), f"never reached {where}: {log_text(run)[-800:]}"
        sent = time.monotonic()
        deliver(proc, SIGNALS[sig_name])
        _out, err = proc.communicate(timeout=300)
        stop_seconds = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    row = {"exit": proc.returncode, "stop_s": stop_seconds, "stderr": err.decode(errors="replace"),
           "log": log_text(run), "after": disk_state(run), "orphans": [p.pid for p in trainers(run)]}
    if (sig_name, where) in RERUN:
        again = launch(root, run)
        out, err = again.communicate(timeout=300)
        row.update(rerun_exit=again.returncode, rerun_out=(out + err).decode(errors="replace"),
                   final=disk_state(run), final_orphans=[p.pid for p in trainers(run)], launches=len(seen(root)))
    return row


@pytest.fixture(scope="module")
def signal_rows(tmp_path_factory, fault_table) -> dict:
    base = tmp_path_factory.mktemp("signals")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(_signal_case, base, *case) for case in CASES}
        rows = {case: future.result() for case, future in futures.items()}
    for (sig_name, where), row in rows.items():
        rerun = f"{row['rerun_exit']}: {row['final'].describe()}" if "final" in row else "(same folder as the re-run one)"
        fault_table.append(f"| {sig_name} at {where} | {row['after'].describe()} | {row['exit']} | "
                           f"{row['stop_s']:.2f} s | {rerun} |")
    return rows


@pytest.mark.parametrize("sig_name,where", CASES)
def test_signal_stops_the_tree_marks_interrupted_and_the_rerun_continues(signal_rows, sig_name, where):
    row = signal_rows[(sig_name, where)]
    after = row["after"]
    assert row["exit"] == 128 + SIGNALS[sig_name], row["stderr"]
    assert f"stopped by {sig_name}" in row["stderr"] and "Traceback" not in row["stderr"]
    # the fake unwinds on the graceful SIGINT (the launcher's exit code says so): no escalation was needed
    assert "[bespoke] exit code -2 (stopped by bespoke" in row["log"] and row["stop_s"] < 30
    assert after.status == "interrupted" and after.attempt["signal"] == sig_name
    assert not row["orphans"], "a process of the trainer outlived bespoke"
    assert not after.lock_record
    assert all(after.checkpoints.values()) or where == "checkpoint save"
    if where == "checkpoint save":  # the half-written file is not work done
        assert after.checkpoints == {"hand-000001.safetensors": False} and after.epochs_done == 0
    rerun = next(r for (s, w), r in signal_rows.items() if w == where and "final" in r)
    assert after.describe() == rerun["after"].describe()  # every signal leaves the same folder behind
    if "final" not in row:
        return
    # the same command continues: finished, every epoch's checkpoint whole, the untrained samples kept
    final = row["final"]
    assert row["rerun_exit"] == 0, row["rerun_out"]
    assert final.status == "finished" and final.epochs_done == EPOCHS and not row["final_orphans"]
    assert final.checkpoints == {"hand-000001.safetensors": True, "hand-000002.safetensors": True,
                                 "hand.safetensors": True}
    assert final.states == ["hand-000002-state", "hand-state"]  # save_last_n_epochs_state = 1: bounded disk
    assert final.samples["0"] == PROMPTS and final.samples["2"] == final.samples["3"] == PROMPTS
    resumed = MOMENTS[where][2]
    assert (final.attempt["resumed_from"] == "hand-000001-state") == resumed, row["rerun_out"]
    # a resumed sd-scripts redraws "before training" with the resumed LoRA: moved aside, never counted as epoch 0
    assert final.resume_samples == (PROMPTS if resumed else 0)
    # sampling stopped after its first image: that epoch keeps 1 of its samples (the trainer never redraws it)
    assert final.samples["1"] == (1 if where == "sampling" else PROMPTS)
    if where == "checkpoint save":  # started over, the old folder (and its half file) kept aside
        assert (Path(row["final"].attempt["cwd"]) / "model.prev-1" / "hand-000001.safetensors").exists()


def test_kill_9_of_bespoke_then_the_same_command_continues(tmp_path, fault_table):
    run = make_run(tmp_path)
    proc = launch(tmp_path, run, FAKE_TRAINER_HANG_AT_STEP="3")
    try:
        assert wait_for(lambda: "epoch 2/3" in log_text(run) and (run / "model" / "hand-000001-state").is_dir(), 240)
        trainer = seen(tmp_path)[0]["pid"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        killed = time.monotonic()
        # the reaper stops the trainer's tree and settles run.json from disk
        assert wait_for(lambda: not trainers(run), 60), "the trainer outlived a kill -9 of bespoke"
        reaped = time.monotonic() - killed
        assert wait_for(lambda: disk_state(run).status == "interrupted", 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    after = disk_state(run)
    assert "died" in after.attempt["reason"] and after.epochs_done == 1 and trainer not in [p.pid for p in
                                                                                          trainers(run)]
    again = launch(tmp_path, run)
    out, err = again.communicate(timeout=300)
    final = disk_state(run)
    fault_table.append(f"| kill -9 of bespoke mid-epoch | {after.describe()} (reaper: trainer gone after {reaped:.2f} s) "
                 f"| -9 | - | {again.returncode}: {final.describe()} |")
    assert again.returncode == 0, (out + err).decode()
    assert final.status == "finished" and final.attempt["resumed_from"] == "hand-000001-state"
    assert not trainers(run)


def test_kill_9_and_an_immediate_rerun_waits_for_the_old_trainer_then_continues(tmp_path, fault_table):
    run = make_run(tmp_path)
    proc = launch(tmp_path, run, FAKE_TRAINER_HANG_AT_STEP="3")
    assert wait_for(lambda: "epoch 2/3" in log_text(run) and (run / "model" / "hand-000001-state").is_dir(), 240)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    again = launch(tmp_path, run)  # at once: the old trainer may still be running
    out, err = again.communicate(timeout=300)
    final = disk_state(run)
    fault_table.append(f"| kill -9 of bespoke, re-run at once | (lock free, old trainer still stopping) | -9 | - | "
                 f"{again.returncode}: {final.describe()} |")
    assert again.returncode == 0, (out + err).decode()
    assert final.status == "finished" and final.epochs_done == EPOCHS and not trainers(run)
    assert len({s["pid"] for s in seen(tmp_path)}) == 2  # never two trainers at once: the first was gone


def test_a_closed_terminal_sends_sighup_and_bespoke_exits_129_with_the_run_resumable(tmp_path, fault_table):
    import pty
    import select
    import sys

    from faultkit import make_env

    run = make_run(tmp_path)
    env = make_env(tmp_path, FAKE_TRAINER_HANG_AT_STEP="3")
    pid, terminal = pty.fork()  # bespoke on a real terminal: its live progress bar draws there
    if pid == 0:
        try:
            os.chdir(tmp_path)
            os.execve(sys.executable, [sys.executable, "-m", "bespoke", "train", "--run", str(run)], env)
        finally:
            os._exit(127)  # never run the rest of pytest in the child

    def ready() -> bool:
        while select.select([terminal], [], [], 0)[0]:  # keep the terminal drained, as a terminal does
            os.read(terminal, 65536)
        return "epoch 2/3" in log_text(run) and (run / "model" / "hand-000001-state").is_dir()

    assert wait_for(ready, 240)
    closed = time.monotonic()
    os.close(terminal)  # the SSH session drops: the kernel hangs up bespoke's session (SIGHUP)
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - closed
    after = disk_state(run)
    fault_table.append(f"| terminal closed (real pty hang-up) mid-epoch | {after.describe()} | "
                       f"{os.waitstatus_to_exitcode(status)} | {seconds:.2f} s | (same folder as SIGHUP mid-epoch) |")
    # every write to the dead terminal fails (EIO): that must not turn exit 129 into a traceback and exit 1
    assert os.waitstatus_to_exitcode(status) == 129
    assert after.status == "interrupted" and after.attempt["signal"] == "SIGHUP" and not trainers(run)
    assert after.checkpoints == {"hand-000001.safetensors": True} and after.states == ["hand-000001-state"]
