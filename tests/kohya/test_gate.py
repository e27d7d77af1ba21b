"""gate.py's stop guard on its own (in a child Python: it installs signal handlers): a stop outside any section is a
KeyboardInterrupt at once; inside a save or sampling it waits for the end; after a save it lingers for the next
section of the epoch end (at most two more); after an epoch's samples it takes effect at once; after the last
epoch it is held until the final checkpoint, and then the trainer just ends. (That gate.py imports only the standard
library and runs in a bare interpreter: tests/test_layout.py.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bespoke.kohya.preflight import GATE_NO_CHECK, GATE_PREFIX, GATE_SCRIPT, parse_gate_line

HARNESS = r"""
import importlib.util, os, signal, sys, time
spec = importlib.util.spec_from_file_location("gate", sys.argv[1])
gate = importlib.util.module_from_spec(spec); spec.loader.exec_module(gate)
guard = gate.StopGuard(linger=0.3)
guard.install()
def section(what, seconds, **end):
    started = guard.begin(what)
    time.sleep(seconds)
    guard.end(what, started, **end)
def stop():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler runs at the next bytecode
def idle(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)
try:
    exec(sys.argv[2])
    print("RESULT no stop", flush=True)
except KeyboardInterrupt:
    print("RESULT KeyboardInterrupt", flush=True)
"""

CASES = {
    # a stop outside any section: at once
    "idle": ("stop(); idle(2)", "KeyboardInterrupt", []),
    # inside a save: after it, once the linger found no next section
    "save": ("started = guard.begin('saving checkpoint a'); stop(); time.sleep(0.5); print('STILL RUNNING', flush=True);"
             " guard.end('saving checkpoint a', started); idle(2)", "KeyboardInterrupt", ["STILL RUNNING"]),
    # checkpoint -> state -> samples of one epoch end: all three completed
    "epoch end": ("started = guard.begin('saving checkpoint a'); stop(); guard.end('saving checkpoint a', started); "
                  "section('saving the state of epoch 1', 0.1); print('STATE DONE', flush=True); "
                  "section('drawing the samples of epoch 1', 0.1, chain=False); print('NEVER', flush=True)",
                  "KeyboardInterrupt", ["STATE DONE"]),
    # no more than the epoch end's three sections: a fourth one right after is not waited for
    "chain": ("started = guard.begin('saving checkpoint a'); stop(); guard.end('saving checkpoint a', started); "
              "section('saving the state of epoch 1', 0.05); section('saving checkpoint b', 0.05); "
              "print('NEVER', flush=True)", "KeyboardInterrupt", []),
    # after the last epoch: held through the final state to the final checkpoint, then the trainer ends by itself
    "final": ("guard.holding = True; stop(); idle(0.5); section('saving the final state', 0.1); idle(0.5); "
              "section('saving checkpoint last', 0.1, final_checkpoint=True); idle(0.5)", "no stop", []),
}


@pytest.mark.parametrize("case", CASES)
def test_the_stop_guard(case, tmp_path):
    code, result, seen = CASES[case]
    done = subprocess.run([sys.executable, "-c", HARNESS, str(GATE_SCRIPT), code], capture_output=True, text=True,
                          timeout=30)
    lines = done.stdout.splitlines()
    assert f"RESULT {result}" in lines, done.stdout + done.stderr
    assert all(s in lines for s in seen) and "NEVER" not in lines, done.stdout
    events = [parse_gate_line(line) for line in lines if line.startswith(GATE_PREFIX)]
    assert all(e is not None for e in events), lines  # every gate line is one bespoke reads
    if case != "idle":
        assert any(e.kind == "deferred" for e in events), lines
    if case == "final":
        assert lines[-2] == f"{GATE_PREFIX}done: the run is complete; SIGINT was held until now and the trainer ends " \
                            "by itself"


def test_the_gate_words_check_or_only_guard():
    from bespoke.kohya.preflight import gate_words

    assert gate_words("logs/preflight.json") == (str(GATE_SCRIPT), "logs/preflight.json")
    assert gate_words(None) == (str(GATE_SCRIPT), GATE_NO_CHECK)
    import importlib.util

    spec = importlib.util.spec_from_file_location("gate_for_test", GATE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.NO_CHECK == GATE_NO_CHECK and module.PREFIX == GATE_PREFIX  # the two sides agree
