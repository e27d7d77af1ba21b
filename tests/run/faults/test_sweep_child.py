"""`bespoke sweep --gpus` when one child's trainer is killed: that run fails, its neighbour on the other GPU
finishes, nothing is orphaned, and the same sweep command again resumes the killed run from its state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from faultkit import disk_state, make_env, seen, trainers, wait_for

from bespoke.dataset.synthetic import write_dataset
from bespoke.run.manifest import load_manifest

pytestmark = pytest.mark.slow  # a whole sweep of bespoke subprocesses

SWEEP = ("sweep", "-r", "128,64", "--gpus", "0,1", "--no-process", "--set", "max_train_epochs=3",
         "--set", "mixed_precision=no", "--set", "num_repeats=1", "--set", "batch_size=2")


def _sweep(root, **knobs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bespoke", *SWEEP], env=make_env(root, **knobs), cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _runs(root) -> dict[int, object]:
    out = {}
    for run in (root / "outputs").iterdir():
        if (run / "run.json").exists():
            out[load_manifest(run).resolution] = run
    return out


def test_a_killed_sweep_child_fails_alone_and_the_same_sweep_resumes_it(tmp_path, fault_table):
    write_dataset(tmp_path / "datasets" / "bespoke_punks", count=4, seed=5)
    proc = _sweep(tmp_path, FAKE_TRAINER_STEP_SECONDS="0.3")
    try:
        def victim_ready():
            runs = _runs(tmp_path)
            return 128 in runs and list((runs[128] / "model").glob("*-000001-state")) and len(seen(tmp_path)) == 2

        assert wait_for(victim_ready, 240), proc.stderr.read1().decode() if proc.poll() is not None else "slow"
        victim = next(s for s in seen(tmp_path) if s["cwd"] == str(_runs(tmp_path)[128]))
        os.kill(victim["pid"], signal.SIGKILL)  # the OOM killer / a crashed CUDA driver takes one trainer
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    runs = _runs(tmp_path)
    after = {res: disk_state(run) for res, run in runs.items()}
    assert proc.returncode == 5, (out + err).decode()  # "1 of 2 runs did not finish"
    assert after[128].status == "failed" and after[64].status == "finished"
    assert not trainers(runs[128]) and not trainers(runs[64]), "a process outlived the sweep"
    again = _sweep(tmp_path)
    out2, err2 = again.communicate(timeout=300)
    final = {res: disk_state(run) for res, run in runs.items()}
    fault_table.append(f"| sweep --gpus 0,1: trainer of the 128 px run killed (-9) mid-run | 128: "
                       f"{after[128].describe()}; 64: {after[64].status} | {proc.returncode} | - | "
                       f"{again.returncode}: 128: {final[128].describe()}; 64 skipped |")
    assert again.returncode == 0, (out2 + err2).decode()
    assert final[128].status == "finished" and final[128].attempt["resumed_from"].endswith("-state")
    assert "already finished, skipped" in (out2 + err2).decode() and len(seen(tmp_path)) == 3
