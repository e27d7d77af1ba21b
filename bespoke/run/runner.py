"""The only module that starts processes. Never through a shell. The one supervisor of the trainer and gen_img.py.

`run_logged` runs the launcher in its own session / process group with a log file (opened O_APPEND) as its
stdout and stderr: the trainer's every byte is on disk as it is written, and stays there if bespoke itself is
killed. bespoke follows the file (`bespoke.run.stopping.LogFollower`) and hands complete lines (split on \\n and
\\r, so tqdm updates count) to a callback. While it runs, SIGINT, SIGTERM and SIGHUP are *recorded*
(`StopSignals`), never raised at a random point: the loop sees them within a tick and stops the trainer as
`bespoke.run.stopping` describes (the trainer first, its saves and samplings waited for, then the launcher; a
second Ctrl-C kills at once), and the ProcessResult carries the `StopRecord` and how the trainer itself ended.
An exception in the loop (a callback writing run.json on a full disk) stops the trainer the same way before it
propagates. A normal exit kills any descendant left behind. A small watchdog process (`bespoke.run.reaper`)
stops the trainer the same way if bespoke itself is killed (kill -9), so no trainer outlives its supervisor.
`run_capture` runs a short helper command (git, the trainer's Python) and returns its output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bespoke.fsutil import move_aside
from bespoke.kohya.launch import format_command
from bespoke.run.manifest import StopRecord, TrainerEnd
from bespoke.run.proctree import TOKEN_VARIABLE, ProcessTree, start_time
from bespoke.run.stopping import LogFollower, Stopper, StopPolicy, TrainerState, append_line

LineCallback = Callable[[str], object]  # one line of the log without its terminator; the result is ignored


# every signal that means "stop": Ctrl-C, `docker stop` / `kill`, a closed terminal or dropped SSH session
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
STOP_REQUEST = "stop request"  # who asked, when `hooks.stop` did (a sweep's Ctrl-C, the run's loop)
_NEW_GROUP = {"start_new_session": True} if os.name == "posix" else {
    "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}


@dataclass(frozen=True)
class ProcessResult:
    """How a logged process ended. `exit_code` is the launcher's (the process bespoke started); `trainer_end` how
    the trainer in it ended (from its gate's last line). `interrupted` is True when bespoke stopped it (a signal
    or `stop`), `stop` says how; `signum` is the signal that asked bespoke to stop (None for `stop` or no stop)."""

    exit_code: int
    interrupted: bool
    duration: float
    pid: int
    log_path: Path
    signum: int | None = None
    stop: StopRecord | None = None
    trainer_end: TrainerEnd | None = None


@dataclass(frozen=True)
class ProcessSpec:
    """What `run_logged` starts: argv in `cwd` with `env`, its output appended to `log_path`. `env_overrides`
    is what the header line of the log shows; `run_dir` is the run the watchdog settles if bespoke dies."""

    argv: tuple[str, ...]
    env: dict[str, str]
    log_path: Path
    cwd: Path | None = None
    env_overrides: dict[str, str] | None = None
    run_dir: Path | None = None
    policy: StopPolicy = StopPolicy()


@dataclass(frozen=True)
class Hooks:
    """How the caller follows and steers a run: `on_line` from the follower thread, `on_tick` from the calling
    thread every `tick_seconds`, `on_start(pid)` right after the launch, `on_stopping(asked_by)` (calling thread)
    as a stop begins, `on_stop(record)` when it is done (also before an exception propagates); `stop` stops it
    from outside, `signals` records the stop signals (a StopSignals of its own when None)."""

    on_line: LineCallback | None = None
    on_tick: Callable[[], None] | None = None
    on_start: Callable[[int], None] | None = None
    on_stopping: Callable[[str], None] | None = None
    on_stop: Callable[[StopRecord], None] | None = None
    stop: threading.Event | None = None
    signals: StopSignals | None = None
    tick_seconds: float = 0.25


@dataclass(frozen=True)
class Captured:
    """Output of a short helper command; exit_code -1 when it could not be started or timed out."""

    exit_code: int
    stdout: str
    stderr: str


def rotate_log(path: Path) -> Path | None:
    """Move an existing log aside to the next free `<stem>.N<suffix>` (never overwriting); return its new path."""
    path = Path(path)
    if not path.exists():
        return None
    return move_aside(path, lambda n: f"{path.stem}.{n}{path.suffix}")


def run_capture(argv: list[str], timeout: float = 30.0, cwd: Path | None = None,
                env: dict[str, str] | None = None) -> Captured:
    """Run a short command and capture its output; never raises for a missing program or a timeout."""
    try:
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                              cwd=cwd, env=env, stdin=subprocess.DEVNULL, errors="replace")
    except (OSError, subprocess.SubprocessError) as exc:
        return Captured(-1, "", str(exc))
    return Captured(done.returncode, done.stdout, done.stderr)


def signal_name(signum: int | None) -> str:
    """'SIGTERM' for 15."""
    try:
        return signal.Signals(signum).name if signum is not None else STOP_REQUEST
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    """While active (main thread only), SIGINT, SIGTERM and SIGHUP are recorded, not raised: `signum` is the
    first one, `count` how many arrived (a second one skips the grace period), `event` is set at the first.
    The conventional exit code for the first is `128 + signum` (130, 143, 129). Re-entrant: nested uses share
    the outer handlers."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self.event = threading.Event()
        self._previous: dict[int, object] = {}
        self._depth = 0

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
        self.count += 1
        self.event.set()

    def __enter__(self) -> StopSignals:
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)  # type: ignore[arg-type]
            self._previous.clear()

    @property
    def exit_code(self) -> int | None:
        return 128 + self.signum if self.signum is not None else None


class SigtermAsInterrupt:
    """While active (main thread only), SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C does."""

    def __enter__(self):
        self.previous: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise KeyboardInterrupt
            for sig in STOP_SIGNALS[1:]:
                self.previous[sig] = signal.signal(sig, handler)
        return self

    def __exit__(self, *exc):
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        return False


def start_reaper(trainer_pid: int, run_dir: Path | None, token: str, log_path: Path) -> subprocess.Popen | None:
    """The watchdog that stops the trainer's tree (and settles run.json) if this bespoke dies without doing it
    (kill -9, OOM killer). It runs in its own session, so the signals meant for bespoke never reach it."""
    argv = [sys.executable, "-m", "bespoke.run.reaper", str(os.getpid()), str(start_time(os.getpid())),
            str(trainer_pid), str(start_time(trainer_pid)), token, str(log_path), str(run_dir or "")]
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, **_NEW_GROUP)
    except OSError:
        return None


@dataclass
class _Watch:
    """What the supervision loop watches: an outside stop request and the signals."""

    stop: threading.Event | None
    signals: StopSignals

    def stopping(self) -> bool:
        return self.signals.event.is_set() or (self.stop is not None and self.stop.is_set())

    def asked_by(self) -> str:
        return signal_name(self.signals.signum) if self.signals.signum is not None else STOP_REQUEST

    def hurry(self) -> bool:
        return self.signals.count >= 2  # a second Ctrl-C: no more patience

    def wait(self, proc: subprocess.Popen, seconds: float) -> None:
        """Up to `seconds`, until the process ends or a stop is asked: a stop reaches the trainer within 20 ms
        (a state save can take less than a tick)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and proc.poll() is None and not self.stopping():
            self.signals.event.wait(0.02)


@dataclass
class _Running:
    """One started launcher and what follows it."""

    proc: subprocess.Popen
    tree: ProcessTree
    state: TrainerState
    follower: LogFollower
    reaper: subprocess.Popen | None
    spec: ProcessSpec
    hooks: Hooks
    stop: StopRecord | None = None

    def stopper(self, asked_by: str, hurry: Callable[[], bool] = lambda: False) -> Stopper:
        return Stopper(self.tree, self.state, self.spec.policy, lambda text: append_line(self.spec.log_path, text),
                       asked_by, hurry)


def _supervise(run: _Running, watch: _Watch) -> StopRecord | None:
    """Wait for the launcher, ticking; stop the trainer on a stop request or a signal (its record returned) or
    an exception (stopped, then re-raised)."""
    hooks = run.hooks
    try:
        while run.proc.poll() is None:
            run.tree.refresh()
            if watch.stopping():
                if hooks.on_stopping is not None:
                    hooks.on_stopping(watch.asked_by())
                run.stop = run.stopper(watch.asked_by(), watch.hurry).run()
                return run.stop
            if hooks.on_tick is not None:
                hooks.on_tick()
            watch.wait(run.proc, hooks.tick_seconds)
    except BaseException:
        run.stop = run.stopper("crash", watch.hurry).run()
        if hooks.on_stop is not None:
            hooks.on_stop(run.stop)
        raise
    if watch.stopping():  # it ended by itself while the stop was being asked
        return StopRecord(watch.asked_by(), "exited")
    return None


def _start(spec: ProcessSpec, hooks: Hooks) -> _Running:
    """Write the log's header, start the launcher with the log as its stdout and stderr, follow the log."""
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(spec.log_path, "ab") as log:
        log.write(f"[bespoke] $ {format_command(list(spec.argv), spec.env_overrides, spec.cwd)}\n".encode())
        offset = log.tell()
    token = uuid.uuid4().hex  # inherited by everything the trainer starts: how its tree is found
    output = os.open(spec.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        proc = subprocess.Popen([str(a) for a in spec.argv], env={**spec.env, TOKEN_VARIABLE: token}, cwd=spec.cwd,
                                stdin=subprocess.DEVNULL, stdout=output, stderr=output, **_NEW_GROUP)
    finally:
        os.close(output)
    state = TrainerState()

    def on_line(line: str) -> None:
        state.feed(line)
        if hooks.on_line is not None:
            hooks.on_line(line)

    follower = LogFollower(spec.log_path, offset, on_line).start()
    return _Running(proc, ProcessTree(proc.pid, token), state, follower,
                    start_reaper(proc.pid, spec.run_dir, token, spec.log_path), spec, hooks)


def run_logged(spec: ProcessSpec, hooks: Hooks | None = None) -> ProcessResult:
    """Run `spec.argv` in its own process group, its output appended to `spec.log_path`; return how it ended.

    A signal (recorded by `hooks.signals`, or by a StopSignals of its own) or `hooks.stop` being set stops the
    trainer (bespoke.run.stopping, `spec.policy`) and returns with `interrupted=True` and the stop's record; an
    exception stops it the same way and propagates.
    """
    hooks = hooks or Hooks()
    started = time.monotonic()
    watch = _Watch(hooks.stop, hooks.signals or StopSignals())
    with watch.signals:
        run = _start(spec, hooks)
        stop: StopRecord | None = None
        try:
            if hooks.on_start is not None:
                hooks.on_start(run.proc.pid)
            stop = _supervise(run, watch)
        finally:
            _wind_up(run)
            code = run.proc.returncode if run.proc.returncode is not None else -1
            end = run.state.trainer_end(run.stop.sent if run.stop is not None else None)
            append_line(spec.log_path, _closing_line(code, end, run.stop))
        if stop is not None and hooks.on_stop is not None:
            hooks.on_stop(stop)
    if hooks.on_tick is not None:
        hooks.on_tick()
    return ProcessResult(exit_code=code, interrupted=stop is not None, duration=time.monotonic() - started,
                         pid=run.proc.pid, log_path=spec.log_path,
                         signum=watch.signals.signum if stop is not None else None, stop=stop, trainer_end=end)


def _closing_line(code: int, end: TrainerEnd, stop: StopRecord | None) -> str:
    trainer = f"; the trainer: {end.how}" if end.source != "unknown" else ""
    how = f" (stopped by bespoke: {stop.asked_by}, {stop.ended})" if stop is not None else ""
    return f"exit code {code}{how}{trainer}"


def _wind_up(run: _Running) -> None:
    """After the launcher exited: kill what it left behind, read the log to its end, let the reaper go."""
    run.proc.wait()
    run.tree.kill()
    run.state.freeze()
    run.follower.finish()
    if run.reaper is not None:
        try:
            run.reaper.wait(timeout=3)  # it exits by itself within a tick once the trainer is gone
        except subprocess.TimeoutExpired:
            run.reaper.kill()
            run.reaper.wait()
