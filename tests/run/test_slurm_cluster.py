"""`bespoke sweep --slurm`, `bespoke cancel` and `bespoke runs` against a real one-node Slurm
(scripts/slurm-local.sh: munged, slurmctld and slurmd from Debian's packages) with the fake trainer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from locations import REPO
from manifest_helpers import manifest_of

from bespoke.cli import main

pytestmark = pytest.mark.slurm
SCRIPT = REPO / "scripts" / "slurm-local.sh"
SWEEP = """\
overrides = { max_train_epochs = 3, mixed_precision = "no", save_state = true }
[[run]]
resolution = 64
name = "dim"
overrides = { network_dim = 4 }
[[run]]
resolution = 64
name = "dim"
overrides = { network_dim = 8 }
[[run]]
resolution = 128
name = "wide"
"""


def _why_no_slurm() -> str | None:
    missing = [p for p in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(p) is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} missing: apt-get install -y slurmctld slurmd munge)"
    if os.geteuid() != 0:
        return "the local one-node Slurm needs root (slurmd starts jobs as their owner)"
    return None


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A one-node Slurm for the session: the one CI started (BESPOKE_TEST_SLURM, see .ci/run) when it is up,
    else one of our own from scripts/slurm-local.sh; yields its slurm.conf. Skips with the reason when Slurm
    cannot run here."""
    reason = _why_no_slurm()
    if reason:
        pytest.skip(reason)
    shared = os.environ.get("BESPOKE_TEST_SLURM")
    if shared and subprocess.run([str(SCRIPT), "status", shared], capture_output=True, timeout=60).returncode == 0:
        yield Path(shared) / "slurm.conf"
        return
    folder = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([str(SCRIPT), "start", str(folder)], capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        subprocess.run([str(SCRIPT), "stop", str(folder)], capture_output=True, timeout=60)
        pytest.fail(f"scripts/slurm-local.sh start failed: {started.stderr.strip()}")
    try:
        yield folder / "slurm.conf"
    finally:
        subprocess.run([str(SCRIPT), "stop", str(folder)], capture_output=True, timeout=60)


@pytest.fixture
def cluster(slurm_cluster, fake, monkeypatch, isolated_project):
    """The fake trainer (slow enough to catch mid-run) and a sweep file; returns the sweep file."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster))
    monkeypatch.setenv("FAKE_TRAINER_STEP_SECONDS", "0.05")
    monkeypatch.setenv("COLUMNS", "160")  # the `runs` table in one line per run
    path = isolated_project / "sweep-dim.toml"
    path.write_text(SWEEP)
    return path


def invoke(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def submit(sweep_file: Path) -> dict:
    result = invoke("sweep", "--sweep", str(sweep_file), "--slurm", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):result.stdout.index("\n}") + 2])


def wait_for(predicate, timeout: float = 150.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def run_dirs(project: Path) -> dict[str, Path]:
    return {p.name: p for p in (project / "outputs").iterdir() if (p / "run.json").is_file()}


def statuses(project: Path) -> dict[str, str]:
    return {name: manifest_of(path)["status"] for name, path in run_dirs(project).items()}


def queue_empty() -> bool:
    return subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip() == ""


def test_a_sweep_runs_as_a_job_array_and_a_second_submission_submits_nothing(cluster, isolated_project):
    first = submit(cluster)
    assert first["job_id"] and len(first["runs"]) == 3
    assert [r["action"] for r in first["runs"]] == [f"submitted as task {first['job_id']}_{i}" for i in range(3)]
    # in flight: `runs` shows Slurm's state and the names (the shared one with what differs)
    in_flight = wait_for(lambda: [r for r in json.loads(invoke("runs", "--json").stdout)
                                  if r["slurm"] and r["slurm"]["state"] == "running"], what="a running task")
    assert in_flight[0]["slurm"]["node"] and in_flight[0]["slurm"]["elapsed"]
    again = submit(cluster)  # queued or running: never twice
    assert again["job_id"] is None
    assert all(("already" in r["action"]) or r["action"] == "finished (skipped)" for r in again["runs"])
    wait_for(lambda: set(statuses(isolated_project).values()) == {"finished"}, what="every run to finish")
    wait_for(queue_empty, what="the queue to empty")

    listed = {r["id"]: r for r in json.loads(invoke("runs", "--json").stdout)}
    assert sorted(r["label"] for r in listed.values()) == ["dim · network_dim 4", "dim · network_dim 8", "wide"]
    for run_id, row in listed.items():
        assert row["slurm"]["state"] == "finished" and row["slurm"]["node"] and row["slurm"]["elapsed"]
        manifest = manifest_of(Path(row["path"]))
        assert manifest["slurm"]["job_id"] == first["job_id"] and manifest["name"] in ("dim", "wide")
        log = (Path(row["path"]) / "logs" / "slurm.log").read_text()
        assert f"slurm task {first['job_id']}_" in log and f"run {run_id} finished" in log
    table = invoke("runs").output  # name and Slurm columns: "finished <node> <elapsed>"
    assert all(f"finished {row['slurm']['node']} {row['slurm']['elapsed']}" in table for row in listed.values())
    assert "wide" in table

    third = submit(cluster)  # all finished: nothing submitted, the table and review are one command away
    assert third["job_id"] is None and {r["action"] for r in third["runs"]} == {"finished (skipped)"}
    sweep_dir = Path(third["folder"])
    record = json.loads((sweep_dir / "sweep.json").read_text())
    assert [s["job_id"] for s in record["submissions"]] == [first["job_id"]]
    script = (sweep_dir / "slurm-array.sh").read_text()
    assert "#SBATCH --requeue" in script and "#SBATCH --array=0-2" in script and 'train --run "$run"' in script
    # the script is re-submittable by hand: every run is finished, so each task only says so
    job = subprocess.run(["sbatch", "--parsable", str(sweep_dir / "slurm-array.sh")], capture_output=True,
                         text=True, check=True).stdout.strip()
    wait_for(queue_empty, what="the hand-submitted array to end")
    for path in run_dirs(isolated_project).values():
        assert "already finished" in (path / "logs" / "slurm.log").read_text().split(f"slurm task {job}_")[-1]
    assert set(statuses(isolated_project).values()) == {"finished"}


def _kill_task(project: Path, run_id: str) -> None:
    """SIGKILL bespoke and its trainer in one Slurm task, as a node failure would (nothing records it)."""
    import psutil

    run_dir = str(run_dirs(project)[run_id])
    supervisors = [p for p in psutil.process_iter(["cmdline"])
                   if "train" in (p.info["cmdline"] or []) and run_dir in (p.info["cmdline"] or [])]
    assert len(supervisors) == 1, supervisors
    victims = [supervisors[0], *supervisors[0].children(recursive=True)]
    assert len(victims) >= 2  # bespoke and the trainer (accelerate -> train_network.py)
    for process in victims:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)


@pytest.mark.xfail(strict=False, reason="open since the closed loop merged (passes on i19 alone): the third task has "
                   "left the queue when one run is cancelled, so the test's timing no longer holds; to look into")
def test_a_killed_task_resumes_and_cancel_leaves_resumable_runs(cluster, isolated_project, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_STEP_SECONDS", "0.4")  # slow: the runs are still training when we act
    first = submit(cluster)
    runs = [r["run"] for r in first["runs"]]
    victim = runs[0]

    def has_state():
        return list((run_dirs(isolated_project)[victim] / "model").glob("*-state"))

    wait_for(has_state, what="the first epoch's state folder")
    _kill_task(isolated_project, victim)
    wait_for(lambda: manifest_of(run_dirs(isolated_project)[victim])["slurm"] and
             f"{first['job_id']}_0" not in subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True,
                                                          text=True).stdout, what="the killed task to leave")
    assert manifest_of(run_dirs(isolated_project)[victim])["status"] == "running"  # nobody could record it

    one = invoke("cancel", runs[1])  # one run: only its task goes
    assert one.exit_code == 0, one.output
    queued = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True).stdout.split()
    assert f"{first['job_id']}_1" not in queued and f"{first['job_id']}_2" in queued
    assert manifest_of(run_dirs(isolated_project)[runs[1]])["slurm"]["cancelled_at"]
    cancelled = invoke("cancel", first["sweep"])
    assert cancelled.exit_code == 0, cancelled.output
    after = statuses(isolated_project)
    # nothing is left running; a run whose every epoch was already on disk when the cancel came is finished
    assert "running" not in after.values() and "interrupted" in after.values(), after
    for run_id in runs:
        manifest = manifest_of(run_dirs(isolated_project)[run_id])
        if run_id != victim and manifest["status"] == "interrupted":  # stopped through Slurm's SIGTERM
            assert manifest["attempt"]["reason"]
    assert queue_empty()

    monkeypatch.setenv("FAKE_TRAINER_STEP_SECONDS", "0.02")
    again = submit(cluster)  # resubmission: every unfinished run goes again and resumes
    assert again["job_id"] and again["job_id"] != first["job_id"]
    wait_for(lambda: set(statuses(isolated_project).values()) == {"finished"}, what="the resubmitted runs")
    resumed = manifest_of(run_dirs(isolated_project)[victim])
    assert resumed["attempt"]["resumed_from"] and resumed["slurm"]["job_id"] == again["job_id"]
    assert resumed["epochs_done"] == 3
    wait_for(queue_empty, what="the queue to empty")
