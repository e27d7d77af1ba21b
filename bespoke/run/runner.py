"""The only module that starts processes. Never through a shell. The one supervisor of the trainer and gen_img.py.

`run_logged` runs the trainer in its own session / process group, appends every byte of its stdout and stderr
to a log file and hands complete lines (split on \\n and \\r, so tqdm updates count) to a callback. While it
runs, SIGINT, SIGTERM and SIGHUP are *recorded* (`StopSignals`), never raised at a random point: the loop sees
them within a tick and stops the trainer's whole process tree (`bespoke.run.proctree`: SIGINT, 10 s, terminate,
5 s, kill). An exception in the loop (a callback writing run.json on a full disk) stops the tree the same way
before it propagates. A normal exit kills any descendant left behind and reads both pipes to the end, so
no line is lost. A small watchdog process (`bespoke.run.reaper`) stops the tree if bespoke itself is killed
(kill -9), so no trainer outlives its supervisor.
`run_capture` runs a short helper command (git, the trainer's Python) and returns its output.
"""

from __future__ import annotations

import codecs
import os
import re
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
from bespoke.run.proctree import DEFAULT_GRACE, TOKEN_VARIABLE, ProcessTree, start_time

LineCallback = Callable[[str, str], object]  # (stream name "stdout"/"stderr", line without terminator); result ignored
_SPLIT = re.compile(r"\r\n|\r|\n")


# every signal that means "stop": Ctrl-C, `docker stop` / `kill`, a closed terminal or dropped SSH session
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
_NEW_GROUP = {"start_new_session": True} if os.name == "posix" else {
    "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}


@dataclass(frozen=True)
class ProcessResult:
    """How a logged process ended. `interrupted` is True when bespoke stopped it (a signal or `stop`);
    `signum` is the signal that asked bespoke to stop (None for `stop` or no stop)."""

    exit_code: int
    interrupted: bool
    duration: float
    pid: int
    log_path: Path
    signum: int | None = None


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


class _LineSplitter:
    """Incremental UTF-8 decoding and line splitting of one stream."""

    def __init__(self, name: str, on_line: LineCallback | None):
        self.name = name
        self.on_line = on_line
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self.pending + self.decoder.decode(data, final=final)
        hold = ""
        if not final and text.endswith("\r"):
            # may be the first half of \r\n: wait for the next chunk
            text, hold = text[:-1], "\r"
        parts = _SPLIT.split(text)
        rest = parts.pop()
        if final and rest:
            parts.append(rest)
            rest = ""
        self.pending = rest + hold
        if self.on_line is None:
            return
        for line in parts:
            if line.strip():
                try:
                    self.on_line(self.name, line)
                except Exception:  # noqa: BLE001 - a display bug must never stop the log from being written
                    pass


def _pump(stream, name: str, log, log_lock: threading.Lock, on_line: LineCallback | None) -> None:
    splitter = _LineSplitter(name, on_line)
    fd = stream.fileno()
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        with log_lock:
            if not log.closed:
                log.write(data)
                log.flush()
        splitter.feed(data)
    splitter.feed(b"", final=True)


def signal_name(signum: int | None) -> str:
    """'SIGTERM' for 15."""
    try:
        return signal.Signals(signum).name if signum is not None else "stop request"
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


def start_reaper(trainer_pid: int, run_dir: Path | None, token: str) -> subprocess.Popen | None:
    """The watchdog that stops the trainer's tree (and settles run.json) if this bespoke dies without doing it
    (kill -9, OOM killer). It runs in its own session, so the signals meant for bespoke never reach it."""
    argv = [sys.executable, "-m", "bespoke.run.reaper", str(os.getpid()), str(start_time(os.getpid())),
            str(trainer_pid), str(start_time(trainer_pid)), token]
    if run_dir is not None:
        argv.append(str(run_dir))
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


def _supervise(proc: subprocess.Popen, tree: ProcessTree, watch: _Watch, on_tick: Callable[[], None] | None,
               tick_seconds: float, grace: tuple[float, float]) -> bool:
    """Wait for the trainer, ticking; stop its tree on a stop request, a signal or an exception. True if stopped."""
    hurry = lambda: watch.signals.count >= 2  # noqa: E731 - a second Ctrl-C: no more patience
    try:
        while proc.poll() is None:
            tree.refresh()
            if watch.stopping():
                tree.stop(grace, hurry)
                proc.wait()
                return True
            if on_tick is not None:
                on_tick()
            try:
                proc.wait(timeout=tick_seconds)
            except subprocess.TimeoutExpired:
                pass
    except BaseException:
        tree.stop(grace, hurry)
        proc.wait()
        raise
    return watch.stopping()


def run_logged(argv: list[str], env: dict[str, str], log_path: Path, *, cwd: Path | None = None,
               on_line: LineCallback | None = None, on_tick: Callable[[], None] | None = None,
               tick_seconds: float = 0.25, stop: threading.Event | None = None,
               stop_timeouts: tuple[float, float] = DEFAULT_GRACE, on_start: Callable[[int], None] | None = None,
               env_overrides: dict[str, str] | None = None, signals: StopSignals | None = None,
               run_dir: Path | None = None) -> ProcessResult:
    """Run `argv` in its own process group, appending all its output to `log_path`; return how it ended.

    `on_line` is called from reader threads; `on_tick` from the calling thread every `tick_seconds`.
    A signal (recorded by `signals`, or by a StopSignals of its own) or `stop` being set stops the tree and
    returns with `interrupted=True`; an exception stops the tree and propagates. `stop_timeouts` is the grace
    period (after the graceful signal, after terminate). `run_dir` is passed to the reaper, which settles
    run.json if bespoke dies.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    watch = _Watch(stop, signals or StopSignals())
    with watch.signals, open(log_path, "ab") as log:
        log.write(f"[bespoke] $ {format_command(argv, env_overrides, cwd)}\n".encode())
        log.flush()
        token = uuid.uuid4().hex  # inherited by everything the trainer starts: how its tree is found
        proc = subprocess.Popen([str(a) for a in argv], env={**env, TOKEN_VARIABLE: token}, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                **_NEW_GROUP)
        tree = ProcessTree(proc.pid, token)
        reaper = start_reaper(proc.pid, run_dir, token)
        lock = threading.Lock()
        readers = [threading.Thread(target=_pump, args=(s, n, log, lock, on_line), daemon=True)
                   for s, n in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
        for reader in readers:
            reader.start()
        interrupted = False
        try:
            if on_start is not None:
                on_start(proc.pid)
            interrupted = _supervise(proc, tree, watch, on_tick, tick_seconds, stop_timeouts)
        except BaseException:
            tree.stop(stop_timeouts)
            raise
        finally:
            _wind_up(proc, tree, readers, reaper)
            code = proc.returncode if proc.returncode is not None else -1
            how = f" (stopped by bespoke: {signal_name(watch.signals.signum)})" if interrupted else ""
            with lock:
                log.write(f"\n[bespoke] exit code {code}{how}\n".encode())
    if on_tick is not None:
        on_tick()
    return ProcessResult(exit_code=code, interrupted=interrupted, duration=time.monotonic() - started,
                         pid=proc.pid, log_path=log_path, signum=watch.signals.signum if interrupted else None)


def _wind_up(proc: subprocess.Popen, tree: ProcessTree, readers: list[threading.Thread],
             reaper: subprocess.Popen | None) -> None:
    """After the trainer exited: kill what it left behind (a child holding the pipes would keep the readers
    waiting), read both pipes to their end, close them, and let the reaper go."""
    proc.wait()
    tree.kill()
    for reader in readers:
        reader.join(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    if reaper is not None:
        try:
            reaper.wait(timeout=3)  # it exits by itself within a tick once the trainer is gone
        except subprocess.TimeoutExpired:
            reaper.kill()
            reaper.wait()
