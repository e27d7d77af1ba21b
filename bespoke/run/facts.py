"""Facts about the trainer's environment recorded with every attempt: the sd-scripts commit, the versions of
python/torch/accelerate as the trainer's own Python reports them, and the GPU."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

from bespoke.run.runner import run_capture
from bespoke.settings import Settings

_VERSIONS_CODE = (
    "import json, sys\n"
    "from importlib import metadata\n"
    "out = {'python': sys.version.split()[0]}\n"
    "for name in ('torch', 'accelerate'):\n"
    "    try:\n"
    "        out[name] = metadata.version(name)\n"
    "    except Exception:\n"
    "        out[name] = 'not installed'\n"
    "print(json.dumps(out))\n"
)



def trainer_facts(settings: Settings, timeout: float = 20.0) -> dict:
    """sd-scripts commit, python/torch/accelerate versions as the trainer's Python reports them, GPU name.

    Three quick helper commands, run concurrently; any failure becomes "unknown".
    """
    def commit():
        if settings.sd_scripts is None:
            return "unknown"
        done = run_capture(["git", "-C", str(settings.sd_scripts), "rev-parse", "HEAD"], timeout=timeout)
        return done.stdout.strip() if done.exit_code == 0 and done.stdout.strip() else "unknown"

    def versions():
        done = run_capture([settings.trainer_python, "-c", _VERSIONS_CODE], timeout=timeout)
        try:
            return json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"python": "unknown", "torch": "unknown", "accelerate": "unknown"}

    def gpu():
        if shutil.which("nvidia-smi") is None:
            return None
        done = run_capture(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], timeout=timeout)
        names = [n.strip() for n in done.stdout.splitlines() if n.strip()] if done.exit_code == 0 else []
        return ", ".join(names) or None

    with ThreadPoolExecutor(3) as pool:
        jobs = pool.submit(commit), pool.submit(versions), pool.submit(gpu)
        return {"sd_scripts_commit": jobs[0].result(), "versions": jobs[1].result(), "gpu": jobs[2].result()}
