"""Webhooks: a local HTTP server on 127.0.0.1 receives what bespoke sends — each status, the Slack, Discord and
ntfy bodies — and a webhook that hangs or answers 500 never delays the stop nor fails the run; the URL (a
secret) is never written to disk."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from loop_fixtures import PEAK, ScriptedJudge, loop_run, slow_steps

from bespoke import progress
from bespoke.errors import UsageError
from bespoke.run import notify
from bespoke.run.events import Broadcast, Finished
from bespoke.run.loop import LoopOptions
from bespoke.run.notify import Notifier, Target, body, parse_target
from bespoke.run.paths import RunPaths
from bespoke.run.stop_rules import StopRule
from bespoke.run.train import TrainOptions, train_run
from bespoke.settings import load_settings


class Hook:
    """A webhook receiver on 127.0.0.1: records each request; `mode` is ok, 500 or hang."""

    def __init__(self, mode: str = "ok"):
        self.mode, self.requests = mode, []
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.requests.append({"path": self.path, "headers": dict(self.headers), "body": data})
                if hook.mode == "hang":
                    hook.release.wait(30)
                self.send_response(500 if hook.mode == "500" else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def json(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    server = Hook()
    yield server
    server.close()


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(notify, "TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(notify, "BACKOFF_SECONDS", (0.1, 0.1))


@pytest.mark.parametrize("text, target", [
    ("https://hooks.slack.com/services/T/B/x", Target("slack", "https://hooks.slack.com/services/T/B/x")),
    ("https://discord.com/api/webhooks/1/x", Target("discord", "https://discord.com/api/webhooks/1/x")),
    ("https://ntfy.sh/my-topic", Target("ntfy", "https://ntfy.sh/my-topic")),
    ("https://example.org/in", Target("json", "https://example.org/in")),
    ("slack:$SLACK_URL", Target("slack", "$SLACK_URL")),
    ("ntfy:https://my.ntfy.box/t", Target("ntfy", "https://my.ntfy.box/t")),
    ("${HOOK}", Target("json", "${HOOK}")),
])
def test_targets_take_their_format_from_a_prefix_or_the_host(text, target):
    assert parse_target(text) == target


@pytest.mark.parametrize("text", ["ftp://x.org/a", "slack:", "not a url", "slack:nothing"])
def test_a_bad_target_is_a_one_line_error(text):
    with pytest.raises(UsageError, match="--notify"):
        parse_target(text)


SUMMARY = {"event": "end", "run": "64-default-1a2b3c4d", "status": "stopped-early", "epochs_done": 7,
           "epochs_total": 10, "best_epoch": 5, "score": 0.7, "cost_usd": 1.234, "reason": "peaked: ...",
           "contact_sheet": "/o/r/report/sheets/r.png", "run_dir": "/o/r"}


def test_the_ready_formats_of_slack_discord_ntfy_and_plain_json():
    text = notify.summary_text(SUMMARY)
    assert text.startswith("bespoke 64-default-1a2b3c4d: stopped-early, after 7/10 epochs, best epoch 5 (score 0.700)")
    assert "cost $1.23" in text and "contact sheet /o/r/report/sheets/r.png" in text
    slack, headers = body(Target("slack", "u"), SUMMARY, {})
    assert json.loads(slack) == {"text": text} and headers["Content-Type"] == "application/json"
    assert json.loads(body(Target("discord", "u"), SUMMARY, {})[0]) == {"content": text}
    assert json.loads(body(Target("json", "u"), SUMMARY, {})[0]) == SUMMARY
    data, headers = body(Target("ntfy", "u"), SUMMARY, {"BESPOKE_NTFY_TOKEN": "tk_1"})
    assert data.decode() == text and headers["Title"] == "bespoke 64-default-1a2b3c4d: stopped-early"
    assert headers["Tags"] == "chart_with_downwards_trend" and headers["Authorization"] == "Bearer tk_1"


def _train(run: Path, notifier: Notifier, loop: LoopOptions | None = None, **options):
    train_run(load_settings(), run, TrainOptions(preflight=False, loop=loop or LoopOptions(), **options),
              Broadcast.of([notifier]))
    notifier.close(5)


def _stop_once_training(log: Path, stop: threading.Event) -> None:
    """Set `stop` once the trainer has logged its first step (a fixed delay raced a fast start: on a fresh
    venv the 3 epochs could end before it), or after 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.is_file() and "avr_loss" in log.read_text(errors="replace")):
        time.sleep(0.05)
    stop.set()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["finished", "failed", "interrupted", "stopped-early"])
def test_each_way_a_run_ends_is_told(case, fake, isolated_project, monkeypatch, hook):
    run = loop_run(isolated_project, epochs=3 if case != "stopped-early" else 10)
    loop, options = LoopOptions(), {}
    if case == "failed":
        monkeypatch.setenv("FAKE_TRAINER_FAIL_AT_STEP", "5")
    elif case == "interrupted":  # a sweep's Ctrl-C: the stop comes from outside
        stop = threading.Event()
        options["stop"] = stop
        slow_steps(monkeypatch)
        threading.Thread(target=_stop_once_training, args=(RunPaths(run).train_log, stop), daemon=True).start()
    elif case == "stopped-early":
        slow_steps(monkeypatch)
        loop = LoopOptions(judge=ScriptedJudge(PEAK), stop_when=StopRule("peaked", 2))
    monkeypatch.setenv("MY_HOOK", hook.url("/secret-path-123"))
    notifier = Notifier((parse_target("json:$MY_HOOK"), parse_target(f"slack:{hook.url('/slack')}")),
                        each_epoch=case == "stopped-early")
    _train(run, notifier, loop, **options)
    ends = [r for r in hook.requests if r["path"] == "/secret-path-123" and json.loads(r["body"])["event"] == "end"]
    assert len(ends) == 1, hook.requests
    sent = json.loads(ends[0]["body"])
    assert sent["status"] == case and sent["run"] == "loop" and sent["run_dir"] == str(run)
    slack = [json.loads(r["body"]) for r in hook.requests if r["path"] == "/slack"]
    assert any(m["text"].startswith(f"bespoke loop: {case}") for m in slack)
    if case == "stopped-early":
        assert sent["best_epoch"] == 5 and sent["score"] == 0.7 and "peaked" in sent["reason"]
        epochs = [m for m in hook.json() if m.get("event") == "epoch"]
        assert sorted({m["epoch"] for m in epochs}) == list(range(1, 8))
    # the URL lives only in the environment: nothing bespoke wrote holds it
    for path in run.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".log", ".toml", ".txt", ".jsonl"):
            assert "secret-path-123" not in path.read_text(errors="replace"), path


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hang", "500"])
def test_a_webhook_that_hangs_or_fails_never_delays_the_stop_nor_fails_the_run(mode, fake, isolated_project,
                                                                              monkeypatch, quick_retries):
    slow_steps(monkeypatch)
    bad = Hook(mode)
    said: list[str] = []

    class Listen:
        def open(self, description, total):
            return progress.SILENT.open(description, total)

        def close(self, task):
            pass

        def say(self, text, level="info"):
            said.append(text)

    try:
        run = loop_run(isolated_project, epochs=10)
        notifier = Notifier((parse_target(bad.url()),), each_epoch=True)
        stopped = []
        told = Broadcast.of([notifier, lambda e: stopped.append(time.monotonic()) if type(e).__name__ in (
            "Stopping", "Finished") else None])
        with progress.use_display(Listen()):
            train_run(load_settings(), run, TrainOptions(preflight=False, loop=LoopOptions(
                judge=ScriptedJudge(PEAK), stop_when=StopRule("peaked", 2))), told)
            began = time.monotonic()
            notifier.close(1.0)
            waited = time.monotonic() - began
        manifest = json.loads((run / "run.json").read_text())
        assert manifest["status"] == "stopped-early" and manifest["epochs_done"] == 7  # as without webhooks
        # from the stop request to the end of the attempt: the trainer's own unwinding, no webhook in it
        assert stopped[1] - stopped[0] < 8
        assert waited < 1.5  # the command waits at most the close timeout for a hanging webhook
        assert len(bad.requests) >= 1
        if mode == "500":
            time.sleep(1.0)
            log = (run / "logs" / "notify.log").read_text()
            assert "HTTP 500" in log and "127.0.0.1" in log and bad.url() not in log
            assert sum("could not be told" in text for text in said) == 1  # said once, not per message
    finally:
        bad.close()


def test_an_unset_variable_is_logged_not_raised(tmp_path, quick_retries):
    notifier = Notifier((parse_target("json:$NOT_SET_ANYWHERE"),), env={})
    (tmp_path / "logs").mkdir()
    notifier.send({"run": "r", "status": "finished"}, tmp_path)
    notifier.close(5)
    assert "NOT_SET_ANYWHERE is empty or unset" in (tmp_path / "logs" / "notify.log").read_text()


def test_a_skipped_run_is_not_told(hook):
    from bespoke.run.train import TrainResult

    notifier = Notifier((parse_target(hook.url()),))
    notifier(Finished("r", TrainResult("r", Path("/nowhere"), "finished", skipped=True)))
    notifier.close(2)
    assert hook.requests == []
