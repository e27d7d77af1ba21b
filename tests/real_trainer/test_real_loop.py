"""The closed loop on the real trainer: a 64 px run with a design held out for validation (named in run.json,
its loss read from sd-scripts' own event file), every epoch scored while the run trains, and a budget stop
after a complete epoch (stopped-early, its state kept for `--continue`: the fake-trainer tests resume it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EPOCHS = 8


def _runs(project: Path) -> set[Path]:
    return {p for p in (project / "outputs").glob("64-*") if (p / "run.json").is_file()}


@pytest.fixture(scope="module")
def budget_run(real, cpu_overrides):
    """Real `train -r 64`, 8 epochs, a quarter of the punks held out, at $3600 an hour (a dollar a second)
    with a budget of $60: the budget ends it after the first epoch or a few more (as busy as the CPUs are)."""
    before = _runs(real.project)
    overrides = [*cpu_overrides, "--set", f"max_train_epochs={EPOCHS}", "--set",
                 "bespoke.validation_share=0.25"]
    done = real.run("train", "-r", "64", "--prompts", "one_prompt.txt", "--no-process", "--gpu-price", "3600",
                    "--budget", "60", *overrides)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [run] = _runs(real.project) - before
    return run


def test_a_real_run_holds_designs_out_scores_each_epoch_and_stops_on_its_budget(budget_run):
    run = budget_run
    manifest = json.loads((run / "run.json").read_text())
    held = manifest["dataset"]["validation"]
    assert held["images"] == 1 and len(held["designs"]) == 1 and held["share"] == 0.25  # 4 punks x 0.25
    assert "validation_split = 1.0" in (run / "config" / "dataset.toml").read_text()
    assert "num validation images * repeats" in (run / "logs" / "train.log").read_text()
    assert manifest["status"] == "stopped-early", manifest.get("attempt")
    early = manifest["early_stop"]
    assert early["rule"] == "budget $60.00" and 1 <= early["after_epoch"] == manifest["epochs_done"] < EPOCHS
    log = sorted(manifest["epoch_log"], key=lambda r: r["epoch"])
    assert [r["epoch"] for r in log] == list(range(1, manifest["epochs_done"] + 1))
    for record in log:
        assert record["validation_loss"] is not None and record["validation_loss"] > 0  # the event file's
        assert record["train_loss"] is not None and record["seconds"] > 0
        assert record["cost_usd"] == pytest.approx(record["seconds"], abs=0.01)  # a dollar a second
        # each epoch judged while training: a score, or why its random-weight samples have none
        assert record["score"] is not None or record["score_error"], record
    # stopped before the next epoch would pass $60: what was spent plus one more epoch is over it
    spent = sum(r["cost_usd"] for r in log)
    later = [r["seconds"] for r in log[1:]] or [log[0]["seconds"]]
    assert spent + sum(later) / len(later) > 60
    state = run / "model" / f"{manifest['output_name']}-{manifest['epochs_done']:06d}-state"
    assert state.is_dir(), sorted(p.name for p in (run / "model").iterdir())
    assert manifest["cost_usd"] >= spent  # the run's cost: the whole attempt, the final save included

