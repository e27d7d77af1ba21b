"""While the trainer runs: its lines and its model folder become run.json updates and events for the observer.

The supervisor (bespoke.run.runner) calls `on_line` from the thread that follows the log and `tick` from the
supervising thread every quarter second; everything the observer gets is emitted from `tick`, in order (lines only
feed the thread-safe `RunProgress`). run.json is rewritten when an epoch begins or a checkpoint lands, never per
step, and when the run's loop (bespoke.run.loop: each epoch measured, judged, asked whether to stop) recorded
something; an epoch's EpochFinished and what the loop tells come after run.json says it. The loop's stop is the
Event the runner watches (`hooks.stop`): the same stop path as a signal's (bespoke.run.stopping), requested only
at a clean point, and the trainer's gate still defers it while a save or a sampling runs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from bespoke.kohya.checkpoints import Checkpoint
from bespoke.kohya.output import EpochStarted, NoData
from bespoke.kohya.preflight import GATE_PASSED
from bespoke.run.events import (
    CheckpointWritten,
    EpochFinished,
    Observer,
    Progress,
    SamplesWritten,
    StateSaved,
    TrainerSaid,
)
from bespoke.run.facts import launch_facts
from bespoke.run.loop import EpochLoop, LoopOptions, saving_now
from bespoke.run.manifest import RunManifest, save_manifest
from bespoke.run.paths import RunPaths
from bespoke.run.progress import EpochTracker, ModelWatcher, RunProgress, state_epoch
from bespoke.run.resume import ResumeSamples, record_on_disk, whole_checkpoints
from bespoke.settings import Settings

POLL_SECONDS = 0.5  # how often model/ is scanned (a scan lists two folders)


class TrainerFacts:
    """The trainer's environment (bespoke.run.facts) takes seconds (it imports torch): gathered while it starts."""

    def __init__(self, settings: Settings):
        self.values: dict = {}
        self.thread = threading.Thread(target=lambda: self.values.update(launch_facts(settings)),
                                       daemon=True)
        self.thread.start()

    def ready(self) -> bool:
        return not self.thread.is_alive()


class Supervision:
    """The supervising thread's view of one running trainer."""

    def __init__(self, paths: RunPaths, manifest: RunManifest, progress: RunProgress, observer: Observer,
                 facts: TrainerFacts, firsts: ResumeSamples, samples_per_epoch: int):
        self.paths, self.manifest, self.progress, self.emit = paths, manifest, progress, observer
        self.facts, self.firsts = facts, firsts
        self.output_name = manifest.output_name or "last"
        self.facts_written = False
        self.watcher = ModelWatcher(paths.model_dir)
        self.last_poll = 0.0
        self.told: set[Path] = {c.path for c in whole_checkpoints(paths.model_dir, self.output_name)}
        self.pending: set[Path] = set()  # checkpoints being written (sd-scripts writes in place)
        self.tracker = EpochTracker(samples_per_epoch, done=set(range(1, manifest.epochs_done + 1)))
        self.loop = EpochLoop(paths, manifest, LoopOptions(), saves_state=False)  # train sets the run's own
        self.outside_stop: threading.Event | None = None  # a sweep's stop, passed on to the loop's

    def on_line(self, line: str) -> None:
        """Each line of the trainer's log (the follower thread): the gate's pass line ends the preflight status."""
        if self.progress.status == "preflight" and line.startswith(GATE_PASSED):
            self.progress.status = "training"
        self.progress.feed("log", line)

    def tick(self) -> None:
        """Called every quarter second while the trainer runs, and once after it ended."""
        run_id = self.manifest.id
        for said in self.progress.take_said():
            if isinstance(said, EpochStarted):
                self.emit(TrainerSaid(run_id, f"epoch {said.epoch}/{said.total}"))
            elif isinstance(said, NoData):
                self.emit(TrainerSaid(run_id, f"trainer says: {said.line}", "warning"))
        changed = self._facts()
        landed: list[Checkpoint] = []
        # the epoch the trainer says it is in, read before model/ is: a new epoch begins after the last one's
        # samples are on disk, so the scan below finds them (the tracker never completes an epoch before its
        # samples are seen)
        in_progress = self.progress.snapshot().epoch
        epoch_changed = self.progress.take_epoch_changed()
        if epoch_changed or time.monotonic() - self.last_poll >= POLL_SECONDS or self.loop.wants_stop:
            self.last_poll = time.monotonic()
            changed = self.firsts.record(self.manifest.attempt) or changed
            landed = self._poll()
        if epoch_changed or landed:
            self._record_disk()
            changed = True
        finished = self._epochs(in_progress, ended=False)
        changed |= bool(finished)
        outside = self.outside_stop is not None and self.outside_stop.is_set()
        changed |= self.loop.tick(self.clean(), outside)
        if changed:
            save_manifest(self.paths.root, self.manifest)
        for event in finished:
            self.emit(event)
        for told in self.loop.take_told():
            self.emit(told)
        self.emit(Progress(self.progress.snapshot()))

    def clean(self) -> bool:
        """No checkpoint or state is being written and every epoch with a checkpoint has drawn its samples: a
        point where stopping the trainer cuts nothing."""
        return (not self.pending and set(self.tracker.checkpoints) <= self.tracker.done
                and not saving_now(self.paths.model_dir))

    def _facts(self) -> bool:
        if self.facts_written or not self.facts.ready():
            return False
        self.facts_written = True
        if self.manifest.attempt is not None:
            self.manifest.attempt.trainer = dict(self.facts.values)
        return True

    def _poll(self) -> list[Checkpoint]:
        """Scan model/: emit what landed; returns the checkpoints that became whole."""
        run_id = self.manifest.id
        changes = self.watcher.poll()
        self.pending.update(changes.checkpoints)
        landed: list[Checkpoint] = []
        if self.pending:
            for checkpoint in whole_checkpoints(self.paths.model_dir, self.output_name):
                if checkpoint.path in self.pending and checkpoint.path not in self.told:
                    self.told.add(checkpoint.path)
                    self.pending.discard(checkpoint.path)
                    landed.append(checkpoint)
                    self.emit(CheckpointWritten(run_id, checkpoint.path, checkpoint.epoch))
            self.tracker.add_checkpoints(landed)
        if changes.samples:
            self.tracker.add_samples(changes.samples)
            self.emit(SamplesWritten(run_id, tuple(changes.samples)))
        for state in changes.states:
            epoch = state_epoch(state)
            self.loop.state_saved(epoch)
            self.emit(StateSaved(run_id, epoch, state))
        return landed

    def _record_disk(self) -> None:
        record_on_disk(self.paths, self.manifest)  # epochs kept, checkpoints, samples (missing ones too)
        self.manifest.last_loss = self.progress.snapshot().loss

    def _epochs(self, in_progress: int, ended: bool) -> list[EpochFinished]:
        """Every epoch that is complete now (`in_progress`: the epoch the trainer was in when model/ was last
        scanned), handed to the loop; the caller tells them once run.json is written."""
        snap = self.progress.snapshot()
        finished = []
        for epoch, checkpoint, samples in self.tracker.complete(in_progress, ended):
            event = EpochFinished(self.manifest.id, self.paths.root, epoch, snap.total_epochs, checkpoint.path,
                                  tuple(samples), max(0, self.tracker.expected - len(samples)))
            self.loop.epoch_finished(event, snap.loss)
            finished.append(event)
        return finished

    def ended(self, interrupted: bool) -> None:
        """The trainer is gone: a last look at model/, every epoch with a checkpoint is complete, the judge's last
        verdicts (none waited for after a signal) are recorded in run.json and told."""
        self.last_poll = 0.0
        self._poll()
        finished = self._epochs(self.progress.snapshot().epoch, ended=True)
        self.loop.close(interrupted)
        save_manifest(self.paths.root, self.manifest)
        for event in finished:
            self.emit(event)
        for told in self.loop.take_told():
            self.emit(told)
