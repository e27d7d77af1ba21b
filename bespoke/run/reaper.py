"""The watchdog of one trainer: `python -m bespoke.run.reaper BESPOKE_PID BESPOKE_START TRAINER_PID TRAINER_START
TOKEN LOG [RUN]` (TOKEN: the tree token in the trainer's environment, bespoke.run.proctree; LOG: the train.log
the trainer writes; RUN: the run folder, or "" for none).

`bespoke.run.runner` starts it next to every trainer, in a session of its own. It exits as soon as the trainer
is gone while bespoke lives (bespoke then does its own bookkeeping). If bespoke dies first — kill -9, the OOM
killer, a crash of the interpreter — it stops the trainer exactly as bespoke would (bespoke.run.stopping: the
trainer first, a save or sampling in progress waited for, as the log the trainer writes says), records each
signal in that log, and settles the run's run.json from what is on disk, with the stop's record and the
trainer's own end, so no trainer outlives its supervisor and no run stays `running`. Pids are checked together
with their start times, so a recycled pid is never taken for them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bespoke.run.proctree import ProcessTree, process_alive
from bespoke.run.resume import settle_run
from bespoke.run.stopping import LogFollower, Stopper, StopPolicy, append_line, state_from_log

POLL_SECONDS = 0.2


def _number(text: str) -> float | None:
    return None if text in ("", "None") else float(text)


def _stop(tree: ProcessTree, log_path: Path, bespoke_pid: int, run_dir: Path | None) -> None:
    """bespoke is gone: stop its trainer from what the log says now, then settle run.json."""
    state, offset = state_from_log(log_path)
    follower = LogFollower(log_path, offset, state.feed).start()
    append_line(log_path, f"bespoke (pid {bespoke_pid}) died while the trainer ran; its watchdog stops the trainer")
    record = Stopper(tree, state, StopPolicy(), lambda text: append_line(log_path, text), "bespoke died").run()
    follower.finish()
    end = state.trainer_end(record.sent)
    append_line(log_path, f"the trainer: {end.how} (the watchdog's record)")
    if run_dir is not None:
        settle_run(run_dir, f"bespoke (pid {bespoke_pid}) died while training; its watchdog stopped the trainer",
                   stop=record, trainer_end=end)


def watch(bespoke_pid: int, bespoke_started: float | None, trainer_pid: int, trainer_started: float | None,
          token: str | None, log_path: Path, run_dir: Path | None) -> int:
    """Watch until the trainer ends (0) or bespoke dies (stop the tree, settle run.json; 1)."""
    tree = ProcessTree(trainer_pid, token)
    polls = 0
    while process_alive(bespoke_pid, bespoke_started):
        if not process_alive(trainer_pid, trainer_started) and not tree.alive():
            return 0
        polls += 1
        if polls % 5 == 0:
            tree.refresh()
        time.sleep(POLL_SECONDS)
    _stop(tree, log_path, bespoke_pid, run_dir)
    return 1


def main(argv: list[str]) -> int:
    bespoke_pid, bespoke_started, trainer_pid, trainer_started, token, log_path = argv[:6]
    run_dir = Path(argv[6]) if len(argv) > 6 and argv[6] else None
    return watch(int(bespoke_pid), _number(bespoke_started), int(trainer_pid), _number(trainer_started), token,
                 Path(log_path), run_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
