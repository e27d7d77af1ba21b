"""Facts about the trainer's environment recorded with every plan and attempt: the sd-scripts commit, the
versions of python/torch/accelerate as the trainer's own Python reports them, and the GPU."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def sd_scripts_commit(checkout: Path | None) -> str | None:
    """The git commit of an sd-scripts checkout, read from .git without running git (None if unknown)."""
    if not checkout:
        return None
    git = Path(checkout) / ".git"
    try:
        if git.is_file():  # worktree / submodule: "gitdir: <path>"
            target = git.read_text(encoding="utf-8").strip().removeprefix("gitdir:").strip()
            git = (Path(checkout) / target).resolve()
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head
        return _ref_commit(git, head[4:].strip())
    except OSError:
        return None


def _ref_commit(git: Path, ref: str) -> str | None:
    ref_file = git / ref
    if ref_file.is_file():
        return ref_file.read_text(encoding="utf-8").strip()
    packed = git / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return None


def trainer_facts(settings: Settings, timeout: float = 20.0) -> dict:
    """sd-scripts commit, python/torch/accelerate versions as the trainer's Python reports them, GPU name.

    Two quick helper commands, run concurrently; any failure becomes "unknown".
    """
    def commit():
        return sd_scripts_commit(settings.sd_scripts) or "unknown"

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
