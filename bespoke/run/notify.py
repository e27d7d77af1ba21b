"""Telling the user where they are: a webhook POST when a run ends (finished, failed, interrupted, stopped-early)
and, when asked, after each scored epoch. An observer of the training events (bespoke.run.events).

A target is `[format:]URL`: `slack:` (an incoming webhook: {"text"}), `discord:` ({"content"}), `ntfy:` (the
text as the body, the title and tags as headers) or `json:` (the summary itself); without a prefix the format
follows the host (hooks.slack.com, discord.com, ntfy.sh), else json. A webhook URL is a secret: `$NAME` (or
`${NAME}`) in a target reads it from the environment when the message is sent, and `BESPOKE_NTFY_TOKEN` adds
an ntfy access token; no URL is ever written to disk (the log names the format and the host only).

Sending never holds the run up: messages go to one background thread, each POST has a short timeout, a failure
is retried a few times, then written to `<run>/logs/notify.log` and said once as a warning; it never fails the
run. `close(timeout)` waits at most `timeout` seconds for what is still queued (a hanging webhook costs the
command at most that, after the trainer has stopped).
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bespoke import progress
from bespoke.clock import now_iso
from bespoke.errors import BespokeError, UsageError
from bespoke.run.cost import usd
from bespoke.run.events import EpochScored, Finished, Started, TrainEvent
from bespoke.run.manifest import load_manifest
from bespoke.run.stop_rules import best_scored

FORMATS = ("slack", "discord", "ntfy", "json")
TIMEOUT_SECONDS = 5.0  # one POST
RETRIES = 3  # attempts per message
BACKOFF_SECONDS = (1.0, 2.0)  # between attempts
CLOSE_SECONDS = 10.0  # what a command waits at its end for queued messages
_VARIABLE = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")
_HOSTS = {"hooks.slack.com": "slack", "discord.com": "discord", "discordapp.com": "discord", "ntfy.sh": "ntfy"}


@dataclass(frozen=True)
class Target:
    """Where one message goes: its format and the URL (or the environment variable that holds it)."""

    format: str
    url: str  # a URL, or "$NAME"

    def resolve(self, env: Mapping[str, str]) -> str:
        match = _VARIABLE.match(self.url)
        if not match:
            return self.url
        value = env.get(match.group(1), "")
        if not value:
            raise ValueError(f"environment variable {match.group(1)} is empty or unset")
        return value

    def describe(self) -> str:
        """For logs: the format and the host (or the variable), never the URL's secret path."""
        host = self.url if _VARIABLE.match(self.url) else urlsplit(self.url).hostname or "?"
        return f"{self.format} ({host})"


def parse_target(text: str) -> Target:
    """`[slack|discord|ntfy|json:]URL-or-$VARIABLE`; a one-line UsageError when it is neither."""
    text = text.strip()
    prefix, _, rest = text.partition(":")
    chosen = prefix if prefix in FORMATS and rest and not rest.startswith("//") else None
    url = rest if chosen else text
    if not (_VARIABLE.match(url) or urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname):
        raise UsageError(f"--notify {text!r}: give an http(s) URL or $VARIABLE, optionally after slack:, discord:, "
                         "ntfy: or json: (e.g. slack:$SLACK_WEBHOOK_URL)")
    if chosen is None:
        host = "" if _VARIABLE.match(url) else (urlsplit(url).hostname or "")
        chosen = next((kind for name, kind in _HOSTS.items() if host == name or host.endswith("." + name)), "json")
    return Target(chosen, url)


def summary_text(summary: dict) -> str:
    """One line a person reads: 'bespoke 64-default-1a2b: stopped-early after 7/10 epochs, best epoch 5 ...'."""
    parts = [f"bespoke {summary['run']}: {summary['status']}"]
    if summary.get("event") == "epoch":
        parts = [f"bespoke {summary['run']}: epoch {summary.get('epoch')} scored {_num(summary.get('epoch_score'))}"]
    else:
        parts.append(f"after {summary.get('epochs_done', 0)}/{summary.get('epochs_total') or '?'} epochs")
    if summary.get("best_epoch") is not None:
        parts.append(f"best epoch {summary['best_epoch']} (score {_num(summary.get('score'))})")
    if summary.get("cost_usd") is not None:
        parts.append(f"cost {usd(summary['cost_usd'])}")
    if summary.get("reason"):
        parts.append(str(summary["reason"]))
    if summary.get("contact_sheet"):
        parts.append(f"contact sheet {summary['contact_sheet']}")
    return ", ".join(parts)


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def body(target: Target, summary: dict, env: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
    """The request body and headers of `summary` in the target's format."""
    text = summary_text(summary)
    if target.format == "ntfy":
        headers = {"Title": f"bespoke {summary['run']}: {summary['status']}", "Tags": _ntfy_tag(summary)}
        if env.get("BESPOKE_NTFY_TOKEN"):
            headers["Authorization"] = f"Bearer {env['BESPOKE_NTFY_TOKEN']}"
        return text.encode("utf-8"), headers
    payload: dict[str, Any] = {"text": text} if target.format == "slack" else \
        {"content": text} if target.format == "discord" else summary
    return json.dumps(payload).encode("utf-8"), {"Content-Type": "application/json"}


def _ntfy_tag(summary: dict) -> str:
    return {"finished": "white_check_mark", "stopped-early": "chart_with_downwards_trend", "failed": "x",
            "interrupted": "warning"}.get(str(summary.get("status")), "bar_chart")


@dataclass
class _Message:
    target: Target
    summary: dict
    log: Path | None


@dataclass
class Notifier:
    """The observer that sends the webhooks (see the module docstring). With `hold_end` the end of a run is
    not sent on its Finished event: the caller sends it (`send_end`) once it knows more (the processed best
    epoch, the contact sheet)."""

    targets: tuple[Target, ...]
    each_epoch: bool = False
    hold_end: bool = False
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    _queue: queue.Queue = field(default_factory=queue.Queue, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _warned: bool = field(default=False, init=False)
    _abandoned: threading.Event = field(default_factory=threading.Event, init=False)
    _runs: dict[str, Path] = field(default_factory=dict, init=False)

    def __call__(self, event: TrainEvent) -> None:
        if not self.targets:
            return
        if isinstance(event, EpochScored) and self.each_epoch and event.score is not None:
            self.send({"event": "epoch", "run": event.run_id, "status": "running", "epoch": event.epoch,
                       "epoch_score": event.score, "low": event.low, "high": event.high,
                       "best_epoch": event.best_epoch, "score": event.best_score}, self._runs.get(event.run_id))
        elif isinstance(event, Finished) and not self.hold_end and not event.result.skipped:
            self.send_end(end_summary(event.result, None))
        if isinstance(event, Started):
            self._runs[event.run_id] = event.run_dir

    def send_end(self, summary: dict) -> None:
        self.send(summary, Path(summary["run_dir"]) if summary.get("run_dir") else None)

    def send(self, summary: dict, run_dir: Path | None) -> None:
        if not self.targets:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, daemon=True, name="bespoke-notify")
            self._thread.start()
        for target in self.targets:
            self._queue.put(_Message(target, dict(summary), run_dir / "logs" / "notify.log" if run_dir else None))

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Wait at most `timeout` seconds for the queued messages; what is left then is dropped (each logged in
        notify.log, nothing said, no retry) and the thread, a daemon, never holds the process."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():  # the rest is dropped: nothing is sent or said after the command moved on
            self._abandoned.set()

    def _work(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:
                return
            problem = "not sent: the command ended first" if self._abandoned.is_set() else \
                deliver(message.target, message.summary, self.env, abandon=self._abandoned)
            if problem is not None:
                self._failed(message, problem)

    def _failed(self, message: _Message, problem: str) -> None:
        line = f"{now_iso()} {message.summary.get('run')} {message.summary.get('status')}: " \
               f"{message.target.describe()} not told: {problem}"
        if message.log is not None:
            try:
                message.log.parent.mkdir(parents=True, exist_ok=True)
                with open(message.log, "a", encoding="utf-8") as handle:
                    handle.write(line + "\n")
            except OSError:
                pass
        if not self._warned and not self._abandoned.is_set():
            self._warned = True
            progress.say(f"notify: {message.target.describe()} could not be told ({problem}); the run goes on"
                         + (f"; see {message.log}" if message.log else ""), "warning")


def deliver(target: Target, summary: dict, env: Mapping[str, str], timeout: float | None = None,
            abandon: threading.Event | None = None) -> str | None:
    """POST `summary` to `target` (retried, unless `abandon` is set meanwhile); None when it was taken, else what
    went wrong last (no URL in it)."""
    problem = "not sent"
    for attempt in range(RETRIES):
        if attempt:
            pause = BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)]
            if abandon is not None and abandon.wait(pause):
                return problem + " (no retry: the command ended)"
            if abandon is None:
                time.sleep(pause)
        try:
            data, headers = body(target, summary, env)
            request = urllib.request.Request(target.resolve(env), data=data, headers=headers, method="POST")
            wait = TIMEOUT_SECONDS if timeout is None else timeout  # read now: tests shorten it
            with urllib.request.urlopen(request, timeout=wait) as response:  # noqa: S310 - http(s) checked
                if 200 <= response.status < 300:
                    return None
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            problem = f"HTTP {error.code}"
        except ValueError as error:  # an unset variable: retrying will not help
            return str(error)
        except (urllib.error.URLError, OSError) as error:
            problem = type(error).__name__ + (f": {error.reason}" if isinstance(error, urllib.error.URLError)
                                              and not isinstance(error.reason, str | bytes) else "")
    return problem


def end_summary(result: Any, contact_sheet: Path | None, best: tuple[int | None, float | None] | None = None) -> dict:
    """What a run's end message says, from its TrainResult and run.json's epoch_log (`best`: the processed best
    epoch and its score, when the samples were processed after training)."""
    from_log = _live_best(Path(result.run_dir))
    best_epoch, score = best if best is not None and best[0] is not None else from_log
    early = result.early_stop
    return {"event": "end", "run": result.run_id, "status": result.status, "run_dir": str(result.run_dir),
            "epochs_done": result.epochs_done, "epochs_total": result.epochs_total, "best_epoch": best_epoch,
            "score": score, "cost_usd": result.cost_usd, "reason": early.reason if early else result.reason,
            "contact_sheet": str(contact_sheet) if contact_sheet else None, "at": now_iso()}


def _live_best(run_dir: Path) -> tuple[int | None, float | None]:
    """The best epoch the live score found (run.json's epoch_log)."""
    try:
        best = best_scored(load_manifest(run_dir).epoch_log)
    except BespokeError:
        return None, None
    return (best.epoch, best.score) if best is not None else (None, None)
