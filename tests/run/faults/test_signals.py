"""SIGINT, SIGTERM and SIGHUP at startup, mid-epoch, while a checkpoint or a state is written, and while an epoch's
samples are drawn; a second Ctrl-C while samples are drawn; kill -9 of bespoke. For each: bespoke's exit code,
the stop run.json records (who asked, each signal sent to whom and when, how the trainer ended and why it
took that long), what is on disk afterwards, no process of the trainer left, and the same command run again
continuing to a finished run without losing an epoch or a sample. Never the launcher's exit code: that is
accelerate's (faultkit.TESTED_ACCELERATE: sd-scripts' 1.6.0 and the newest, 1.16.0; .ci/run runs this module
under both).

The signal cases run four at a time (each in its own folder) so the suite stays quick on two cores. What a re-run
does is decided by what is on disk (bespoke.run.resume), so the three signals at one moment must leave the same
folder — asserted — and a stop while the trainer saves or samples must leave the folder a stop just after the
epoch end leaves (the save and the sampling are completed first) — asserted too. One case per moment is re-run.
Set BESPOKE_FAULT_TABLE=path to get the measured table as Markdown (conftest.py).
"""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import accelerate
import pytest
from faultkit import (
    EPOCHS,
    PROMPTS,
    TESTED_ACCELERATE,
    deliver,
    describe_stop,
    disk_state,
    launch,
    log_text,
    make_run,
    seen,
    stop_line,
    trainers,
    wait_for,
)

from bespoke.run.paths import RunPaths

pytestmark = pytest.mark.slow  # every case launches a trainer (and bespoke) and signals it

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}
SLOW = "6"  # seconds the fake spends in the save or sampling the stop lands in (3 s was missed once on a loaded 2-core box)


def _said(text: str):
    return lambda run: text in log_text(run)


def _after_epoch_1(run: Path) -> bool:
    return "epoch 2/3" in log_text(run) and (run / "model" / "hand-000001-state" / "random_states_0.pkl").is_file()


# where -> (fake trainer knobs, "the moment has come", what the trainer was busy with then)
MOMENTS = {
    "startup": ({"FAKE_TRAINER_HANG_IN": "startup"}, _said("fake trainer: hanging in startup"), None),
    "mid-epoch": ({"FAKE_TRAINER_HANG_AT_STEP": "3"}, _after_epoch_1, None),
    "checkpoint save": ({"FAKE_TRAINER_SLOW_IN": "save", "FAKE_TRAINER_SLOW_SECONDS": SLOW},
                        _said("fake trainer: slow in save"), "saving checkpoint model/hand-000001.safetensors"),
    "state save": ({"FAKE_TRAINER_SLOW_IN": "state", "FAKE_TRAINER_SLOW_SECONDS": SLOW},
                   _said("fake trainer: slow in state"), "saving the state of epoch 1"),
    "sampling": ({"FAKE_TRAINER_SLOW_IN": "sample", "FAKE_TRAINER_SLOW_SECONDS": SLOW},
                 _said("fake trainer: slow in sample"), "drawing the samples of epoch 1"),
}
CASES = [(s, w) for w in MOMENTS for s in SIGNALS]
RERUN = {("SIGINT", "startup"), ("SIGTERM", "mid-epoch"), ("SIGHUP", "checkpoint save"), ("SIGINT", "state save"),
         ("SIGTERM", "sampling")}


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
    fault_table.append(f"| (accelerate {accelerate.__version__}; tested on {', '.join(TESTED_ACCELERATE)}) | | | | |")
    for (sig_name, where), row in rows.items():
        rerun = f"{row['rerun_exit']}: {row['final'].describe()}" if "final" in row else "(same folder as the re-run one)"
        fault_table.append(f"| {sig_name} at {where} | {row['after'].describe()}; {describe_stop(row['after'])} | "
                           f"{row['exit']} | {row['stop_s']:.2f} s | {rerun} |")
    return rows


def _assert_the_recorded_stop(row: dict, sig_name: str, where: str) -> None:
    """run.json and train.log say who asked, that SIGINT went to the trainer (never to the launcher while the
    trainer ran), that it unwound by itself, and what it waited for."""
    after = row["after"]
    stop, end = after.stop, after.trainer_end
    assert stop["asked_by"] == sig_name and after.attempt["signal"] == sig_name
    assert stop["ended"] == "graceful" and stop["sent"][0]["signal"] == "SIGINT" and stop["sent"][0]["role"] == "trainer"
    assert not [s for s in stop["sent"] if s["role"] == "launcher" and s["at_s"] < stop["trainer_seconds"]]
    assert all(stop_line(s) in row["log"] for s in stop["sent"])
    assert end["how"] == "KeyboardInterrupt (SIGINT)" and end["source"] == "gate" and end["last_lines"]
    busy = MOMENTS[where][2]
    if busy is None:
        assert stop["waited_for"] == [], stop
    else:  # the save or sampling it landed in (and whatever of the epoch end came after it) was completed
        assert stop["waited_for"][0].startswith(busy) or busy in stop["waited_for"], stop
        assert re.search(rf"deferred: SIGINT while {re.escape(busy)}", row["log"]), row["log"][-2000:]


@pytest.mark.parametrize("sig_name,where", CASES)
def test_signal_stops_the_trainer_as_recorded_and_the_rerun_continues(signal_rows, sig_name, where):
    row = signal_rows[(sig_name, where)]
    after = row["after"]
    assert row["exit"] == 128 + SIGNALS[sig_name], row["stderr"]
    assert f"stopped by {sig_name}" in row["stderr"] and "Traceback" not in row["stderr"]
    assert f"stopping the trainer ({sig_name})" in row["stderr"]  # the Stopping event, as the stop began
    assert row["stop_s"] < 30
    _assert_the_recorded_stop(row, sig_name, where)
    assert after.status == "interrupted" and not row["orphans"], "a process of the trainer outlived bespoke"
    assert not after.lock_record
    assert all(after.checkpoints.values()) and not after.cut_states and not after.missing  # no cut file, no hole
    if where == "startup":
        assert after.epochs_done == 0 and "the next run starts over" in row["stderr"]
    else:  # a stop in the epoch end leaves what a stop right after it leaves: epoch 1 whole, samples and all
        assert after.describe() == signal_rows[(sig_name, "mid-epoch")]["after"].describe()
        assert after.epochs_done == 1 and after.samples == {"0": PROMPTS, "1": PROMPTS}
        assert "the next run resumes after epoch 1 (hand-000001-state)" in row["stderr"]
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
    assert final.samples == {str(e): PROMPTS for e in range(EPOCHS + 1)}  # every epoch, every prompt, once
    resumed = where != "startup"
    assert (final.attempt["resumed_from"] == "hand-000001-state") == resumed, row["rerun_out"]
    # a resumed sd-scripts redraws "before training" with the resumed LoRA: moved aside, never counted as epoch 0
    assert final.resume_samples == (PROMPTS if resumed else 0) and final.attempt["filled_samples"] == []


def _second_ctrl_c_while_sampling(root: Path, run: Path):
    """Ctrl-C while epoch 1's samples are drawn, and again once bespoke has sent the trainer its SIGINT."""
    proc = launch(root, run, FAKE_TRAINER_SLOW_IN="sample", FAKE_TRAINER_SLOW_SECONDS="30")
    try:
        assert wait_for(lambda: "fake trainer: slow in sample" in log_text(run), 240)
        os.killpg(proc.pid, signal.SIGINT)
        assert wait_for(lambda: "SIGINT to pid" in log_text(run), 30)
        os.killpg(proc.pid, signal.SIGINT)  # again: no more patience
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    after = disk_state(run)
    assert proc.returncode == 130 and not trainers(run)
    assert after.stop["ended"] == "kill" and after.trainer_end["how"] == "killed (SIGKILL)"
    # SIGINT to the trainer, then at the second Ctrl-C one SIGKILL to each process left: nothing after a SIGKILL
    sent = [(s["signal"], s["role"]) for s in after.stop["sent"]]
    assert sent[0] == ("SIGINT", "trainer") and sorted(sent[1:]) == [("SIGKILL", "launcher"), ("SIGKILL", "trainer")]
    assert after.samples.get("1") == 1 and after.missing == {"1": [1]} and after.epochs_done == 1
    return proc.returncode, after, err.decode()


def test_a_second_ctrl_c_while_sampling_kills_and_the_resume_fills_the_missing_samples(tmp_path, fault_table):
    """A hard stop while an epoch's samples are drawn loses the rest of them (sd-scripts never redraws an
    epoch); run.json and the message say which, and the resume puts in place the redraw of its state's weights."""
    run = make_run(tmp_path)
    code, after, err = _second_ctrl_c_while_sampling(tmp_path, run)
    assert after.samples == {"0": PROMPTS, "1": 1}
    assert "epoch 1 lacks the samples of prompt(s) 1 (the resume redraws them from its state)" in err
    again = launch(tmp_path, run)
    out, err2 = again.communicate(timeout=300)
    final = disk_state(run)
    fault_table.append(f"| second Ctrl-C while epoch 1's samples are drawn | {after.describe()}; "
                       f"{describe_stop(after)} | {code} | - | {again.returncode}: {final.describe()}; "
                       f"filled {final.attempt['filled_samples']} |")
    assert again.returncode == 0, (out + err2).decode()
    assert final.status == "finished" and final.samples == {str(e): PROMPTS for e in range(EPOCHS + 1)}
    assert not final.missing and len(final.attempt["filled_samples"]) == 1 and "lacks" not in err2.decode()
    filled = run / final.attempt["filled_samples"][0]
    assert re.fullmatch(r"hand_e000001_01_\d{14}_2\.png", filled.name)  # as sd-scripts names epoch 1, prompt 1
    redrawn = run / "model" / "sample" / "resume-2" / filled.name.replace("_e000001_", "_e000000_")
    assert redrawn.read_bytes() == filled.read_bytes()


def test_without_sample_at_first_the_lost_samples_stay_missing_and_every_message_says_so(tmp_path, fault_table):
    run = make_run(tmp_path)
    training = RunPaths(run).training_toml
    training.write_text(training.read_text().replace("sample_at_first = true", "sample_at_first = false"))
    code, after, err = _second_ctrl_c_while_sampling(tmp_path, run)
    lost = "epoch 1 lacks the samples of prompt(s) 1 (they cannot be redrawn)"
    assert after.samples == {"1": 1} and lost in err
    again = launch(tmp_path, run)
    out, err2 = again.communicate(timeout=300)
    final = disk_state(run)
    fault_table.append(f"| second Ctrl-C while sampling, no sample_at_first | {after.describe()} | {code} | - | "
                       f"{again.returncode}: {final.describe()} |")
    assert again.returncode == 0, (out + err2).decode()
    assert final.status == "finished" and final.samples == {"1": 1, "2": PROMPTS, "3": PROMPTS}
    assert final.missing == {"1": [1]} and final.attempt["filled_samples"] == [] and final.attempt["reason"] == lost
    assert f"warning: {lost}" in err2.decode()


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
    # the watchdog stopped the trainer the way bespoke would have, and recorded it
    assert after.stop["asked_by"] == "bespoke died" and after.stop["ended"] == "graceful"
    assert [(s["signal"], s["role"], s["pid"]) for s in after.stop["sent"]][0] == ("SIGINT", "trainer", trainer)
    assert after.trainer_end["how"] == "KeyboardInterrupt (SIGINT)" and after.trainer_end["source"] == "gate"
    # the trainer wrote its log itself: its last words are there though bespoke was gone
    log = log_text(run)
    assert "[bespoke gate] ended: KeyboardInterrupt (SIGINT)" in log and "KeyboardInterrupt" in log.split(
        "its watchdog stops the trainer")[1]
    assert "the trainer: KeyboardInterrupt (SIGINT) (the watchdog's record)" in log
    again = launch(tmp_path, run)
    out, err = again.communicate(timeout=300)
    final = disk_state(run)
    fault_table.append(f"| kill -9 of bespoke mid-epoch | {after.describe()}; {describe_stop(after)} (reaper: trainer "
                       f"gone after {reaped:.2f} s) | -9 | - | {again.returncode}: {final.describe()} |")
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
    assert after.stop["asked_by"] == "SIGHUP" and after.stop["ended"] == "graceful"
    assert after.stop["sent"][0]["signal"] == "SIGINT" and after.stop["sent"][0]["role"] == "trainer"
    assert after.checkpoints == {"hand-000001.safetensors": True} and after.states == ["hand-000001-state"]
