"""The supervisor's tick on its own (no trainer): when an epoch is told complete, what it is told with."""

from __future__ import annotations

from lora_fixtures import write_lora
from manifest_helpers import write_run_json
from PIL import Image

from bespoke.run.events import EpochFinished
from bespoke.run.manifest import load_manifest
from bespoke.run.paths import RunPaths
from bespoke.run.progress import RunProgress
from bespoke.run.resume import ResumeSamples
from bespoke.run.supervision import Supervision


class NoFacts:
    """The trainer's environment, never gathered (it is not what this test is about)."""

    values: dict = {}

    def ready(self) -> bool:
        return False


def test_an_epoch_is_told_with_the_samples_drawn_just_before_the_trainer_went_on(tmp_path):
    run = tmp_path / "r"
    write_run_json(run, id="r", status="running", output_name="tiny", num_epochs=2,
                   prompts=[{"index": 0, "prompt": "punk"}])
    paths = RunPaths(run)
    told: list = []
    supervision = Supervision(paths, load_manifest(run), RunProgress("r", 2), told.append, NoFacts(),  # type: ignore[arg-type]
                              ResumeSamples(paths, 1, None, {}), 1)
    supervision.on_line("epoch 1/2")
    supervision.tick()
    write_lora(paths.model_dir / "tiny-000001.safetensors", epoch=1, num_epochs=2, ss_output_name="tiny")
    supervision.last_poll = 0.0  # the scan interval has passed: the checkpoint is seen
    supervision.tick()
    assert not [e for e in told if isinstance(e, EpochFinished)]  # its sample is not drawn yet
    # the sample lands and the trainer says the next epoch began, both within one scan interval
    sample = paths.sample_dir / "tiny_e000001_00_20261207120000.png"
    sample.parent.mkdir()
    Image.new("RGB", (64, 64)).save(sample)
    supervision.on_line("epoch 2/2")
    supervision.tick()
    finished = [e for e in told if isinstance(e, EpochFinished)]
    assert len(finished) == 1 and finished[0].epoch == 1
    assert finished[0].samples == (sample,) and finished[0].missing_samples == 0
