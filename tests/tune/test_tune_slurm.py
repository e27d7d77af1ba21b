"""`bespoke tune --slurm 2` on the real one-node Slurm (scripts/slurm-local.sh, or the one .ci/run started) with the
fake trainer: two array tasks pull the 4 trials of one study from its shared journal until the budget is spent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tune_fixtures import journal_trials, use_optimum, write_space

from bespoke.cli import main
from bespoke.run.manifest import load_manifest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "run"))
from test_slurm_cluster import queue_empty, slurm_cluster, wait_for  # noqa: E402,F401 - the one-node cluster

pytestmark = pytest.mark.slurm


@pytest.fixture
def cluster(slurm_cluster, fake, monkeypatch):  # noqa: F811 - the fixture imported above
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster))


def test_two_slurm_workers_finish_a_four_trial_study(cluster, isolated_project, monkeypatch):
    use_optimum(monkeypatch, step_seconds=0.05)
    write_space(isolated_project, name="slurmy", trials=4, epochs=2, startup=5)
    result = CliRunner().invoke(main, ["tune", "space.toml", "--slurm", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "submitted 2 worker task(s) of study slurmy" in result.output
    wait_for(queue_empty, timeout=400, what="the workers to finish")
    trials = journal_trials(isolated_project, "slurmy")
    logs = "\n".join(p.read_text() for p in (isolated_project / "outputs/tunes/slurmy").glob("slurm-*.out"))
    assert [t.number for t in trials] == [0, 1, 2, 3], logs
    assert {t.state.name for t in trials} == {"COMPLETE"}, logs
    runs = {Path(t.user_attrs["run_dir"]) for t in trials}
    assert len(runs) == 4 and all(load_manifest(r).status == "finished" for r in runs)
    report = CliRunner().invoke(main, ["tune", "report", "slurmy", "--json", "--no-review"], catch_exceptions=False)
    assert report.exit_code == 0 and '"best":' in report.output


def test_cancel_stops_a_studys_workers_and_tune_again_resumes_the_cancelled_trial(cluster, isolated_project,
                                                                                 monkeypatch):
    use_optimum(monkeypatch, step_seconds=0.5)
    write_space(isolated_project, name="cancelled", trials=2, epochs=3, startup=5)
    result = CliRunner().invoke(main, ["tune", "space.toml", "--slurm", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output

    def training() -> bool:
        runs = [load_manifest(p.parent) for p in (isolated_project / "outputs").glob("*/run.json")]
        return any(m.status == "running" and m.epoch_log for m in runs)

    wait_for(training, timeout=300, what="the first trial to train an epoch")
    cancel = CliRunner().invoke(main, ["cancel", "cancelled"], catch_exceptions=False)
    assert cancel.exit_code == 0 and "cancelled 1 worker task(s) of study cancelled" in cancel.output
    trials = journal_trials(isolated_project, "cancelled")
    assert [t.state.name for t in trials] == ["RUNNING"] and trials[0].user_attrs["interrupted"]
    run = Path(trials[0].user_attrs["run_dir"])
    assert load_manifest(run).status == "interrupted"
    again = CliRunner().invoke(main, ["tune", "space.toml", "--quiet"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    trials = journal_trials(isolated_project, "cancelled")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert Path(trials[0].user_attrs["run_dir"]) == run and load_manifest(run).attempt.number == 2
