"""`--on-finish CMD`: one command when a run or a sweep ends, whatever the outcome, e.g. to stop paying for the
rented GPU (`runpodctl stop pod $RUNPOD_POD_ID`).

CMD is split the way a shell splits words (shlex), `$NAME` / `${NAME}` expanded from the environment, and run
without a shell (bespoke.run.runner.run_capture: pipes, `&&` and redirections need `sh -c '...'`), exactly once,
when the command ends: finished, stopped-early, failed, interrupted (Ctrl-C, SIGTERM, SIGHUP) or crashed (an
error in bespoke itself). Only `kill -9` of bespoke skips it: nothing runs after SIGKILL. Its environment is
bespoke's, plus the outcome:

BESPOKE_OUTCOME (finished | stopped-early | failed | interrupted | crashed), BESPOKE_EXIT_CODE (what bespoke
exits with), BESPOKE_KIND (run | sweep), BESPOKE_RUN and BESPOKE_RUN_DIR (a run), BESPOKE_RUNS (a sweep's run
ids), BESPOKE_BEST_EPOCH, BESPOKE_COST_USD (when known). Its output goes to stderr; it may take up to
TIMEOUT_SECONDS (a pod-stop command may end bespoke itself first, which is fine).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from types import TracebackType

from bespoke import progress
from bespoke.errors import BespokeError, Interrupted, UsageError
from bespoke.run.runner import run_capture

TIMEOUT_SECONDS = 600.0
_NAME = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def parse_command(text: str | None) -> list[str] | None:
    """The command's words (not yet expanded), None for no command; a one-line UsageError when it cannot be split."""
    if text is None or not text.strip():
        return None
    try:
        return shlex.split(text)
    except ValueError as error:
        raise UsageError(f"--on-finish {text!r}: {error}; quote it as a shell would") from error


class OnFinish:
    """Runs the command once when the `with` block ends (see the module docstring); `record` what ended."""

    def __init__(self, command: str | None, kind: str = "run"):
        self.words = parse_command(command)
        self.kind = kind
        self.facts: dict[str, str] = {}
        self.status: str | None = None
        self.ran = False

    def record(self, status: str | None = None, **facts: object) -> None:
        """The outcome as far as it is known (a run's status), and facts for the environment (BESPOKE_<KEY>)."""
        if status is not None:
            self.status = status
        self.facts.update({f"BESPOKE_{k.upper()}": str(v) for k, v in facts.items() if v is not None})

    def __enter__(self) -> OnFinish:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        outcome, code = _outcome(self.status, error)
        self.run(outcome, code)

    def run(self, outcome: str, exit_code: int) -> None:
        if self.words is None or self.ran:
            return
        self.ran = True
        env = {**os.environ, **self.facts, "BESPOKE_OUTCOME": outcome, "BESPOKE_EXIT_CODE": str(exit_code),
               "BESPOKE_KIND": self.kind}
        argv = [expand(word, env) for word in self.words]
        progress.say(f"on-finish ({outcome}): {shlex.join(argv)}")
        done = run_capture(argv, timeout=TIMEOUT_SECONDS, env=env)
        for text in (done.stdout, done.stderr):
            if text.strip():
                sys.stderr.write(text if text.endswith("\n") else text + "\n")
        if done.exit_code != 0:
            progress.say(f"on-finish: the command exited {done.exit_code}", "warning")


def expand(word: str, env: dict[str, str]) -> str:
    """`$NAME` and `${NAME}` replaced from `env` (the outcome variables included); unknown names stay as they are."""
    return _NAME.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), word)


def _outcome(status: str | None, error: BaseException | None) -> tuple[str, int]:
    """(outcome, bespoke's exit code) from the recorded status and what ended the block."""
    if isinstance(error, Interrupted):
        return "interrupted", error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(error, SystemExit):
        code = error.code if isinstance(error.code, int) else 1
        return (status or ("finished" if code == 0 else "failed")), code
    if isinstance(error, BespokeError):
        return (status if status in ("failed", "interrupted") else "failed"), error.exit_code
    if error is not None:
        return "crashed", 1
    return status or "finished", 0
