"""The only module that starts processes. Never through a shell.

`run_logged` runs the trainer in its own process group, appends every byte of its stdout and stderr to a
log file, hands complete lines (split on \\n and \\r, so tqdm updates count) to a callback, and on Ctrl-C,
SIGTERM or a stop request stops the whole group: SIGINT, then SIGTERM, then SIGKILL.
`run_capture` runs a short helper command (git, the trainer's Python) and returns its output.
"""

from __future__ import annotations

import codecs
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bespoke.fsutil import move_aside
from bespoke.kohya.launch import format_command

LineCallback = Callable[[str, str], object]  # (stream name "stdout"/"stderr", line without terminator); result ignored
_SPLIT = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class ProcessResult:
    """How a logged process ended. `interrupted` is True when bespoke stopped it (Ctrl-C, SIGTERM, stop)."""

    exit_code: int
    interrupted: bool
    duration: float
    pid: int
    log_path: Path


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
            log.write(data)
            log.flush()
        splitter.feed(data)
    splitter.feed(b"", final=True)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(proc: subprocess.Popen, timeouts: tuple[float, float] = (10.0, 5.0)) -> None:
    """Stop the process group of `proc`: SIGINT, wait; SIGTERM, wait; SIGKILL."""
    pgid = proc.pid  # start_new_session=True: the child leads its own group
    try:
        for sig, wait in ((signal.SIGINT, timeouts[0]), (signal.SIGTERM, timeouts[1])):
            _signal_group(pgid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            _signal_group(pgid, signal.SIGKILL)
            proc.wait()
    except KeyboardInterrupt:  # a second Ctrl-C while waiting: no more patience
        _signal_group(pgid, signal.SIGKILL)
        proc.wait()
    # grandchildren that ignored the signals must not outlive the run
    _signal_group(pgid, signal.SIGKILL)


class SigtermAsInterrupt:
    """While active (main thread only), SIGTERM raises KeyboardInterrupt like Ctrl-C does."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise KeyboardInterrupt
            self.previous = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


def run_logged(argv: list[str], env: dict[str, str], log_path: Path, *, cwd: Path | None = None,
               on_line: LineCallback | None = None, on_tick: Callable[[], None] | None = None,
               tick_seconds: float = 0.25, stop: threading.Event | None = None,
               stop_timeouts: tuple[float, float] = (10.0, 5.0), on_start: Callable[[int], None] | None = None,
               env_overrides: dict[str, str] | None = None) -> ProcessResult:
    """Run `argv` in its own process group, appending all its output to `log_path`; return how it ended.

    `on_line` is called from reader threads; `on_tick` from the calling thread every `tick_seconds`.
    A KeyboardInterrupt (or SIGTERM in the main thread) or `stop` being set stops the group and returns
    with `interrupted=True` and the group's exit code; the caller decides what that means.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "ab") as log:
        log.write(f"[bespoke] $ {format_command(argv, env_overrides, cwd)}\n".encode())
        log.flush()
        proc = subprocess.Popen([str(a) for a in argv], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        stdout, stderr = proc.stdout, proc.stderr
        assert stdout is not None and stderr is not None  # both are PIPEs
        if on_start is not None:
            on_start(proc.pid)
        lock = threading.Lock()
        readers = [threading.Thread(target=_pump, args=(s, n, log, lock, on_line), daemon=True)
                   for s, n in ((stdout, "stdout"), (stderr, "stderr"))]
        for reader in readers:
            reader.start()
        interrupted = False
        with SigtermAsInterrupt():
            try:
                while proc.poll() is None:
                    if stop is not None and stop.is_set():
                        interrupted = True
                        stop_group(proc, stop_timeouts)
                        break
                    if on_tick is not None:
                        on_tick()
                    try:
                        proc.wait(timeout=tick_seconds)
                    except subprocess.TimeoutExpired:
                        pass
            except KeyboardInterrupt:
                interrupted = True
                stop_group(proc, stop_timeouts)
        for reader in readers:
            reader.join(timeout=5)
        stdout.close()
        stderr.close()
        code = proc.returncode
        with lock:
            log.write(f"\n[bespoke] exit code {code}{' (stopped by bespoke)' if interrupted else ''}\n".encode())
    if on_tick is not None:
        on_tick()
    return ProcessResult(exit_code=code, interrupted=interrupted, duration=time.monotonic() - started,
                         pid=proc.pid, log_path=log_path)
