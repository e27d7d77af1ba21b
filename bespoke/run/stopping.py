"""How bespoke stops a trainer, whatever its launcher does — used by the supervisor (bespoke.run.runner) and by
the watchdog that outlives a killed bespoke (bespoke.run.reaper).

The stop is for the trainer, not for `accelerate launch`: SIGINT goes to the launcher's children (the trainer;
each rank's worker under torchrun's agent; the launcher itself only while it has started none). accelerate
1.6.0's launcher then just waits for its child and 1.16's tees the child's stderr to the end, and both exit by
themselves; the launcher is never signalled while the trainer runs (1.16's would SIGTERM the trainer at once:
FACTS §11). Inside the trainer, bespoke's gate (bespoke/kohya/gate.py) turns the SIGINT into a KeyboardInterrupt
at a safe point: while a checkpoint or a state is written, or samples drawn, the stop waits, and the gate says so
on stdout. The grace period (`StopPolicy.grace`) does not run while the trainer is busy that way, for at most
`StopPolicy.busy_limit` seconds in all; then SIGTERM, `terminate` seconds, SIGKILL. Once the trainer is gone the
launcher gets `launcher_wait` seconds to exit before what is left of the tree is terminated, then killed. A
second Ctrl-C (`hurry`) kills the whole tree at once. (busy_limit is 300 s: an epoch's samples at 512 px take
tens of seconds on a GPU; a CPU box under load took 130 s for two 64 px ones; the user is told, and a second
Ctrl-C does not wait.) Every signal is one `[bespoke]` line in train.log and one
`SignalSent` of the attempt's `StopRecord`.

The trainer's output reaches bespoke through its log file (`LogFollower`), which the launcher writes directly,
so a killed bespoke loses none of it; `TrainerState` reads the gate's lines and the trainer's last words from it.
"""

from __future__ import annotations

import codecs
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bespoke import progress
from bespoke.kohya.preflight import parse_gate_line
from bespoke.run.manifest import SignalSent, StopRecord, TrainerEnd
from bespoke.run.proctree import SIGNAL_NAMES, ProcessTree

_SPLIT = re.compile(r"\r\n|\r|\n")
LAST_LINES = 12
_ENDED = re.compile(r"^(?:exit (?P<code>-?\d+)|KeyboardInterrupt \((?P<signal>\w+)\))")
KILLED_WAIT = 5.0  # seconds a SIGKILLed trainer gets to be gone (the real one took over 2 s under load)
_LAUNCHER_SAYS = (re.compile(r"died with <Signals\.(?P<signal>SIG\w+)"),
                  re.compile(r"returned non-zero exit status (?P<code>-?\d+)"))


@dataclass(frozen=True)
class StopPolicy:
    """The stated grace periods of a stop, in seconds."""

    grace: float = 10.0  # after the trainer's SIGINT, before SIGTERM (paused while it saves or samples)
    terminate: float = 5.0  # after SIGTERM, before SIGKILL
    busy_limit: float = 300.0  # the most a save or sampling in progress adds to the grace
    launcher_wait: float = 5.0  # after the trainer is gone, for the launcher to exit by itself


def append_line(log_path: Path, text: str) -> None:
    """One `[bespoke] text` line appended to the log (best effort: the disk may be what failed)."""
    try:
        with open(log_path, "ab") as log:
            log.write(f"[bespoke] {text}\n".encode())
    except OSError:
        pass


class LineSplitter:
    """Incremental UTF-8 decoding and line splitting (on \\n and \\r, so tqdm updates count)."""

    def __init__(self, on_line: Callable[[str], object]):
        self.on_line = on_line
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self.pending + self.decoder.decode(data, final=final)
        hold = ""
        if not final and text.endswith("\r"):  # may be the first half of \r\n: wait for the next chunk
            text, hold = text[:-1], "\r"
        parts = _SPLIT.split(text)
        rest = parts.pop()
        if final and rest:
            parts.append(rest)
            rest = ""
        self.pending = rest + hold
        for line in parts:
            if line.strip():
                try:
                    self.on_line(line)
                except Exception:  # noqa: BLE001 - a display bug must never stop the supervision
                    pass


class LogFollower:
    """Reads a log file from `offset` as it grows (a thread), handing each complete line to `on_line`."""

    POLL = 0.05

    def __init__(self, path: Path, offset: int, on_line: Callable[[str], object]):
        self.path, self.offset = Path(path), offset
        self.splitter = LineSplitter(on_line)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def start(self) -> LogFollower:
        self.thread.start()
        return self

    def _follow(self) -> None:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            while True:
                data = log.read(65536)
                if data:
                    self.splitter.feed(data)
                    continue
                if self.done.is_set():
                    break
                time.sleep(self.POLL)
        self.splitter.feed(b"", final=True)

    def finish(self, timeout: float = 30.0) -> None:
        """Read what is left (the writers are gone) and stop."""
        self.done.set()
        self.thread.join(timeout)


class TrainerState:
    """What the trainer's lines say: whether the gate is busy (saving, sampling), the sections it announced,
    how the trainer ended, and its last lines. Fed from the follower's thread; read from the supervisor's."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.busy_text: str | None = None
        self.sections: list[str] = []
        self.ended: str | None = None
        self.lines: deque[str] = deque(maxlen=LAST_LINES)
        self.last_words: list[str] | None = None
        self.launcher_said: tuple[str, str] | None = None
        self.deferred_at: int | None = None  # index in `sections` of the one the gate first deferred a stop in

    def waited_for(self) -> list[str]:
        """The sections the gate made the stop wait for: from the one it was deferred in on."""
        with self.lock:
            return list(self.sections[self.deferred_at:]) if self.deferred_at is not None else []

    def feed(self, line: str) -> None:
        gate = parse_gate_line(line)
        with self.lock:
            if gate is None:
                if not line.startswith("[bespoke]"):
                    self.lines.append(line.rstrip())
                    for pattern in _LAUNCHER_SAYS:
                        if found := pattern.search(line):
                            self.launcher_said = next((k, v) for k, v in found.groupdict().items() if v)
                return
            if gate.kind == "ended" and self.ended is None:
                self.ended, self.last_words = gate.text, list(self.lines)
            if gate.kind == "busy":
                self.busy_text = gate.text
                self.sections.append(gate.text)
            elif gate.kind == "deferred":  # the section goes on (its name is in the busy line before it)
                if self.deferred_at is None:  # the stop waits from this section on
                    self.deferred_at = len(self.sections) - (1 if self.busy_text else 0)
                self.busy_text = self.busy_text or gate.text
            else:
                self.busy_text = None

    def busy(self) -> str | None:
        with self.lock:
            return self.busy_text

    def freeze(self) -> None:
        """The trainer is gone: what follows in the log is the launcher's."""
        with self.lock:
            if self.last_words is None:
                self.last_words = list(self.lines)

    def trainer_end(self, sent: list[SignalSent] | None = None) -> TrainerEnd:
        """From the gate's last line; else from bespoke's SIGKILL; else from the launcher's report."""
        with self.lock:
            words = list(self.last_words if self.last_words is not None else self.lines)
            if self.ended is not None:
                found = _ENDED.match(self.ended)
                code = int(found["code"]) if found and found["code"] else None
                died = "SIGINT" if found and found["signal"] else None  # an uncaught KeyboardInterrupt
                how = self.ended.rsplit(" (pid ", 1)[0]
                return TrainerEnd(how, "gate", code, died, words)
            if any(s.signal == "SIGKILL" and s.role == "trainer" for s in sent or []):
                return TrainerEnd("killed (SIGKILL)", "bespoke", None, "SIGKILL", words)
            if self.launcher_said is not None:
                key, value = self.launcher_said
                if key == "signal":
                    return TrainerEnd(f"killed ({value})", "launcher", None, value, words)
                return TrainerEnd(f"exit {value}", "launcher", int(value), None, words)
            return TrainerEnd("unknown", "unknown", None, None, words)


def state_from_log(log_path: Path, tail_bytes: int = 262144) -> tuple[TrainerState, int]:
    """A TrainerState of what the log's tail says now, and the offset to follow it from (the reaper's start)."""
    state = TrainerState()
    try:
        with open(log_path, "rb") as log:
            log.seek(0, 2)
            end = log.tell()
            log.seek(max(end - tail_bytes, 0))
            LineSplitter(state.feed).feed(log.read(), final=True)
    except OSError:
        end = 0
    return state, end


class Stopper:
    """One stop of one trainer tree (see the module docstring); `run()` returns its record."""

    def __init__(self, tree: ProcessTree, state: TrainerState, policy: StopPolicy, note: Callable[[str], None],
                 asked_by: str, hurry: Callable[[], bool] = lambda: False):
        self.tree, self.state, self.policy, self.note = tree, state, policy, note
        self.asked_by, self.hurry = asked_by, hurry
        self.sent: list[SignalSent] = []
        self.trainer_pids: set[int] = set()
        self.killed: set[int] = set()
        self.told: str | None = None
        self.started = time.monotonic()
        state.deferred_at = None  # what this stop waits for is what the gate defers it for

    def _send(self, how: str, processes: list) -> None:
        """Send `how` to `processes` and record it; never anything to a process after its SIGKILL."""
        for process in self.tree.send(how, [p for p in processes if p.pid not in self.killed]):
            at = round(time.monotonic() - self.started, 3)
            record = SignalSent(SIGNAL_NAMES[how], process.pid, self._role(process.pid), at)
            self.sent.append(record)
            if how == "kill":
                self.killed.add(process.pid)
            self.note(f"+{at:.2f} s: {record.signal} to pid {record.pid} ({record.role}; stop asked by "
                      f"{self.asked_by})")

    def _role(self, pid: int) -> str:
        if pid == self.tree.pid:
            return "launcher"
        return "trainer" if pid in self.trainer_pids else "other"

    def _watch_busy(self, now: float, last: float, extended: float) -> float:
        """While the gate says the trainer saves or samples, the grace waits (up to busy_limit); returns the
        seconds added so far."""
        busy = self.state.busy()
        if busy is None or extended >= self.policy.busy_limit:
            return extended
        if busy != self.told:
            self.told = busy
            progress.say(f"the trainer is {busy}: the stop waits until that is complete (at most "
                         f"{self.policy.busy_limit:.0f} s; press Ctrl-C again to kill it now)", "warning")
        return extended + (now - last)

    def _stop_trainer(self) -> str:
        """SIGINT the trainer, SIGTERM after the grace, SIGKILL after that; returns how it went."""
        phases = iter((("terminate", self.policy.terminate), ("kill", 0.0)))
        how, deadline, extended, last = "graceful", self.started + self.policy.grace, 0.0, self.started
        reached: dict[int, str] = {}
        child_seen = False
        while True:
            now = time.monotonic()
            self.tree.refresh()
            targets = self.tree.trainers()
            child_seen = child_seen or any(p.pid != self.tree.pid for p in targets)
            if child_seen:
                targets = [p for p in targets if p.pid != self.tree.pid]
                self.trainer_pids |= {p.pid for p in targets}
            if self.hurry():
                self._send("kill", self.tree.alive())
                return "kill"
            if not targets:
                return how if self.sent else "exited"
            self._send(how, [p for p in targets if reached.get(p.pid) != how])
            reached.update({p.pid: how for p in targets})
            grown = self._watch_busy(now, last, extended)
            deadline, extended, last = deadline + (grown - extended), grown, now
            if now >= deadline:
                how, seconds = next(phases)
                deadline = now + seconds
                if how == "kill":
                    self._send("kill", self.tree.alive())
                    return "kill"
            time.sleep(0.05)

    def _gone_within(self, seconds: float, patient: bool = True, only: set[int] | None = None) -> bool:
        """True once nothing of the tree (of `only`, when given) runs; False after `seconds`, or at a second
        Ctrl-C while `patient`."""
        end = time.monotonic() + seconds
        while True:
            self.tree.refresh()
            if not [p for p in self.tree.alive() if only is None or p.pid in only]:
                return True
            if time.monotonic() >= end or (patient and self.hurry()):
                return False
            time.sleep(0.05)

    def _stop_leftovers(self, killed: bool) -> None:
        """The trainer is gone: the launcher exits by itself (launcher_wait); whatever is left is stopped. After a
        kill, only what the SIGKILL did not reach is sent one."""
        if not killed:
            if self._gone_within(self.policy.launcher_wait):
                return
            self._send("terminate", self.tree.alive())
            if self._gone_within(self.policy.terminate):
                return
        self._send("kill", self.tree.alive())
        self.tree.kill()  # and wait (briefly) until the tree is gone

    def run(self) -> StopRecord:
        self.tree.refresh()
        self.tree.find_token()
        ended = self._stop_trainer()
        if ended == "kill":  # a SIGKILLed trainer takes a moment to be gone (its memory freed)
            self._gone_within(KILLED_WAIT, patient=False, only=self.trainer_pids or None)
        trainer_seconds = round(time.monotonic() - self.started, 3)
        self.state.freeze()
        self._stop_leftovers(killed=ended == "kill")
        waited_for = self.state.waited_for()
        record = StopRecord(self.asked_by, ended, list(self.sent), trainer_seconds,
                            round(time.monotonic() - self.started, 3), waited_for)
        waited = f"; it waited for: {', '.join(waited_for)}" if waited_for else ""
        self.note(f"stop asked by {self.asked_by}: the trainer was gone after {trainer_seconds:.2f} s ({ended})"
                  f"{waited}")
        return record
