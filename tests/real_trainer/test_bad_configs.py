"""Every bad config of tests/fakes/bad_configs.py is refused by the REAL sd-scripts trainer too (or "succeeds"
with nothing: exit 0, "No data found"), with the message the table says: the fake and bespoke's validator are
checked against the trainer they stand in for.

Each case plans a 64 px run on 4 synthetic punks (configs validated by bespoke), edits its TOMLs by hand as a
user could (bypassing bespoke's validation), and launches the run's own argv (run.json) through
`accelerate launch` in the run folder. Most fail before the model load, the `slow` ones (marked) only after
it. Measured 2026-12-01 on the shared 2-core box (load average 8-17): the 21 fast cases 15-27 s each, 7.4 min
in all; the 7 slow ones 68-113 s each, 290-310 s for learning_rate_zero and save_every_zero_epochs (the latter
trains a whole epoch first), 16.8 min in all.

Needs BESPOKE_TEST_SD_SCRIPTS, BESPOKE_TEST_SD_PYTHON, BESPOKE_TEST_BASE_MODEL and
BESPOKE_TEST_TOKENIZER_CACHE (`source <harness>/env.sh`, see ../shared/kohya/harness/setup.sh); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from fakes.bad_configs import BAD_CONFIGS, BadConfig, apply_bad_config, plan_small_run

from bespoke.settings import load_settings

NEEDED = ("BESPOKE_TEST_SD_SCRIPTS", "BESPOKE_TEST_SD_PYTHON", "BESPOKE_TEST_BASE_MODEL",
          "BESPOKE_TEST_TOKENIZER_CACHE")
MISSING = [name for name in NEEDED if not os.environ.get(name)]

pytestmark = [
    pytest.mark.real_trainer,
    pytest.mark.skipif(bool(MISSING), reason=f"the real sd-scripts trainer is not set up ({', '.join(MISSING)} "
                                             f"unset: source <harness>/env.sh)"),
]

# what makes the planned run train on a CPU box, offline (FACTS §9)
CPU_OFFLINE = ('mixed_precision="no"', 'save_precision="float"', "gradient_checkpointing=false", "network_dim=4")
TIMEOUT = 900  # seconds; a bad config that trains anyway is stopped here (and the test fails)


def real_run(project: Path) -> Path:
    """A planned 64 px run whose trainer is the real one."""
    settings = load_settings(project).with_overrides(
        sd_scripts=Path(os.environ["BESPOKE_TEST_SD_SCRIPTS"]), sd_python=os.environ["BESPOKE_TEST_SD_PYTHON"],
        base_model=os.environ["BESPOKE_TEST_BASE_MODEL"])
    tokenizer = json.dumps(os.environ["BESPOKE_TEST_TOKENIZER_CACHE"])
    return plan_small_run(project, settings, CPU_OFFLINE + (f"tokenizer_cache_dir={tokenizer}",))


def launch(run_dir: Path) -> subprocess.CompletedProcess:
    """The run's own launch command (run.json argv + env overrides) in the run folder; offline."""
    manifest = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    env = {**os.environ, **manifest.get("env_overrides", {}), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(manifest["argv"], cwd=run_dir, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the trainer and its accelerate parent, only ours
        output, _ = process.communicate()
        pytest.fail(f"the real trainer was still running after {TIMEOUT} s: it accepted the bad config\n"
                    f"{output[-3000:]}")
    return subprocess.CompletedProcess(manifest["argv"], process.returncode, output, "")


def _case(bad: BadConfig):
    marks = [pytest.mark.slow] if bad.slow else []
    return pytest.param(bad, id=bad.name, marks=marks)


@pytest.mark.parametrize("bad", [_case(bad) for bad in BAD_CONFIGS])
def test_the_real_trainer_refuses_each_bad_config(isolated_project, bad: BadConfig):
    run_dir = real_run(isolated_project)
    apply_bad_config(run_dir, bad)
    done = launch(run_dir)
    assert done.returncode == (0 if bad.trainer_exit_zero else 1), done.stdout[-3000:]
    assert bad.trainer_message in done.stdout, done.stdout[-3000:]
    if bad.trains_nothing:
        assert not any((run_dir / "model").glob("*.safetensors"))
