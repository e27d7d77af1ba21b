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


# ---------------------------------------------------------------- what a resume keeps, and the samples it fills


def _checkpoint(path, epoch: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": np.zeros((2, 2), np.float16)}, str(path), metadata={"ss_epoch": str(epoch)})


def _state(model, name: str, epoch: int, whole: bool = True) -> None:
    import json

    folder = model / name
    folder.mkdir(parents=True)
    (folder / "train_state.json").write_text(json.dumps({"current_epoch": epoch, "current_step": 2 * epoch}))
    for file in ("model.safetensors", "optimizer.bin", "scheduler.bin") + (("random_states_0.pkl",) if whole else ()):
        (folder / file).write_bytes(b"x")


def _sample(folder, epoch: int, prompt: int, seed: int | None = None, ts: str = "20261207101010"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"hand_e{epoch:06d}_{prompt:02d}_{ts}" + (f"_{seed}" if seed is not None else "") + ".png")
    path.write_bytes(f"image {epoch} {prompt} {ts}".encode())
    return path


def test_epochs_done_counts_what_a_resume_keeps(tmp_path):
    from bespoke.run.paths import RunPaths
    from bespoke.run.resume import epochs_kept

    paths = RunPaths(tmp_path)
    _checkpoint(paths.model_dir / "hand-000001.safetensors", 1)
    _checkpoint(paths.model_dir / "hand-000002.safetensors", 2)
    _state(paths.model_dir, "hand-000001-state", 1)
    _state(paths.model_dir, "hand-000002-state", 2, whole=False)  # cut while it was written
    assert epochs_kept(paths, "hand", {"save_state": True}, 3) == 1  # the resume starts after epoch 1
    assert epochs_kept(paths, "hand", {}, 3) == 2  # without save_state: the whole checkpoints
    (paths.model_dir / "hand-000002.safetensors").write_bytes(b"cut")
    assert epochs_kept(paths, "hand", {}, 3) == 1
    _checkpoint(paths.model_dir / "hand.safetensors", 3)
    assert epochs_kept(paths, "hand", {"save_state": True}, 3) == 3  # finished: every epoch


def test_missing_samples_are_recorded_by_epoch_and_prompt(tmp_path):
    from bespoke.run.paths import RunPaths
    from bespoke.run.resume import samples_record

    paths = RunPaths(tmp_path)
    paths.prompts_txt.parent.mkdir(parents=True)
    paths.prompts_txt.write_text("a --d 1\n# a comment\nb --d 2\n")
    training = {"sample_prompts": "config/prompts.txt", "sample_every_n_epochs": 1}
    for epoch, prompt in ((0, 0), (0, 1), (1, 0), (1, 1), (2, 0)):
        _sample(paths.sample_dir, epoch, prompt, prompt + 1)
    record = samples_record(paths, training, 2)
    assert record["by_epoch"] == {"0": 2, "1": 2, "2": 1} and record["missing"] == {"2": [1]}
    assert "missing" not in samples_record(paths, training, 1)  # epoch 2 is not kept: nothing to say
    assert "missing" not in samples_record(paths, {**training, "sample_every_n_epochs": 2}, 1)


def test_the_resume_fills_the_resumed_epochs_missing_samples_from_its_redraw(tmp_path):
    from bespoke.run.paths import RunPaths
    from bespoke.run.resume import ResumeSamples

    paths = RunPaths(tmp_path)
    _state(paths.model_dir, "hand-000002-state", 2)
    untrained = [_sample(paths.sample_dir, 0, p, p + 1, "20261207090000") for p in range(2)]
    kept = _sample(paths.sample_dir, 2, 0, 1, "20261207095959")  # prompt 1 of epoch 2 was never drawn
    firsts = ResumeSamples(paths, 3, paths.model_dir / "hand-000002-state", {"sample_every_n_epochs": 1})
    redraws = [_sample(paths.sample_dir, 0, p, p + 1, "20261207110000") for p in range(2)]
    moved = firsts.collect()
    assert moved == [f"model/sample/resume-3/{r.name}" for r in sorted(redraws)]
    assert firsts.filled == ["model/sample/hand_e000002_01_20261207110000_2.png"]
    assert (tmp_path / firsts.filled[0]).read_bytes() == (paths.sample_dir / "resume-3" / redraws[1].name).read_bytes()
    assert all(p.exists() for p in untrained) and kept.read_bytes() == b"image 2 0 20261207095959"  # never replaced
    assert firsts.collect() == moved and len(firsts.filled) == 1  # once
    # an epoch that draws no samples gets none
    other = RunPaths(tmp_path / "other")
    _state(other.model_dir, "hand-000001-state", 1)
    quiet = ResumeSamples(other, 2, other.model_dir / "hand-000001-state", {"sample_every_n_epochs": 2})
    _sample(other.sample_dir, 0, 0, 1)
    assert len(quiet.collect()) == 1 and quiet.filled == []


def test_the_stop_note_says_where_the_next_run_resumes(tmp_path):
    from bespoke.run.manifest import RunManifest
    from bespoke.run.paths import RunPaths
    from bespoke.run.resume import stop_note

    paths = RunPaths(tmp_path)
    paths.training_toml.parent.mkdir(parents=True)
    paths.training_toml.write_text("[training]\nsample_at_first = true\nsave_state = true\n")
    manifest = RunManifest(id="hand", epochs_done=0)
    assert stop_note(paths, manifest, "SIGTERM", 1) == "stopped by SIGTERM during epoch 1; the next run starts over " \
                                                       "(no epoch was complete)"
    _state(paths.model_dir, "hand-000002-state", 2)
    manifest.epochs_done, manifest.samples = 2, {"missing": {"2": [0, 1]}}
    assert stop_note(paths, manifest, "SIGINT", 3) == (
        "stopped by SIGINT during epoch 3; the next run resumes after epoch 2 (hand-000002-state); epoch 2 lacks "
        "the samples of prompt(s) 0, 1 (the resume redraws them from its state)")


def test_the_stop_record_round_trips_through_run_json(tmp_path):
    from bespoke.run.manifest import (
        RunManifest,
        SignalSent,
        StopRecord,
        TrainerEnd,
        load_manifest,
        save_manifest,
    )

    manifest = RunManifest(id="hand")
    attempt = manifest.new_attempt()
    attempt.stop = StopRecord("SIGTERM", "graceful", [SignalSent("SIGINT", 12, "trainer", 0.01)], 3.2, 3.4,
                              ["saving the state of epoch 1"])
    attempt.trainer_end = TrainerEnd("KeyboardInterrupt (SIGINT)", "gate", None, "SIGINT", ["epoch 2/3"])
    save_manifest(tmp_path, manifest)
    again = load_manifest(tmp_path).attempt
    assert again.stop == attempt.stop and again.trainer_end == attempt.trainer_end


@pytest.mark.slow
def test_a_second_resume_starts_after_the_state_epoch_not_where_its_short_step_count_points(fake, isolated_project,
                                                                                             monkeypatch):
    """A resumed sd-scripts counts its steps from 0 again, and so do the states it writes; a plain --resume from
    one of them starts at current_step // steps per epoch: epochs already trained (seen on the real trainer).
    bespoke passes --initial_epoch (the state's epoch + 1), so no epoch is trained twice."""
    import json

    run = make_run(isolated_project)
    _interrupt_after_epoch_1(run, monkeypatch)  # attempt 1: epoch 1 and its state, then a crash
    monkeypatch.setenv("FAKE_TRAINER_FAIL_AT_STEP", "3")  # attempt 2 resumes epoch 2, saves its state, crashes
    assert invoke("train", "--run", str(run), "--no-process").exit_code == 5
    monkeypatch.delenv("FAKE_TRAINER_FAIL_AT_STEP")
    state = json.loads((run / "model" / "hand-000002-state" / "train_state.json").read_text())
    assert state == {"current_epoch": 2, "current_step": 2}  # 2 steps since ITS launch, not 4
    assert invoke("train", "--run", str(run), "--no-process").exit_code == 0
    launches = [json.loads(line) for line in fake.read_text().splitlines()]
    assert launches[2]["argv"][-4:] == ["--resume", "model/hand-000002-state", "--initial_epoch", "3"]
    log = (run / "logs" / "train.log").read_text()
    assert "epoch 3/3" in log and "epoch 2/3" not in log
    assert disk_state(run).samples == {str(e): PROMPTS for e in range(4)}  # no epoch's samples drawn twice
