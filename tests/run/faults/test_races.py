"""Two bespoke processes racing for the same run: exactly one trains, every time. The lock acquisition itself
is raced 100 times between two fresh processes (half of the rounds over a dead holder's record, the case where
the old pid-file lock let both "take over"), and whole `bespoke train` commands are raced a few times."""

from __future__ import annotations

import json
import multiprocessing
import socket
import subprocess
import time
from pathlib import Path

import pytest
from faultkit import disk_state, launch, make_run, seen, trainers

from bespoke.errors import RunError
from bespoke.run.lock import RunLock, record_path
from bespoke.run.paths import RunPaths

ROUNDS = 100


def _racer(run_dir: str, start, attempted, results) -> None:
    start.wait()
    try:
        lock = RunLock(RunPaths(Path(run_dir)), "race", orphan_wait=0.0).acquire()
    except RunError:
        results.put("lost")
        attempted.wait()
        return
    results.put("won")
    attempted.wait()  # hold the lock until the other one has tried
    lock.release()


@pytest.mark.slow
def test_the_lock_acquisition_raced_100_times_has_exactly_one_winner(tmp_path, fault_table):
    context = multiprocessing.get_context("fork")
    dead = subprocess.Popen(["true"])
    dead.wait()
    winners = []
    started = time.monotonic()
    for round_number in range(ROUNDS):
        paths = RunPaths(tmp_path / f"r{round_number}")
        paths.root.mkdir()
        if round_number % 2:  # a holder that died, and its trainer too: both racers see a stale record
            record_path(paths).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                      "started_at": "x", "trainer_pid": dead.pid}))
        start, attempted, results = context.Barrier(2), context.Barrier(2), context.Queue()
        racers = [context.Process(target=_racer, args=(str(paths.root), start, attempted, results))
                  for _ in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=30)
        outcome = sorted(results.get(timeout=5) for _ in racers)
        winners.append(outcome.count("won"))
        assert outcome == ["lost", "won"], f"round {round_number}: {outcome}"
        assert not record_path(paths).exists()  # the winner's record went with its lock
    fault_table.append(f"| two processes racing for the lock, {ROUNDS} rounds (half over a dead holder's record) "
                       f"| exactly one winner in {winners.count(1)}/{ROUNDS} rounds "
                       f"({time.monotonic() - started:.1f} s) | loser: RunError (exit 4) | - | - |")


@pytest.mark.slow
def test_two_whole_train_commands_racing_train_once(tmp_path, fault_table):
    for round_number in range(2):
        root = tmp_path / f"round{round_number}"
        root.mkdir()
        run = make_run(root)
        first, second = launch(root, run), launch(root, run)
        codes = []
        outputs = []
        for proc in (first, second):
            out, err = proc.communicate(timeout=300)
            codes.append(proc.returncode)
            outputs.append((out + err).decode(errors="replace"))
        final = disk_state(run)
        assert len(seen(root)) == 1, outputs  # exactly one trainer was launched
        assert sorted(codes) in ([0, 4], [0, 0]), outputs  # the other: "in use" (4) or "already finished" (0)
        assert final.status == "finished" and not trainers(run)
        fault_table.append(f"| two `bespoke train --run` started together (round {round_number + 1}) | "
                           f"{final.describe()}; trainer launched once | {sorted(codes)} | - | - |")
