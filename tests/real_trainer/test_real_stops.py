"""Stops of the REAL trainer (marker real_trainer, slow): one 64 px run of 3 epochs (save_state every epoch, 2
sample prompts every epoch and before training) stopped four ways and resumed each time, on whichever
`accelerate` the trainer's Python has (the harness's is sd-scripts' pin 1.6.0; .ci/run runs this module a second
time with a trainer venv holding the newest release):

1. SIGTERM to bespoke in epoch 1 (`docker stop`): the trainer gets SIGINT, unwinds, nothing hangs;
2. Ctrl-C while the epoch-1 state is written: the save, and the epoch's samples after it, are completed first;
3. on the resume: the "before training" sample it redraws IS epoch 1's (the state's weights are the epoch's
   checkpoint's, the image is the same pixels); then Ctrl-C twice while epoch 2's samples are drawn: killed,
   the missing samples recorded;
4. on the resume: the missing samples are filled from its redraw; then kill -9 of bespoke mid-epoch 3: its
   watchdog stops the trainer the same way and records it; the trainer's last words are in train.log;
5. the last resume finishes: every checkpoint and state whole, every epoch's samples there once, no orphan.

After every stop: no cut file, run.json's stop record (who asked, what went to whom, how the trainer ended),
the message saying where the resume starts. Each step prints what the trainer received and how long it had.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

EPOCHS, PROMPTS = 3, 2
STATE_FILES = ("model.safetensors", "optimizer.bin", "random_states_0.pkl", "scheduler.bin", "train_state.json")
PROMPT_FILE = "".join(f"pixel art portrait of bespoke punk {i} --w 64 --h 64 --d {i + 1} --s 4\n" for i in range(2))


@dataclass
class Step:
    """One launch of the chain: how bespoke exited, what it said, run.json afterwards, the log."""

    name: str
    exit: int
    output: str
    manifest: dict
    log: str
    seconds: float
    cut: list[str]  # checkpoints or state files not whole after this step

    @property
    def stop(self) -> dict:
        return self.manifest["attempt"].get("stop") or {}

    @property
    def end(self) -> dict:
        return self.manifest["attempt"].get("trainer_end") or {}

    def summary(self) -> str:
        sent = ", ".join(f"{s['signal']}->{s['role']} +{s['at_s']:.2f}s" for s in self.stop.get("sent", []))
        return (f"{self.name}: exit {self.exit} after {self.seconds:.0f} s; sent {sent or '-'}; "
                f"{self.stop.get('ended')}, trainer gone after {self.stop.get('trainer_seconds')} s; waited for "
                f"{self.stop.get('waited_for')}; trainer: {self.end.get('how')}; epochs {self.manifest['epochs_done']}")


def _run_dir(project: Path) -> Path:
    runs = [p for p in (project / "outputs").glob("64-*") if (p / "run.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


def _log(project: Path) -> str:
    runs = list((project / "outputs").glob("64-*/logs/train.log"))
    return runs[0].read_text(errors="replace") if runs else ""


def _launch(real, args, name: str, ready, act) -> Step:
    """Start `bespoke train`, wait until `ready(log)` (polling every 20 ms), `act(proc)`, wait for the end."""
    started = time.monotonic()
    proc = subprocess.Popen(real.command(*args), cwd=real.project, env=real.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        while proc.poll() is None and not (ready is not None and ready(_log(real.project))):
            time.sleep(0.02)
        assert proc.poll() is None or ready is None, f"{name}: bespoke ended first\n{proc.stdout.read()[-3000:]}"
        if act is not None:
            act(proc)
        output, _ = proc.communicate(timeout=1500)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run = _run_dir(real.project)
    if act is not None and proc.returncode == -signal.SIGKILL:  # kill -9: the watchdog settles run.json
        _until(lambda: json.loads((run / "run.json").read_text())["status"] != "running", 120)
    manifest = json.loads((run / "run.json").read_text())
    return Step(name, proc.returncode, output, manifest, (run / "logs" / "train.log").read_text(errors="replace"),
                time.monotonic() - started, _cut_files(run))


def _until(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _orphans(run: Path) -> list[int]:
    import psutil

    out = []
    for process in psutil.process_iter(["cwd", "cmdline"]):
        try:
            cmdline = process.info["cmdline"] or []
            if process.info["cwd"] == str(run) or ("bespoke.run.reaper" in cmdline and str(run) in cmdline):
                out.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def _ctrl_c_twice(proc) -> None:
    proc.send_signal(signal.SIGINT)
    time.sleep(0.4)
    proc.send_signal(signal.SIGINT)


@pytest.fixture(scope="module")
def chain(real, cpu_overrides) -> dict[str, Step]:
    (real.project / "two_prompts.txt").write_text(PROMPT_FILE)
    args = ("train", "-r", "64", "--prompts", "two_prompts.txt", "--no-process", *cpu_overrides,
            "--set", f"max_train_epochs={EPOCHS}", "--set", "save_state=true", "--set", "save_last_n_epochs_state=1",
            "--set", "sample_every_n_epochs=1", "--set", "sample_at_first=true",
            "--set", "network_dim=32")  # a state of 227 MB: its save takes long enough for a Ctrl-C to land in it
    steps: dict[str, Step] = {}

    def step(name, ready, act):
        steps[name] = _launch(real, args, name, ready, act)
        print("\n" + steps[name].summary())
        assert not steps[name].cut, (name, steps[name].cut)  # no stop ever leaves a cut file
        assert "Traceback" not in steps[name].output, (name, steps[name].output[-3000:])

    step("sigterm", lambda log: "epoch 1/3" in log and "steps:" in log.split("epoch 1/3")[-1],
         lambda proc: proc.send_signal(signal.SIGTERM))
    step("state save", lambda log: "[bespoke gate] busy: saving the state of epoch 1" in log,
         lambda proc: proc.send_signal(signal.SIGINT))
    step("sampling", lambda log: "[bespoke gate] busy: drawing the samples of epoch 2" in log, _ctrl_c_twice)
    step("kill -9", lambda log: "epoch 3/3" in log and "steps:" in log.split("epoch 3/3")[-1],
         lambda proc: os.kill(proc.pid, signal.SIGKILL))
    step("finish", None, None)
    return steps


def _cut_files(run: Path) -> list[str]:
    """Checkpoints that do not read whole and state folders that lack one of accelerate's files."""
    from bespoke.kohya.checkpoints import find_checkpoints
    from bespoke.kohya.metadata import WeightsError, read_header

    cut = []
    for checkpoint in find_checkpoints(run / "model", json.loads((run / "run.json").read_text())["output_name"]):
        try:
            read_header(checkpoint.path)
        except WeightsError:
            cut.append(checkpoint.path.name)
    for state in (run / "model").glob("*-state"):
        cut += [f"{state.name}/{name}" for name in STATE_FILES if not (state / name).is_file()]
    return cut


def _graceful(step: Step, asked_by: str) -> None:
    assert step.stop["asked_by"] == asked_by and step.stop["ended"] == "graceful", step.summary()
    assert step.stop["sent"][0]["signal"] == "SIGINT" and step.stop["sent"][0]["role"] == "trainer"
    assert not [s for s in step.stop["sent"] if s["role"] == "launcher" and s["at_s"] < step.stop["trainer_seconds"]]
    assert step.end["how"] == "KeyboardInterrupt (SIGINT)" and step.end["source"] == "gate"


def test_sigterm_in_epoch_1_stops_the_trainer_gracefully_and_never_hangs(chain, real):
    step = chain["sigterm"]
    assert step.exit == 143, step.output[-3000:]
    _graceful(step, "SIGTERM")
    assert step.stop["trainer_seconds"] < 60 and step.stop["seconds"] < 70
    assert step.manifest["status"] == "interrupted" and step.manifest["epochs_done"] == 0
    assert "the next run starts over" in step.output


def test_ctrl_c_during_the_state_save_waits_for_it(chain, real):
    step = chain["state save"]
    assert step.exit == 130, step.output[-3000:]
    _graceful(step, "SIGINT")
    # the stop landed in the state save: it, and the epoch's samples that follow it, were completed
    assert step.stop["waited_for"] == ["saving the state of epoch 1", "drawing the samples of epoch 1"], step.summary()
    assert "deferred: SIGINT while saving the state of epoch 1" in step.log
    assert step.manifest["epochs_done"] == 1 and step.manifest["samples"]["by_epoch"]["1"] == PROMPTS
    assert "missing" not in step.manifest["samples"]
    assert "the next run resumes after epoch 1" in step.output


def test_the_resumed_first_sample_is_the_resumed_epochs_sample(chain, real):
    """What lets a resume fill an epoch's missing samples: sd-scripts redraws "before training" with the state's
    weights, which are the epoch's checkpoint's, with the same prompts and seeds: the same image."""
    import numpy as np
    from PIL import Image
    from safetensors.numpy import load_file

    run = _run_dir(real.project)
    step = chain["sampling"]
    assert step.manifest["attempt"]["resumed_from"].endswith("-000001-state")
    redraws = sorted((run / "model" / "sample").glob(f"resume-{step.manifest['attempt']['number']}/*.png"))
    assert len(redraws) == PROMPTS
    for redraw in redraws:
        prompt = redraw.name.split("_e000000_")[1][:2]
        epoch_1 = next((run / "model" / "sample").glob(f"*_e000001_{prompt}_*.png"))
        assert np.array_equal(np.asarray(Image.open(redraw)), np.asarray(Image.open(epoch_1))), redraw.name
    # the state's weights are the epoch's checkpoint's (dtype aside): sd-scripts saves one, then the other
    checkpoint = load_file(next((run / "model").glob("*-000001.safetensors")))
    print(f"\nthe resume's e000000 redraws equal epoch 1's samples pixel for pixel ({len(redraws)} prompts); "
          f"{len(checkpoint)} checkpoint tensors")


def test_ctrl_c_twice_while_sampling_kills_and_records_the_missing_samples(chain, real):
    step = chain["sampling"]
    assert step.exit == 130, step.output[-3000:]
    assert step.stop["ended"] == "kill" and step.end["how"] == "killed (SIGKILL)"
    # SIGINT to the trainer (deferred: it was drawing), then at the second Ctrl-C one SIGKILL to each process left
    sent = [(s["signal"], s["role"], s["pid"]) for s in step.stop["sent"]]
    assert sent[0][:2] == ("SIGINT", "trainer") and ("SIGKILL", "trainer", sent[0][2]) in sent[1:], step.summary()
    assert all(s[0] == "SIGKILL" for s in sent[1:]) and len({s[2] for s in sent[1:]}) == len(sent) - 1
    missing = step.manifest["samples"].get("missing")
    assert missing and list(missing) == ["2"], step.manifest["samples"]
    assert step.manifest["epochs_done"] == 2  # the epoch-2 state was whole before the samples were drawn
    assert "epoch 2 lacks the samples of prompt(s)" in step.output and "the resume redraws them" in step.output


def test_the_resume_fills_them_and_a_kill_9_of_bespoke_is_stopped_by_its_watchdog(chain, real):
    step, before = chain["kill -9"], chain["sampling"]
    filled = step.manifest["attempt"]["filled_samples"]
    assert len(filled) == len(before.manifest["samples"]["missing"]["2"]) and all("_e000002_" in f for f in filled)
    assert step.exit == -signal.SIGKILL and step.manifest["status"] == "interrupted"
    _graceful(step, "bespoke died")
    assert "the trainer: KeyboardInterrupt (SIGINT) (the watchdog's record)" in step.log
    after_death = step.log.split("its watchdog stops the trainer")[1]
    assert "[bespoke gate] ended: KeyboardInterrupt" in after_death  # the trainer's own last words, on disk


def test_the_last_resume_finishes_with_nothing_cut_lost_or_left_running(chain, real):
    run = _run_dir(real.project)
    step = chain["finish"]
    assert step.exit == 0, step.output[-3000:]
    assert step.manifest["status"] == "finished" and step.manifest["epochs_done"] == EPOCHS
    assert step.manifest["samples"]["by_epoch"] == {str(e): PROMPTS for e in range(EPOCHS + 1)}
    assert "missing" not in step.manifest["samples"]
    # a resume from a state a resumed run wrote starts after that state's epoch (bespoke's --initial_epoch):
    # sd-scripts alone would train epoch 2 again from the state's short step count, and draw its samples twice
    assert all("epoch 2/3" not in chain[name].log for name in ("kill -9", "finish"))
    assert "--initial_epoch" in step.manifest["attempt"]["argv"]
    assert all(not done.cut for done in chain.values())  # after every stop too
    assert not _orphans(run)
