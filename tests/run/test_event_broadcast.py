"""bespoke.run.events: one observer made of several, each given every event in order; one that fails is dropped
with one warning and the others go on."""

from __future__ import annotations

from pathlib import Path

from bespoke import progress
from bespoke.run.events import Broadcast, Message, Progress, Snapshot, StateSaved, ignore


class Said:
    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def open(self, description, total):
        return progress.SILENT.open(description, total)

    def close(self, task):
        pass

    def say(self, text, level="info"):
        self.lines.append((level, text))


def test_every_observer_gets_every_event_in_order_and_a_failing_one_is_dropped_once():
    seen: list[object] = []
    failures: list[object] = []

    def broken(event):
        failures.append(event)
        raise RuntimeError("the terminal is gone")

    events = [Message("r1", "config/training.toml was edited by hand"),
              Progress(Snapshot("r1", "training", epoch=1, total_epochs=2)),
              StateSaved("r1", 1, Path("model/r1-000001-state"))]
    broadcast = Broadcast.of([seen.append, None, broken, ignore])
    said = Said()
    with progress.use_display(said):
        for event in events:
            broadcast(event)
    assert seen == events and failures == events[:1] and len(broadcast.observers) == 2
    assert said.lines == [("warning", "r1: a display of this run failed and is off for the rest of it "
                                      "(RuntimeError: the terminal is gone)")]
    assert events[1].run_id == "r1"
