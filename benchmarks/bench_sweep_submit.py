"""Submitting a 12-run sweep to Slurm, and what each array task spends before its trainer starts.

Measured in one run against a real one-node Slurm (scripts/slurm-local.sh; started here in a temporary folder
unless SLURM_CONF already points at a cluster that answers), with the fake sd-scripts checkout and a synthetic
8-punk dataset in a throwaway project:
- `bespoke sweep --slurm` for 12 new runs (64 and 128 px x network_dim 1..6), split into plan + validate (every
  run folder written and its configs checked), preflight, Slurm queries (squeue), and sbatch --hold + run.json
  records + scontrol release; then the same command again (everything queued or finished: nothing submitted);
- per task: from the first line of the array script (its timestamp in <run>/logs/slurm.log) to the moment
  bespoke launched the trainer (a wrapper around the trainer's Python notes the time), i.e. Python start-up,
  bespoke's import, settings, lock, run.json and the launch argv.

Usage: .venv/bin/python benchmarks/bench_sweep_submit.py   (needs root and Debian's slurmctld, slurmd, munge)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAKE = REPO / "tests" / "fakes" / "sd_scripts"
SCRIPT = REPO / "scripts" / "slurm-local.sh"
SWEEP = "".join(f"[[run]]\nresolution = {r}\nname = \"dim\"\noverrides = {{ network_dim = {d} }}\n"
                for r in (64, 128) for d in range(1, 7))
WRAPPER = """#!/bin/sh
case "$*" in *accelerate.commands.launch*) date +%s.%N >> trainer_launched.txt ;; esac
exec {python} "$@"
"""


class Timers:
    """Wall time spent inside some library functions (wrapped for this measurement only)."""

    def __init__(self):
        self.spent: dict[str, float] = {}

    def wrap(self, owner, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.spent[label] = self.spent.get(label, 0.0) + time.perf_counter() - start

        setattr(owner, name, timed)


def _cluster(tmp: Path) -> Path | None:
    """A folder to stop afterwards when we started the cluster, None when an existing one answers."""
    if os.environ.get("SLURM_CONF") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0:
        return None
    folder = tmp / "slurm"
    subprocess.run([str(SCRIPT), "start", str(folder)], check=True, capture_output=True, text=True)
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    return folder


def _task_overheads(outputs: Path) -> list[float]:
    out = []
    for run in sorted(p for p in outputs.iterdir() if (p / "run.json").is_file()):
        first = (run / "logs" / "slurm.log").read_text().splitlines()[0].split()[0]
        started = datetime.fromisoformat(first[:26] + first[29:]).timestamp()  # ns -> us for fromisoformat
        launched = float((run / "trainer_launched.txt").read_text().split()[0])
        out.append(launched - started)
    return out


def _submit(settings, sweep_file: Path):
    from bespoke.run.slurm import slurm_request
    from bespoke.run.sweep import submit_to_slurm

    start = time.perf_counter()
    submission = submit_to_slurm(settings, request=slurm_request(settings.slurm), sweep_file=sweep_file)
    return submission, time.perf_counter() - start


def main() -> None:
    sys.path.insert(0, str(REPO))
    if shutil.which("sbatch") is None or os.geteuid() != 0:
        sys.exit("needs Slurm (apt-get install -y slurmctld slurmd munge) and root")
    from bespoke.dataset.synthetic import write_dataset
    from bespoke.run import slurm, slurm_sweep, sweep
    from bespoke.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="bespoke-bench-") as tmp_name:
        tmp = Path(tmp_name)
        started = _cluster(tmp)
        try:
            project = tmp / "project"
            write_dataset(project / "datasets" / "bespoke_punks", count=8, seed=3)
            wrapper = tmp / "python"
            wrapper.write_text(WRAPPER.format(python=sys.executable))
            wrapper.chmod(0o755)
            os.environ.update({"BESPOKE_PROJECT": str(project), "BESPOKE_SD_SCRIPTS": str(FAKE),
                               "BESPOKE_PYTHON": str(wrapper), "FAKE_TRAINER_STEP_SECONDS": "0.01",
                               "PYTHONPATH": str(REPO)})
            os.chdir(project)
            (project / "sweep-dim.toml").write_text("overrides = { max_train_epochs = 1 }\n" + SWEEP)
            settings = load_settings(project)
            timers = Timers()
            timers.wrap(sweep, "plan_entries", "plan + validate 12 runs")
            timers.wrap(sweep, "preflight", "preflight")
            timers.wrap(slurm_sweep, "task_states", "squeue (what is queued)")
            for name in ("submit", "release"):
                timers.wrap(slurm, name, "sbatch --hold + scontrol release")
            submission, cold = _submit(settings, project / "sweep-dim.toml")
            parts = dict(timers.spent)
            timers.spent.clear()
            _again, warm = _submit(settings, project / "sweep-dim.toml")
            assert submission.job_id and _again.job_id is None
            deadline = time.monotonic() + 600
            while subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip():
                if time.monotonic() > deadline:
                    sys.exit("the sweep did not finish in 10 minutes")
                time.sleep(0.5)
            overheads = _task_overheads(settings.outputs_dir)
        finally:
            if started is not None:
                subprocess.run([str(SCRIPT), "stop", str(started)], capture_output=True)
    _report(cold, warm, parts, overheads)


def _report(cold: float, warm: float, parts: dict[str, float], overheads: list[float]) -> None:
    print(f"{'measure':<46} {'seconds':>9} {'ratio':>8}")
    print(f"{'sweep --slurm, 12 new runs (submit host)':<46} {cold:>9.3f} {1.0:>8.2f}")
    for label, spent in parts.items():
        print(f"{'  ' + label:<46} {spent:>9.3f} {spent / cold:>8.2f}")
    other = cold - sum(parts.values())
    print(f"{'  script, sweep.json, rest':<46} {other:>9.3f} {other / cold:>8.2f}")
    print(f"{'sweep --slurm again (nothing to submit)':<46} {warm:>9.3f} {warm / cold:>8.2f}")
    mean = statistics.mean(overheads)
    print(f"{'per task: script start -> trainer launched':<46} {mean:>9.3f} {mean / cold:>8.2f}"
          f"   (mean of {len(overheads)}; min {min(overheads):.3f}, max {max(overheads):.3f})")


if __name__ == "__main__":
    main()
