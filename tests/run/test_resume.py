"""What a launch starts from, decided from disk: finished from the final checkpoint whatever the status says,
resume samples kept apart from the untrained model's, hand-edited configs checked, demo runs never trained,
`inspect` catching the short `ss_steps` sd-scripts writes after a resume, files created under the umask."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner
from faultkit import PROMPTS, disk_state, make_run
from manifest_helpers import change_manifest, manifest_of

from bespoke.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _interrupt_after_epoch_1(run, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_FAIL_AT_STEP", "3")  # a crash in epoch 2: the epoch-1 state is on disk
    assert invoke("train", "--run", str(run), "--no-process").exit_code == 5
    monkeypatch.delenv("FAKE_TRAINER_FAIL_AT_STEP")


@pytest.mark.slow
def test_resume_keeps_the_untrained_samples_and_inspect_flags_the_short_ss_steps(fake, isolated_project,
                                                                                 monkeypatch):
    run = make_run(isolated_project)
    _interrupt_after_epoch_1(run, monkeypatch)
    untrained = sorted(p.name for p in (run / "model" / "sample").glob("*_e000000_*.png"))
    result = invoke("train", "--run", str(run), "--no-process")
    assert result.exit_code == 0 and "resuming from hand-000001-state (was failed)" in result.output
    state = disk_state(run)
    assert sorted(p.name for p in (run / "model" / "sample").glob("*_e000000_*.png")) == untrained
    assert state.resume_samples == PROMPTS and len(state.attempt["resume_samples"]) == PROMPTS
    assert all(name.startswith("model/sample/resume-2/") for name in state.attempt["resume_samples"])
    assert manifest_of(run)["samples"]["by_epoch"]["0"] == PROMPTS
    from bespoke.run.inspect import inspect_path

    found = {e["file"]: e["mismatches"] for e in inspect_path(run)["checkpoints"]}
    # epoch 1 was written before the resume (2 steps), the last two after it: their step count restarted
    assert found["hand-000001.safetensors"] == []
    assert found["hand-000002.safetensors"] == [
        "ss_steps 2 in metadata, but epoch 2 x 2 steps per epoch = 4 in the run's config (sd-scripts restarts its "
        "step count after --resume; the weights are not affected)"]
    assert found["hand.safetensors"][0].startswith("ss_steps 4 in metadata, but epoch 3 x 2 steps per epoch = 6")
    assert "2 checkpoint(s) disagree" in invoke("inspect", str(run)).output


@pytest.mark.slow
def test_a_clean_run_has_no_steps_mismatch(fake, isolated_project):
    from bespoke.run.inspect import inspect_path

    run = make_run(isolated_project)
    assert invoke("train", "--run", str(run), "--no-process").exit_code == 0
    assert [e["mismatches"] for e in inspect_path(run)["checkpoints"]] == [[], [], []]


@pytest.mark.slow
def test_finished_is_decided_from_disk_whatever_run_json_says(fake, isolated_project):
    run = make_run(isolated_project)
    assert invoke("train", "--run", str(run), "--no-process").exit_code == 0
    change_manifest(run, status="interrupted")  # e.g. the signal arrived after the last checkpoint
    result = invoke("train", "--run", str(run))
    assert result.exit_code == 0 and "already finished (every epoch is on disk)" in result.output
    assert manifest_of(run)["status"] == "finished" and len(fake.read_text().splitlines()) == 1


@pytest.mark.slow
def test_no_state_says_what_restart_would_lose(fake, isolated_project):
    run = make_run(isolated_project)
    assert invoke("train", "--run", str(run), "--no-process").exit_code == 0
    for state in (run / "model").glob("*-state"):
        for file in state.iterdir():
            file.unlink()
        state.rmdir()
    (run / "model" / "hand.safetensors").unlink()
    change_manifest(run, status="interrupted")
    result = invoke("train", "--run", str(run))
    assert result.exit_code == 4
    assert "2 epoch(s)" in result.output and "hand-000001.safetensors, hand-000002.safetensors" in result.output
    assert "--restart trains every epoch again" in result.output and "model.prev-N" in result.output


@pytest.mark.slow
def test_a_hand_edited_config_is_checked_then_used_and_recorded_or_refused(fake, isolated_project):
    from bespoke.fsutil import sha256_file

    run = make_run(isolated_project)
    training = run / "config" / "training.toml"
    change_manifest(run, config_sha256={"training.toml": sha256_file(training)})
    training.write_text(training.read_text().replace("max_train_epochs", "max_train_epochz"))
    refused = invoke("train", "--run", str(run))
    assert refused.exit_code == 2 and "was edited by hand since plan and fails the check" in refused.output
    assert "max_train_epochz" in refused.output and manifest_of(run)["status"] == "planned"
    assert not fake.exists()  # nothing launched
    training.write_text(training.read_text().replace("max_train_epochz = 3", "max_train_epochs = 2"))
    used = invoke("train", "--run", str(run), "--no-process")
    assert used.exit_code == 0 and "config/training.toml was edited by hand since plan" in used.output
    attempt = manifest_of(run)["attempt"]
    assert attempt["edited_configs"] == {"training.toml": sha256_file(training)}
    assert attempt["bespoke_version"] and attempt["trainer"]["versions"]  # both versions, per attempt
    assert manifest_of(run)["epochs_done"] == 2


def test_a_demo_run_is_never_trained_and_a_real_run_never_simulated(fake, isolated_project):
    from bespoke.demo.demo import run_demo
    from bespoke.settings import load_settings

    result = run_demo(load_settings(), isolated_project / "demo", epochs=2, prompts=2, quick=True,
                      resolutions=(64,))
    demo_run = result.runs[0].run_dir
    refused = invoke("train", "--run", str(demo_run))
    assert refused.exit_code == 4 and "SIMULATED" in refused.output and not fake.exists()
    assert manifest_of(demo_run)["status"] == "finished" and manifest_of(demo_run)["simulated"]
    # the other way: a real run inside the demo's outputs is never filled with simulated samples
    change_manifest(demo_run, demo=False, simulated=False, status="planned")
    (demo_run / "model").rename(demo_run / "model.real")
    import pytest

    from bespoke.errors import RunError

    with pytest.raises(RunError, match="real run"):
        run_demo(load_settings(), isolated_project / "demo", epochs=2, prompts=2, quick=True, resolutions=(64,))
    assert not (demo_run / "model").exists() and not manifest_of(demo_run)["simulated"]


@pytest.mark.slow
def test_files_and_folders_honour_the_umask(fake, isolated_project):
    old = os.umask(0o022)
    try:
        assert invoke("train", "-r", "64", "--set", "max_train_epochs=1", "--set", "mixed_precision=no",
                      "--no-process").exit_code == 0
        run = next(p for p in (isolated_project / "outputs").iterdir() if p.is_dir())
        assert stat.S_IMODE(run.stat().st_mode) == 0o755
        assert stat.S_IMODE((run / "run.json").stat().st_mode) == 0o644
        assert stat.S_IMODE((run / "config" / "training.toml").stat().st_mode) == 0o644
        os.umask(0o077)
        from bespoke.fsutil import atomic_write_text

        atomic_write_text(isolated_project / "private.txt", "x")
        assert stat.S_IMODE((isolated_project / "private.txt").stat().st_mode) == 0o600
    finally:
        os.umask(old)
