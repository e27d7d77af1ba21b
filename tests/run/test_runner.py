"""The supervisor's pieces: a normal exit reaps what the trainer left behind and keeps every line; signals are
recorded (never raised mid-write) with their conventional exit codes; a process tree remembers a grandchild
whose parent died; a stop goes to the trainer (the launcher's child) and never to the launcher while the trainer
runs, waits (bounded) while the trainer's gate says it is saving, and is recorded signal by signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from bespoke.run.proctree import ProcessTree, process_alive
from bespoke.run.runner import Hooks, ProcessSpec, StopSignals, run_logged
from bespoke.run.stopping import StopPolicy, TrainerState

LEAVES_A_CHILD = r"""
import subprocess, sys
# a background child that inherits stdout and would keep the log open for a minute
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("child", child.pid, flush=True)
for i in range(500):
    print(f"line {i}")
sys.stdout.write("last line without a newline")
"""


def _spec(tmp_path, script: str, policy: StopPolicy | None = None, *args: str) -> ProcessSpec:
    return ProcessSpec((sys.executable, "-c", script, *args), dict(os.environ), tmp_path / "t.log",
                       policy=policy or StopPolicy())


def test_a_normal_exit_kills_what_the_trainer_left_and_keeps_every_line(tmp_path):
    lines = []
    started = time.monotonic()
    result = run_logged(_spec(tmp_path, LEAVES_A_CHILD), Hooks(on_line=lines.append))
    assert result.exit_code == 0 and not result.interrupted and result.stop is None
    assert time.monotonic() - started < 20  # not stalled on the child
    child = int(next(line for line in lines if line.startswith("child")).split()[1])
    assert not process_alive(child)
    text = (tmp_path / "t.log").read_text()
    assert all(f"line {i}\n" in text for i in range(500)) and "last line without a newline" in text
    assert lines[-1] == "last line without a newline" and text.rstrip().endswith("[bespoke] exit code 0")


def test_signals_are_recorded_with_their_exit_codes():
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)):
        with StopSignals() as signals:
            os.kill(os.getpid(), sig)
            time.sleep(0.05)  # delivered at the next bytecode: recorded, nothing raised
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert signals.signum == sig and signals.count == 2 and signals.exit_code == code
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handlers are restored


ORPHANING = r"""
import subprocess, sys
# SIGINT's default action restored: a shell's background job (`cmd &`, no job control) starts with SIGINT ignored,
# and the grandchild would inherit that
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                          "time.sleep(60)"], start_new_session=True)
print(child.pid, flush=True)
"""


def test_a_tree_remembers_a_grandchild_whose_parent_exited(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", ORPHANING + "import time; time.sleep(1)"],
                              stdout=subprocess.PIPE)
    grandchild = int(parent.stdout.readline())
    tree = ProcessTree(parent.pid)  # sees the grandchild while its parent lives
    parent.wait()
    assert process_alive(grandchild)  # re-parented, no longer a descendant of anything we started
    assert tree.stop((5.0, 5.0)) == "graceful"  # returns once gone; the grace only bounds a loaded box
    assert not process_alive(grandchild)


IGNORES_SIGINT_AND_SIGTERM = r"""
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_second_ctrl_c_skips_the_grace_period(tmp_path):
    def ctrl_c_twice(line):
        if line == "ready":
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
            threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()

    started = time.monotonic()
    result = run_logged(_spec(tmp_path, IGNORES_SIGINT_AND_SIGTERM, StopPolicy(30.0, 30.0)),
                        Hooks(on_line=ctrl_c_twice))
    assert result.interrupted and result.signum == signal.SIGINT and result.exit_code == -signal.SIGKILL
    assert result.stop.ended == "kill" and result.stop.asked_by == "SIGINT"
    # one SIGINT to the trainer, then one SIGKILL to each process of the tree: nothing sent after a SIGKILL
    killed = [s.pid for s in result.stop.sent if s.signal == "SIGKILL"]
    assert [s.signal for s in result.stop.sent] == ["SIGINT"] + ["SIGKILL"] * len(killed)
    assert len(set(killed)) == len(killed) and result.pid in killed
    assert time.monotonic() - started < 15  # not the 60 s of grace it would get after one Ctrl-C


# A launcher like accelerate 1.16's: it catches SIGINT/SIGTERM itself and would SIGTERM its child at once; it
# writes down every signal it gets. Its child, the "trainer", unwinds 0.5 s after its SIGINT.
LAUNCHER = r"""
import json, signal, subprocess, sys, time
record = sys.argv[1]
def caught(signum, frame):
    with open(record, "a") as out:
        out.write(json.dumps({"launcher_got": signum, "child_alive": child.poll() is None}) + "\n")
    child.terminate()
signal.signal(signal.SIGINT, caught); signal.signal(signal.SIGTERM, caught)
child = subprocess.Popen([sys.executable, "-c", sys.argv[2]])
child.wait()
sys.exit(1 if child.returncode else 0)
"""
TRAINER = r"""
import signal, sys, time
got = []
signal.signal(signal.SIGINT, lambda s, f: got.append(s))
print("ready", flush=True)
while not got:
    time.sleep(0.05)
time.sleep(0.5)
print(f"[bespoke gate] ended: KeyboardInterrupt (SIGINT) (pid 1)", flush=True)
sys.exit(3)
"""


def test_the_stop_goes_to_the_trainer_and_the_launcher_exits_by_itself(tmp_path):
    stop = threading.Event()
    record = tmp_path / "launcher.jsonl"
    told: list[tuple[str, int]] = []
    result = run_logged(_spec(tmp_path, LAUNCHER, StopPolicy(10.0, 5.0), str(record), TRAINER),
                        Hooks(on_line=lambda line: line == "ready" and stop.set(), stop=stop,
                              on_stopping=lambda asked_by: told.append((asked_by, threading.get_ident()))))
    assert told == [("stop request", threading.get_ident())]  # once, as the stop began, on the calling thread
    assert not record.exists(), record.read_text()  # the launcher was never signalled
    assert result.exit_code == 1  # the launcher's own: its child failed
    assert result.stop.asked_by == "stop request" and result.stop.ended == "graceful"
    assert [(s.signal, s.role) for s in result.stop.sent] == [("SIGINT", "trainer")]
    assert result.stop.sent[0].pid != result.pid and 0.4 < result.stop.trainer_seconds < 5
    assert result.trainer_end.how == "KeyboardInterrupt (SIGINT)" and result.trainer_end.source == "gate"
    log = (tmp_path / "t.log").read_text()
    assert f"SIGINT to pid {result.stop.sent[0].pid} (trainer" in log and "(stopped by bespoke: stop request" in log


# torchrun's elastic agent (accelerate launch --multi_gpu) runs inside the launcher and starts one worker per rank;
# each rank here starts a data-loader worker of its own, which a stop leaves to its rank (a rank ends its workers)
RANKS_LAUNCHER = r"""
import json, signal, subprocess, sys
record = sys.argv[1]
def caught(signum, frame):
    with open(record, "a") as out:
        out.write(json.dumps({"launcher_got": signum}) + "\n")
signal.signal(signal.SIGINT, caught); signal.signal(signal.SIGTERM, caught)
ranks = [subprocess.Popen([sys.executable, "-c", sys.argv[2], record, str(rank)]) for rank in range(2)]
sys.exit(max(rank.wait() for rank in ranks))
"""
RANK = r"""
import json, signal, subprocess, sys, time
record, rank = sys.argv[1], sys.argv[2]
worker = subprocess.Popen([sys.executable, "-c", "import json, signal, sys, time\n"
    "signal.signal(signal.SIGINT, lambda s, f: open(sys.argv[1], 'a').write(json.dumps({'worker_got': s}) + '\\n'))\n"
    "time.sleep(60)", record])
got = []
signal.signal(signal.SIGINT, lambda s, f: got.append(s))
print(f"rank {rank} ready", flush=True)
while not got:
    time.sleep(0.02)
with open(record, "a") as out:
    out.write(json.dumps({"rank": rank, "got": got}) + "\n")
worker.kill()
print(f"[bespoke gate] ended: KeyboardInterrupt (SIGINT) (pid 1, rank {rank})", flush=True)
sys.exit(3)
"""


def test_a_multi_gpu_stop_goes_to_every_rank_and_never_to_the_agent(tmp_path):
    stop, ready = threading.Event(), set()

    def on_line(line: str) -> None:
        if line.endswith(" ready"):
            ready.add(line)
            if len(ready) == 2:
                stop.set()

    record = tmp_path / "got.jsonl"
    result = run_logged(_spec(tmp_path, RANKS_LAUNCHER, StopPolicy(10.0, 5.0), str(record), RANK),
                        Hooks(on_line=on_line, stop=stop))
    got = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(g["rank"] for g in got if "rank" in g) == ["0", "1"]
    assert all(g["got"] == [signal.SIGINT] for g in got if "rank" in g)
    assert not [g for g in got if "launcher_got" in g or "worker_got" in g], got  # the agent and workers: nothing
    assert result.stop.ended == "graceful" and [(s.signal, s.role) for s in result.stop.sent] == [
        ("SIGINT", "trainer"), ("SIGINT", "trainer")]
    assert len({s.pid for s in result.stop.sent}) == 2 and result.pid not in {s.pid for s in result.stop.sent}


BUSY_TRAINER = r"""
import signal, sys, time
got = []
signal.signal(signal.SIGINT, lambda s, f: got.append(s)); signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
print("[bespoke gate] busy: saving the state of epoch 1", flush=True)
print("ready", flush=True)
while not got:
    time.sleep(0.01)
print("[bespoke gate] deferred: SIGINT while saving the state of epoch 1; …", flush=True)
time.sleep(float(sys.argv[1]))
print("[bespoke gate] done: saving the state of epoch 1 (2.00 s)", flush=True)
sys.exit(0 if got == [signal.SIGINT] else 9)
"""


def _stop_when_ready(stop):
    return Hooks(on_line=lambda line: line == "ready" and stop.set(), stop=stop)


@pytest.mark.slow  # ~2.5 s: the save it waits for
def test_the_grace_waits_while_the_trainer_saves(tmp_path):
    stop = threading.Event()
    result = run_logged(_spec(tmp_path, BUSY_TRAINER, StopPolicy(0.5, 0.5, busy_limit=30.0), "2"),
                        _stop_when_ready(stop))
    # a grace of 0.5 s, a save of 2 s: no SIGTERM, the save was waited for
    assert result.stop.ended == "graceful" and [s.signal for s in result.stop.sent] == ["SIGINT"]
    assert result.stop.waited_for == ["saving the state of epoch 1"] and result.stop.trainer_seconds > 1.5
    assert result.exit_code == 0


def test_the_wait_for_a_save_is_bounded(tmp_path):
    stop = threading.Event()
    started = time.monotonic()
    result = run_logged(_spec(tmp_path, BUSY_TRAINER, StopPolicy(0.3, 0.3, busy_limit=1.0), "60"),
                        _stop_when_ready(stop))
    assert result.stop.ended == "kill" and [s.signal for s in result.stop.sent] == ["SIGINT", "SIGTERM", "SIGKILL"]
    assert time.monotonic() - started < 10  # grace 0.3 + at most 1.0 busy + terminate 0.3, never the 60 s save


def test_the_trainer_state_reads_the_gate_lines_and_the_last_words():
    state = TrainerState()
    for line in ("epoch 1/3", "[bespoke gate] busy: saving checkpoint model/x-000001.safetensors",
                 "[bespoke] +0.00 s: SIGINT to pid 5 (trainer; stop asked by SIGTERM)",
                 "[bespoke gate] deferred: SIGINT while saving checkpoint model/x-000001.safetensors; …"):
        state.feed(line)
    # busy with the section the gate named; its deferral line does not start another one
    assert state.busy() == "saving checkpoint model/x-000001.safetensors" and state.sections == [
        "saving checkpoint model/x-000001.safetensors"]
    for line in ("[bespoke gate] done: saving checkpoint model/x-000001.safetensors (0.40 s)", "last words",
                 "[bespoke gate] ended: exit 1 (RuntimeError: boom) (pid 12, rank 0)", "launcher traceback"):
        state.feed(line)
    end = state.trainer_end()
    assert state.busy() is None and end.how == "exit 1 (RuntimeError: boom)" and end.exit_code == 1
    assert end.last_lines == ["epoch 1/3", "last words"]  # bespoke's own lines and the launcher's left out
    killed = TrainerState()
    killed.feed("subprocess.CalledProcessError: Command '[...]' died with <Signals.SIGKILL: 9>.")
    assert killed.trainer_end().how == "killed (SIGKILL)" and killed.trainer_end().source == "launcher"
    assert json.dumps(end.__dict__)  # plain values: it goes into run.json as is
