"""The preflight gate: run by `accelerate launch` in the TRAINER's Python instead of sd-scripts' script
(never imported by bespoke).

`python gate.py REPORT SCRIPT ARGS...`: checks `SCRIPT ARGS` in the run folder (the working directory) with
the probe's stages (probe.py beside this file: train_network.py's, or gen_img.py's), writes the answer to
REPORT (JSON, the probe's shape plus the seconds spent) and, when every stage passed, runs SCRIPT as
`__main__` in this process. sd-scripts is imported once for the check and the run, so the check costs only
its stages. A stage that fails prints one line per problem on stderr and exits 1 before SCRIPT runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import runpy
import sys
import time


def _probe():
    """probe.py, loaded from beside this file (this folder is not left on sys.path: see gate)."""
    spec = importlib.util.spec_from_file_location("bespoke_preflight_probe",
                                                  os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_report(path: str, out: dict) -> None:
    """The gate's answer, written whole (a reader never sees half of it)."""
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(out, handle)
    os.replace(partial, path)


def gate(report: str, script: str, args: list[str]) -> int:
    """Check `script args` in this folder; if every stage passes, run the script here as `__main__` (its exit is
    this process's exit). Otherwise print one line per problem and return 1. Only the first process of a
    multi-GPU launch checks: the others start the trainer and wait for it at accelerate's first barrier."""
    probe = _probe()
    here = os.getcwd()
    script = os.path.abspath(script)
    sd_scripts = os.path.dirname(script)
    sys.path[0] = sd_scripts  # what running the script directly puts first (not bespoke/kohya)
    if os.environ.get("LOCAL_RANK", "0") == "0":
        started = time.monotonic()
        out: dict = {"probe": 1, "gate": True, "python": sys.version.split()[0], "device": {}}
        modules = probe.import_or_error(sd_scripts, out)
        imported = time.monotonic()
        if modules is not None:
            kind = "gen" if os.path.basename(script) == "gen_img.py" else "train"
            checked = probe.check_in_child({"id": here, "cwd": here, "args": args, "kind": kind}, modules)
            out["device"] = checked.get("device") or {}
            out["jobs"] = [{"id": here, "stages": checked["stages"]}]
        out["seconds"] = {"import": round(imported - started, 3), "stages": round(time.monotonic() - imported, 3)}
        os.chdir(here)
        _write_report(report, out)
        stages = out.get("jobs", [{}])[0].get("stages", [])
        problems = [s for s in stages if s["status"] in (probe.FAIL, probe.HARDWARE)]
        if out.get("error") or problems:
            for line in [out["error"]] if out.get("error") else [f"{s['name']} {s['status']}: {s['message']}"
                                                                   for s in problems]:
                print(f"bespoke preflight: the trainer would stop: {line}", file=sys.stderr, flush=True)
            return 1
        print(f"bespoke preflight passed: {len(stages)} stages in {out['seconds']['stages']:.1f} s "
              f"(sd-scripts imported in {out['seconds']['import']:.1f} s, once for the check and the run)",
              flush=True)
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(gate(sys.argv[1], sys.argv[2], sys.argv[3:]))
