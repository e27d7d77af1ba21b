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
overrides = { max_train_epochs = EPOCHS, mixed_precision = "no", save_state = true }
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


def sweep_text(epochs: int) -> str:
    return SWEEP.replace("EPOCHS", str(epochs))


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
    path.write_text(sweep_text(3))
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


def queued_tasks() -> list[str]:
    """Every array task in the queue ("12_0", ...), pending or running; squeue failing fails the test."""
    done = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def task_processes(job_id: str) -> list[str]:
    """The processes still alive that one of the array's tasks started (its Slurm environment says so)."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if process.environ().get("SLURM_ARRAY_JOB_ID") == job_id:
                found.append(f"{process.pid} {' '.join(process.info['cmdline'] or [])[:120]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


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


LONG_EPOCHS = 6
HANG_AT_STEP = 7  # past the first epoch of every run (2 or 3 steps an epoch), well before its last


def states_on_disk(project: Path, run_id: str) -> list[Path]:
    return sorted((run_dirs(project)[run_id] / "model").glob("*-state/train_state.json"))


def training_with_state(project: Path, run_id: str) -> bool:
    """The run trains (run.json says so) and has an epoch's state on disk to resume from."""
    return run_id in run_dirs(project) and bool(states_on_disk(project, run_id)) and \
        manifest_of(run_dirs(project)[run_id])["status"] == "running"


def _assert_cancelled_resumable(project: Path, run_id: str) -> None:
    """Stopped by bespoke on Slurm's SIGTERM: interrupted, the cancel recorded, an epoch's state on disk."""
    manifest = manifest_of(run_dirs(project)[run_id])
    assert manifest["status"] == "interrupted", manifest["status"]
    assert manifest["slurm"]["cancelled_at"]
    assert manifest["attempt"]["stop"]["asked_by"] == "SIGTERM", manifest["attempt"]
    assert "SIGTERM" in manifest["attempt"]["reason"] and "resumes after epoch" in manifest["attempt"]["reason"]
    assert manifest["epochs_done"] >= 1 and states_on_disk(project, run_id)


def test_a_killed_task_resumes_and_cancel_leaves_resumable_runs(cluster, isolated_project, monkeypatch, request):
    """Every run's trainer hangs at a step past its first epoch (FAKE_TRAINER_HANG_AT_STEP), so each one is
    training, with a state on disk, whenever the test acts: the kill and both cancels reach running runs by
    construction, however slow the machine. The resubmission runs without the hang and finishes them all."""
    monkeypatch.setenv("FAKE_TRAINER_HANG_AT_STEP", str(HANG_AT_STEP))
    cluster.write_text(sweep_text(LONG_EPOCHS))
    first = submit(cluster)
    job = first["job_id"]
    request.addfinalizer(lambda: subprocess.run(["scancel", job], capture_output=True, timeout=60))  # hung tasks
    runs = [r["run"] for r in first["runs"]]
    victim = runs[0]
    wait_for(lambda: training_with_state(isolated_project, victim), what="the first run's epoch state")
    _kill_task(isolated_project, victim)
    wait_for(lambda: f"{job}_0" not in queued_tasks(), what="the killed task to leave the queue")
    assert manifest_of(run_dirs(isolated_project)[victim])["status"] == "running"  # nobody could record it

    for run_id in runs[1:]:  # the third task starts once a CPU is free (the local node has 2)
        wait_for(lambda run_id=run_id: training_with_state(isolated_project, run_id), what=f"{run_id} training")
    one = invoke("cancel", runs[1])  # one run: only its task goes
    assert one.exit_code == 0, one.output
    queued = queued_tasks()
    assert f"{job}_1" not in queued and f"{job}_2" in queued, queued
    _assert_cancelled_resumable(isolated_project, runs[1])
    assert manifest_of(run_dirs(isolated_project)[runs[2]])["status"] == "running"

    cancelled = invoke("cancel", first["sweep"])
    assert cancelled.exit_code == 0, cancelled.output
    assert queued_tasks() == [] and task_processes(job) == []
    for run_id in runs[1:]:
        _assert_cancelled_resumable(isolated_project, run_id)
    killed = manifest_of(run_dirs(isolated_project)[victim])  # its task is gone: the cancel marks it resumable
    assert killed["status"] == "interrupted" and "without bespoke recording it" in killed["attempt"]["reason"]
    assert killed["slurm"]["cancelled_at"] is None and states_on_disk(isolated_project, victim)

    monkeypatch.delenv("FAKE_TRAINER_HANG_AT_STEP")
    monkeypatch.setenv("FAKE_TRAINER_STEP_SECONDS", "0.02")
    again = submit(cluster)  # resubmission: every unfinished run goes again and resumes from its state
    assert again["job_id"] and again["job_id"] != job
    assert [r["action"] for r in again["runs"]] == [f"submitted as task {again['job_id']}_{i}" for i in range(3)]
    wait_for(lambda: set(statuses(isolated_project).values()) == {"finished"}, what="the resubmitted runs")
    wait_for(queue_empty, what="the queue to empty")
    for run_id in runs:
        resumed = manifest_of(run_dirs(isolated_project)[run_id])
        assert resumed["attempt"]["resumed_from"] and resumed["slurm"]["job_id"] == again["job_id"]
        assert resumed["epochs_done"] == LONG_EPOCHS
    assert task_processes(job) == [] and task_processes(again["job_id"]) == []
