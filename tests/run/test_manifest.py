"""run.json as a typed RunManifest: round trip, the schema 1 upgrade, strictness, and attempts that never mix."""

from __future__ import annotations

import json

import pytest

from bespoke.errors import RunError
from bespoke.run.manifest import SCHEMA_VERSION, RunManifest, load_manifest, save_manifest

# run.json as bespoke 0.1 (schema 1) left it after a finished run: one flat dict, the trainer's facts written
# over bespoke's own "versions"
V1_FINISHED = {
    "schema_version": 1, "id": "64-default-1234abcd", "status": "finished", "created_at": "2026-11-30T10:00:00+00:00",
    "resolution": 64, "preset": None, "preset_layers": ["base", "res-64"], "overrides": [], "layout": "stretch",
    "simulated": False, "dataset": {"source": "/d", "prepared_dir": "/p", "sha256": "x", "images": 4},
    "config_sha256": {"training.toml": "a"}, "output_name": "bespoke_64px", "num_epochs": 2, "sample_size": 64,
    "prompts": [{"index": 0, "prompt": "punk"}], "argv": ["python", "-m", "accelerate.commands.launch"],
    "env_overrides": {"PYTHONUNBUFFERED": "1"}, "sd_scripts": "/sd", "sd_scripts_commit": "48d368fa",
    "base_model": "m", "versions": {"python": "3.11.7", "torch": "2.14.1", "accelerate": "1.6.0"},
    "started_at": "2026-11-30T10:01:00+00:00", "finished_at": "2026-11-30T10:03:00+00:00", "exit_code": 0,
    "cwd": "/sd", "resumed_from": None, "reason": None, "log_tail": None, "epochs_total": 2, "host": "box",
    "epochs_done": 2, "checkpoints": [{"file": "model/bespoke_64px.safetensors", "epoch": 2, "steps": 4,
                                       "final": True}],
    "samples": {"count": 3, "by_epoch": {"0": 1, "1": 1, "2": 1}}, "last_loss": 0.1, "final_loss": 0.1,
    "duration_s": 120.0, "gpu": None, "updated_at": "2026-11-30T10:03:00+00:00",
}


def test_round_trip_is_exact(tmp_path):
    manifest = RunManifest(id="r", resolution=512, preset="baseline-512", argv=["a", "b"], num_epochs=10)
    manifest.new_attempt(argv=["a", "b", "--resume", "model/x-state"], host="box")
    save_manifest(tmp_path, manifest)
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION and list(data)[0] == "schema_version"
    assert load_manifest(tmp_path) == manifest


def test_schema_1_is_upgraded_keeping_everything(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps(V1_FINISHED))
    manifest = load_manifest(tmp_path)
    assert manifest.status == "finished" and manifest.epochs_done == 2 and manifest.final_loss == 0.1
    attempt = manifest.attempt
    assert attempt is not None and attempt.number == 1 and attempt.exit_code == 0 and attempt.host == "box"
    assert attempt.started_at == V1_FINISHED["started_at"] and attempt.argv == V1_FINISHED["argv"]
    # the trainer's versions that overwrote bespoke's are kept as the trainer's
    assert attempt.trainer["versions"]["torch"] == "2.14.1" and manifest.versions == {}
    save_manifest(tmp_path, manifest)  # written back as schema 2
    assert json.loads((tmp_path / "run.json").read_text())["schema_version"] == SCHEMA_VERSION


def test_a_new_attempt_replaces_the_last_one_whole(tmp_path):
    manifest = RunManifest(id="r")
    first = manifest.new_attempt(argv=["x"])
    first.exit_code, first.reason, first.log_tail = 1, "trainer exited with code 1", ["Traceback"]
    second = manifest.new_attempt(argv=["x", "--resume", "s"])
    assert second.number == 2 and (second.exit_code, second.reason, second.log_tail) == (None, None, None)
    assert manifest.attempt is second


@pytest.mark.parametrize("change, message", [
    ({"schema_version": 5}, "schema_version 5, this bespoke reads 4"),
    ({"schema_version": 2, "netwrk_dim": 4}, "unknown key(s) netwrk_dim"),
    ({"schema_version": 2, "status": "done"}, "status 'done' is not one of"),
    ({"schema_version": 2, "attempt": {"number": 1, "started_at": "t", "exitcode": 0}}, "attempt: unknown key(s)"),
    ({"schema_version": 4, "epoch_log": [{"epoch": 1, "scor": 0.5}]}, "epoch_log: unknown key(s) scor"),
    ({"schema_version": 4, "status": "stopped-early", "early_stop": {"rule": "peaked:2"}}, "early_stop"),
])
def test_bad_run_json_is_a_one_line_error(tmp_path, change, message):
    (tmp_path / "run.json").write_text(json.dumps({"id": "r", **change}))
    with pytest.raises(RunError) as info:
        load_manifest(tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [("{ nope", "unreadable run.json"), ("[1]", "not a JSON object")])
def test_unreadable_run_json(tmp_path, text, message):
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(RunError, match=message):
        load_manifest(tmp_path)
    with pytest.raises(RunError, match="no run.json here"):
        load_manifest(tmp_path / "elsewhere")
