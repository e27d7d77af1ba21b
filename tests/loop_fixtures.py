"""The loop's test doubles, shared by tests/run/test_loop.py, test_notify.py and the live-scoring tests: a
scripted judge (a double of bespoke.run.judge.EpochJudge), a run folder for the fake trainer, its pace."""

from __future__ import annotations

from pathlib import Path

import toml
from manifest_helpers import write_run_json

from bespoke.dataset.synthetic import write_dataset
from bespoke.run.events import EpochFinished
from bespoke.run.judge import Verdict
from bespoke.run.paths import RunPaths

PEAK = {1: 0.30, 2: 0.40, 3: 0.50, 4: 0.60, 5: 0.70, 6: 0.66, 7: 0.64, 8: 0.62, 9: 0.60, 10: 0.58}


class ScriptedJudge:
    """Scores each submitted epoch from a table (an interval of +-width around it), at once."""

    def __init__(self, scores: dict[int, float], width: float = 0.02):
        self.scores, self.width = scores, width
        self.submitted: list[int] = []
        self.pending: list[Verdict] = []
        self.closed: float | None = None

    def __call__(self, run_dir: Path) -> ScriptedJudge:  # the factory: one judge per run
        return self

    def submit(self, epoch: EpochFinished) -> None:
        self.submitted.append(epoch.epoch)
        score = self.scores[epoch.epoch]
        self.pending.append(Verdict(epoch.epoch, score, score - self.width, score + self.width, len(epoch.samples)))

    def collect(self) -> list[Verdict]:
        out, self.pending = self.pending, []
        return out

    def close(self, wait: float) -> list[Verdict]:
        self.closed = wait
        return self.collect()


def loop_run(project: Path, epochs: int, held_out: bool = False) -> Path:
    """A planned-like run folder: 8 pictures (4 steps an epoch), a prompt per epoch, a state after each epoch,
    event files; with `held_out`, a second dataset of 2 pictures for validation."""
    images = project / "imgs"
    write_dataset(images, count=8, seed=3)
    paths = RunPaths(project / "outputs" / "loop")
    paths.config_dir.mkdir(parents=True)
    paths.prompts_txt.write_text("punk --w 64 --h 64 --d 1\n")
    paths.training_toml.write_text(toml.dumps({"model": {"output_dir": "model", "output_name": "loop"}, "training": {
        "max_train_epochs": epochs, "save_every_n_epochs": 1, "sample_every_n_epochs": 1, "save_state": True,
        "save_last_n_epochs_state": 1, "sample_prompts": "config/prompts.txt", "mixed_precision": "no",
        "network_module": "networks.lora", "logging_dir": "logs/tensorboard", "validate_every_n_epochs": 1}}))
    blocks = [{"resolution": 64, "batch_size": 2, "subsets": [{"image_dir": str(images), "num_repeats": 1,
                                                              "caption_extension": ".txt"}]}]
    if held_out:
        held = project / "held"
        write_dataset(held, count=2, seed=9)
        blocks.append({"resolution": 64, "batch_size": 2, "validation_split": 1.0, "validation_seed": 1,
                       "subsets": [{"image_dir": str(held), "num_repeats": 1, "caption_extension": ".txt"}]})
    paths.dataset_toml.write_text(toml.dumps({"datasets": blocks}))
    write_run_json(paths.root, id="loop", status="planned", resolution=64, output_name="loop", num_epochs=epochs,
                   prompts=[{"index": 0, "prompt": "punk"}])
    return paths.root


def slow_steps(monkeypatch) -> None:
    """The fake trainer at 0.25 s a step (1 s an epoch of loop_run): scores land while it trains."""
    monkeypatch.setenv("FAKE_TRAINER_STEP_SECONDS", "0.25")
