"""The whole chain a user runs, through the CLI: train (fake sd-scripts via real accelerate) -> process ->
review -> runs. Each step reads only what the previous one left on disk.
"""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner
from locations import FAKE_DIR
from PIL import Image

from bespoke.cli import main


@pytest.mark.slow
def test_train_process_review_runs(isolated_project, monkeypatch):
    from bespoke.dataset.synthetic import write_dataset

    monkeypatch.setenv("BESPOKE_SD_SCRIPTS", str(FAKE_DIR))
    monkeypatch.setenv("BESPOKE_PYTHON", sys.executable)
    monkeypatch.setenv("FAKE_TRAINER_STEP_SECONDS", "0")
    write_dataset(isolated_project / "datasets" / "bespoke_punks", count=4, seed=9)
    runner = CliRunner()

    trained = runner.invoke(main, ["train", "-r", "128", "--set", "max_train_epochs=2", "--set", "mixed_precision=no",
                                   "-q"], catch_exceptions=False)
    assert trained.exit_code == 0, trained.output
    (run_dir,) = [p for p in (isolated_project / "outputs").iterdir() if p.is_dir()]
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "finished" and manifest["epochs_done"] == 2
    # train processed the finished run on its own (the metrics and best epoch are there at once)
    assert json.loads((run_dir / "report" / "report.json").read_text())["best"]["epoch"] in (1, 2)

    processed = runner.invoke(main, ["process", str(run_dir), "--palette", "dataset", "--quiet"],
                              catch_exceptions=False)
    assert processed.exit_code == 0, processed.output
    report = json.loads((run_dir / "report" / "report.json").read_text())
    epochs = {e["epoch"] for e in report["epochs"]}
    assert {1, 2} <= epochs
    for sample in report["samples"]:
        for candidate in sample["candidates"].values():
            assert Image.open(run_dir / candidate["file"]).size == (24, 24)
    assert report["best"]["epoch"] in (1, 2)

    reviewed = runner.invoke(main, ["review", str(run_dir), "-q"], catch_exceptions=False)
    assert reviewed.exit_code == 0, reviewed.output
    html = (run_dir / "report" / "index.html").read_text()
    assert manifest["id"] in html and "not real training" not in html  # a real (fake-trained) run: no simulator banner

    listed = runner.invoke(main, ["runs", "--json"], catch_exceptions=False)
    (item,) = json.loads(listed.stdout)
    assert item["id"] == manifest["id"] and item["best_epoch"] == report["best"]["epoch"]
