"""bespoke itself failing while it supervises: an exception in the supervision loop, and a full disk while it
writes run.json. The trainer's tree is stopped before the error propagates, the lock is released, and the
same command afterwards continues from the last epoch."""

from __future__ import annotations

import errno

import pytest
from click.testing import CliRunner
from faultkit import EPOCHS, disk_state, make_run, trainers

from bespoke.cli import main
from bespoke.run import manifest as manifest_module
from bespoke.run.supervision import Supervision


@pytest.fixture
def fake_env(fake, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_STEP_SECONDS", "0.05")
    return fake


def _train(run):
    return CliRunner().invoke(main, ["train", "--run", str(run), "--no-process"])


@pytest.mark.slow
def test_an_exception_in_the_supervision_loop_stops_the_trainer_first(fake_env, isolated_project, monkeypatch,
                                                                       fault_table):
    run = make_run(isolated_project)
    original = Supervision.tick

    def buggy_tick(self):
        original(self)
        if self.manifest.epochs_done >= 1:
            raise RuntimeError("injected bug in the supervision loop")

    monkeypatch.setattr(Supervision, "tick", buggy_tick)
    monkeypatch.setenv("FAKE_TRAINER_HANG_AT_STEP", "3")  # it would hang in epoch 2: only bespoke can stop it
    result = _train(run)
    assert isinstance(result.exception, RuntimeError) and result.exit_code == 1  # it propagates
    after = disk_state(run)
    assert not trainers(run), "the trainer outlived the exception"
    assert after.status == "interrupted" and "injected bug" in after.attempt["reason"]
    assert not after.lock_record and after.epochs_done >= 1
    assert "[bespoke] exit code" in (run / "logs" / "train.log").read_text()  # the log is closed properly
    monkeypatch.setattr(Supervision, "tick", original)
    monkeypatch.delenv("FAKE_TRAINER_HANG_AT_STEP")
    again = _train(run)
    final = disk_state(run)
    fault_table.append(f"| exception in the supervision loop (after epoch 1) | {after.describe()} | 1 (the "
                       f"exception propagates) | - | {again.exit_code}: {final.describe()} |")
    assert again.exit_code == 0, again.output
    assert final.status == "finished" and final.epochs_done == EPOCHS
    assert final.attempt["resumed_from"] == "hand-000001-state" and len(fake_env.read_text().splitlines()) == 2


@pytest.mark.slow
def test_disk_full_while_writing_run_json(fake_env, isolated_project, monkeypatch, fault_table):
    run = make_run(isolated_project)
    real_write = manifest_module.atomic_write_json
    full = {"on": False}

    def writer(path, data):
        # the disk fills up once the first epoch is done: from then on no run.json write succeeds
        full["on"] = full["on"] or (data.get("status") == "running" and data.get("epochs_done", 0) >= 1)
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, data)

    monkeypatch.setattr(manifest_module, "atomic_write_json", writer)
    monkeypatch.setenv("FAKE_TRAINER_HANG_AT_STEP", "3")
    result = _train(run)
    assert result.exit_code == 4, result.output  # a one-line RunError, not a traceback
    assert "No space left on device" in result.output and "run the same command again" in result.output
    after = disk_state(run)
    assert not trainers(run), "the trainer outlived the full disk"
    # run.json is the last one written before the disk filled (atomic writes never leave half a file);
    # it still says running, but its supervisor is gone: `runs` shows it stale, never running
    assert after.status == "running" and not after.lock_record
    monkeypatch.setattr(manifest_module, "atomic_write_json", real_write)
    monkeypatch.delenv("FAKE_TRAINER_HANG_AT_STEP")
    listing = CliRunner().invoke(main, ["runs", "--json"])
    assert '"status": "stale"' in listing.output, listing.output
    again = _train(run)
    final = disk_state(run)
    fault_table.append(f"| disk full while writing run.json (after epoch 1) | {after.describe()} (runs: stale) | "
                       f"{result.exit_code} | - | {again.exit_code}: {final.describe()} |")
    assert again.exit_code == 0, again.output
    assert final.status == "finished" and final.epochs_done == EPOCHS
    assert final.attempt["resumed_from"] == "hand-000001-state"
