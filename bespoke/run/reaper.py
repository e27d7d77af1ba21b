"""The watchdog of one trainer: `python -m bespoke.run.reaper BESPOKE_PID BESPOKE_START TRAINER_PID TRAINER_START
TOKEN [RUN]` (TOKEN: the tree token in the trainer's environment, bespoke.run.proctree).

`bespoke.run.runner` starts it next to every trainer, in a session of its own. It exits as soon as the trainer
is gone while bespoke lives (bespoke then does its own bookkeeping). If bespoke dies first — kill -9, the OOM
killer, a crash of the interpreter — it stops the trainer's whole process tree (graceful, then forced) and
settles the run's run.json from what is on disk, so no trainer outlives its supervisor and no run stays
`running`. Pids are checked together with their start times, so a recycled pid is never taken for them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bespoke.run.proctree import DEFAULT_GRACE, ProcessTree, process_alive
from bespoke.run.resume import settle_run

POLL_SECONDS = 0.2


def _number(text: str) -> float | None:
    return None if text in ("", "None") else float(text)


def watch(bespoke_pid: int, bespoke_started: float | None, trainer_pid: int, trainer_started: float | None,
          token: str | None, run_dir: Path | None) -> int:
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
    tree.stop(DEFAULT_GRACE)
    if run_dir is not None:
        settle_run(run_dir, f"bespoke (pid {bespoke_pid}) died while training; its watchdog stopped the trainer")
    return 1


def main(argv: list[str]) -> int:
    bespoke_pid, bespoke_started, trainer_pid, trainer_started, token = argv[:5]
    run_dir = Path(argv[5]) if len(argv) > 5 else None
    return watch(int(bespoke_pid), _number(bespoke_started), int(trainer_pid), _number(trainer_started), token,
                 run_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
