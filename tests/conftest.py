"""Shared fixtures: all state goes to tmp_path; ../shared data is optional."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from locations import FAKE_DIR, SHARED


def pytest_configure(config):
    """Give the children the tests start the terminal's signals. A suite started in the background by a shell
    without job control (`pytest ... &`, nohup) inherits SIGINT, SIGQUIT and SIGHUP ignored, and an ignored
    signal stays ignored across exec: every bespoke the tests start would then ignore the Ctrl-C they send it,
    as a background job should, and those tests would fail for the shell's reason. A handler is reset at exec,
    so the children get the default."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)


@pytest.fixture(autouse=True)
def isolated_project(tmp_path, monkeypatch):
    """Point every bespoke setting at tmp_path: tests never touch the real outputs/ or caches."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("BESPOKE_PROJECT", str(project))
    for var in ("BESPOKE_OUTPUTS", "BESPOKE_DATASETS", "BESPOKE_CACHE", "BESPOKE_SD_SCRIPTS", "BESPOKE_PYTHON",
                "BESPOKE_BASE_MODEL", "BESPOKE_NUM_CPU_THREADS", "BESPOKE_SCORE_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    # a personal accelerate config must never leak into tests (nor out of them)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    # nor the caller's offline mode (the real-trainer harness's env.sh sets it): the fake, like the real trainer,
    # needs a tokenizer source offline; the tests that want offline set it themselves
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return project


@pytest.fixture
def shared_dir() -> Path:
    """../shared (the user's data); tests that need it skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture
def synthetic_dataset(isolated_project) -> Path:
    """A small synthetic punk dataset (PNG + .txt) inside the isolated project."""
    from bespoke.dataset.synthetic import write_dataset

    folder = isolated_project / "datasets" / "synthetic"
    write_dataset(folder, count=8, seed=1)
    return folder


@pytest.fixture
def fake(isolated_project, monkeypatch, tmp_path) -> Path:
    """The fake sd-scripts as the configured checkout, this Python as its Python, 4 punks as the default
    dataset. Returns the file where the fake records what it saw (one JSON line per launch)."""
    import sys

    from bespoke.dataset.synthetic import write_dataset

    monkeypatch.setenv("BESPOKE_SD_SCRIPTS", str(FAKE_DIR))
    monkeypatch.setenv("BESPOKE_PYTHON", sys.executable)
    monkeypatch.setenv("FAKE_TRAINER_STEP_SECONDS", "0.01")
    record = tmp_path / "seen.jsonl"
    monkeypatch.setenv("FAKE_TRAINER_RECORD", str(record))
    write_dataset(isolated_project / "datasets" / "bespoke_punks", count=4, seed=5)
    return record


def pytest_collection_modifyitems(config, items):
    # pluggy calls the conftest registered last first: tests/real_trainer/conftest.py has marked its tests by now,
    # and `-m` (the mark plugin, registered before any conftest) deselects after this
    """A test that needs a browser, a Slurm cluster or the real trainer is slow by definition: the fast loop
    (`pytest -m "not slow"`) never starts one."""
    for item in items:
        if any(item.get_closest_marker(name) for name in ("browser", "slurm", "real_trainer")):
            item.add_marker(pytest.mark.slow)
