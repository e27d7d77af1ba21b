"""The supervisor's pieces: a normal exit reaps what the trainer left behind and keeps every line; signals are
recorded (never raised mid-write) with their conventional exit codes; a process tree remembers a grandchild
whose parent died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from bespoke.run.proctree import ProcessTree, process_alive
from bespoke.run.runner import StopSignals, run_logged

LEAVES_A_CHILD = r"""
import subprocess, sys
# a background child that inherits stdout and would keep the pipe open (and the readers waiting) for a minute
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("child", child.pid, flush=True)
for i in range(500):
    print(f"line {i}")
sys.stdout.write("last line without a newline")
"""


def test_a_normal_exit_kills_what_the_trainer_left_and_keeps_every_line(tmp_path):
    lines = []
    started = time.monotonic()
    result = run_logged([sys.executable, "-c", LEAVES_A_CHILD], dict(os.environ), tmp_path / "t.log",
                        on_line=lambda stream, line: lines.append(line))
    assert result.exit_code == 0 and not result.interrupted
    assert time.monotonic() - started < 20  # not stalled on the pipe the child held
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
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
print(child.pid, flush=True)
"""


def test_a_tree_remembers_a_grandchild_whose_parent_exited(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", ORPHANING + "import time; time.sleep(1)"],
                              stdout=subprocess.PIPE)
    grandchild = int(parent.stdout.readline())
    tree = ProcessTree(parent.pid)  # sees the grandchild while its parent lives
    parent.wait()
    assert process_alive(grandchild)  # re-parented, no longer a descendant of anything we started
    assert tree.stop((0.5, 0.5)) == "graceful"
    assert not process_alive(grandchild)


IGNORES_SIGINT_AND_SIGTERM = r"""
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_second_ctrl_c_skips_the_grace_period(tmp_path):
    import threading

    def ctrl_c_twice(stream, line):
        if line == "ready":
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
            threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()

    started = time.monotonic()
    result = run_logged([sys.executable, "-c", IGNORES_SIGINT_AND_SIGTERM], dict(os.environ), tmp_path / "t.log",
                        on_line=ctrl_c_twice, stop_timeouts=(30.0, 30.0))
    assert result.interrupted and result.signum == signal.SIGINT and result.exit_code == -signal.SIGKILL
    assert time.monotonic() - started < 15  # not the 60 s of grace it would get after one Ctrl-C
