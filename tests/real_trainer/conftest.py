"""The real kohya-ss sd-scripts in the test suite (marker `real_trainer`).

Runs only when BESPOKE_TEST_SD_SCRIPTS, BESPOKE_TEST_SD_PYTHON, BESPOKE_TEST_BASE_MODEL and
BESPOKE_TEST_TOKENIZER_CACHE are set (`source <harness>/env.sh` sets them; built by
../shared/kohya/harness/setup.sh, or point them at your own checkout); otherwise every test here is skipped
with one reason. bespoke is run as a subprocess (`python -m bespoke`) so that the trainer really goes
through `accelerate launch`, and Ctrl-C can be sent to it. Everything is written below a session folder;
one trained run is shared between the tests that only read it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VARIABLES = ("BESPOKE_TEST_SD_SCRIPTS", "BESPOKE_TEST_SD_PYTHON", "BESPOKE_TEST_BASE_MODEL",
             "BESPOKE_TEST_TOKENIZER_CACHE")
MISSING = [v for v in VARIABLES if not os.environ.get(v)]
SKIP_REASON = ("real trainer tests need " + ", ".join(MISSING) + " (source <harness>/env.sh; see README "
               "'Tests against the real trainer')") if MISSING else ""


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real_trainer)
            if MISSING:
                item.add_marker(skip)


def cpu_safe(tokenizer_cache: str) -> tuple[str, ...]:
    """--set overrides that make any preset train on a small CPU box: 2 epochs, batch 2, 1 repeat, dim 4, no
    mixed precision, no data-loader workers, the offline tokenizer, buckets SD 1.x accepts at 64 px."""
    values = {"bucket_reso_steps": "64", "min_bucket_reso": "64", "persistent_data_loader_workers": "false",
              "max_data_loader_n_workers": "0", "mixed_precision": '"no"', "save_precision": '"float"',
              "max_train_epochs": "2", "num_repeats": "1", "batch_size": "2", "gradient_checkpointing": "false",
              "network_dim": "4", "network_alpha": "2", "tokenizer_cache_dir": f'"{tokenizer_cache}"'}
    out: list[str] = []
    for key, value in values.items():
        out += ["--set", f"{key}={value}"]
    return tuple(out)


class RealBespoke:
    """`python -m bespoke ...` in a project folder whose settings point at the real trainer, offline."""

    def __init__(self, project: Path):
        self.project = project
        self.tokenizer_cache = os.environ.get("BESPOKE_TEST_TOKENIZER_CACHE", "")
        self.env = {**os.environ, "BESPOKE_PROJECT": str(project),
                    "BESPOKE_SD_SCRIPTS": os.environ.get("BESPOKE_TEST_SD_SCRIPTS", ""),
                    "BESPOKE_PYTHON": os.environ.get("BESPOKE_TEST_SD_PYTHON", ""),
                    "BESPOKE_BASE_MODEL": os.environ.get("BESPOKE_TEST_BASE_MODEL", ""),
                    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(project / "hf_home"),
                    "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
        for var in ("BESPOKE_OUTPUTS", "BESPOKE_DATASETS", "BESPOKE_CACHE"):
            self.env.pop(var, None)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bespoke", *args]

    def run(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), cwd=self.project, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), cwd=self.project, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def settings(self):
        from bespoke.settings import load_settings

        return load_settings(self.project, env=self.env)


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> RealBespoke:
    """A project folder for each test module (a module's tests share its runs; no module finds another's): settings at the real trainer, 4 synthetic punks as the default
    dataset, a one-prompt file at 64 px."""
    from bespoke.dataset.synthetic import write_dataset

    project = tmp_path_factory.mktemp("real_project")
    write_dataset(project / "datasets" / "bespoke_punks", count=4, seed=5)
    (project / "one_prompt.txt").write_text("pixel art, 24x24, portrait of bespoke punk lad --w 64 --h 64 "
                                            "--d 1 --s 8\n")
    return RealBespoke(project)


@pytest.fixture(scope="module")
def cpu_overrides(real) -> tuple[str, ...]:
    return cpu_safe(real.tokenizer_cache)
