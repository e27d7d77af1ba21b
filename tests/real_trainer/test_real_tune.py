"""`bespoke tune` against the real sd-scripts: a 2-trial study of 2 epochs at 64 px (one prompt, CPU-safe
settings) finishes, each trial an ordinary finished run judged live each epoch, and `tune report` reports it.
The harness's weights are random, so every sample is degenerate and no epoch has a score (the live judge says
so): the objective is the validation loss on the held-out designs, which the real trainer does compute."""

from __future__ import annotations

import json
from pathlib import Path

SPACE = """
[study]
name = "real"
resolution = 64
set = [{fixed}]
seed = 1
random_trials = 2
objective = "val-loss"

[pruner]
kind = "none"

[budget]
trials = 2

[params.learning_rate]
type = "float"
low = 1e-4
high = 1e-3
log = true
"""


def test_a_two_trial_study_of_two_epochs_at_64_px_finishes_and_is_reported(real, cpu_overrides):
    fixed = [value for flag, value in zip(cpu_overrides[::2], cpu_overrides[1::2], strict=True) if flag == "--set"]
    fixed.append(f'bespoke.prompts="{real.project / "one_prompt.txt"}"')
    fixed.append("bespoke.validation_share=0.25")  # one design of the harness's punks held out
    (real.project / "real-space.toml").write_text(SPACE.format(fixed=", ".join(json.dumps(v) for v in fixed)))
    done = real.run("tune", "real-space.toml", "--quiet", timeout=2400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = real.run("tune", "report", "real", "--json")
    assert report.returncode == 0, report.stderr[-2000:]
    data = json.loads(report.stdout[report.stdout.index("{"):report.stdout.rindex("}") + 1])
    assert [t["number"] for t in data["trials"]] == [0, 1]
    assert {t["state"] for t in data["trials"]} == {"COMPLETE"}
    assert data["best"] in (0, 1) and data["margin"] is not None and data["review"]
    for trial in data["trials"]:
        manifest = json.loads((Path(trial["run_dir"]) / "run.json").read_text())
        assert manifest["status"] == "finished" and manifest["name"] == f"trial-{trial['number']}"
        assert [r["epoch"] for r in manifest["epoch_log"]] == [1, 2]
        assert all(r["validation_loss"] is not None for r in manifest["epoch_log"])
        assert all(r["score"] is not None or r["score_error"] for r in manifest["epoch_log"])  # judged, each epoch
        assert trial["best_epoch"] in (1, 2) and trial["value"] is not None
