"""The trainer's environment as its own Python sees it: run by bespoke as a script in the TRAINER's Python
(never imported by bespoke; probe.py loads it from beside itself for the device facts its stages check).

`python envprobe.py [--sd-scripts DIR] [--options] MODULE...` imports torch and accelerate, reads the device
through torch, imports each MODULE (xformers and the optional packages sd-scripts imports only when a config
asks for them) and, with --options, lists train_network.py's options. The last stdout line is `MARKER {json}`:
{"environment": 1, "python", "executable", "torch", "accelerate", "device": {"torch", "cuda", "bf16", "gpus",
"gpu"}, "modules": {MODULE: {"importable", "version", "error"}}, "options": [...], "errors": {what: message}}.
The line is written after each step too, with "importing": NAME before NAME is imported, so an import that
kills the interpreter is named by the last line and what was found before it is kept.

Only the standard library is imported at module level: everything else is the trainer's, imported by name.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from importlib import metadata

MARKER = "BESPOKE_ENVIRONMENT"


def error_text(exc: BaseException) -> str:
    """`Type: first line` of an exception (a SystemExit says its code)."""
    if isinstance(exc, SystemExit):
        return f"exited with code {exc.code}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def device(torch) -> dict:
    """What torch sees of this box: CUDA, bf16 on its first GPU, every GPU's name. Touches CUDA when there is one
    (a forked child of this process could not use it afterwards: probe.py calls this in its children)."""
    cuda = bool(torch.cuda.is_available())
    gpus = [str(torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())] if cuda else []
    found = {"torch": str(getattr(torch, "__version__", "?")), "cuda": cuda,
             "bf16": bool(cuda and torch.cuda.is_bf16_supported()), "gpus": gpus}
    if gpus:
        found["gpu"] = gpus[0]
    return found


def _version(name: str, module) -> str | None:
    version = getattr(module, "__version__", None)
    if version:
        return str(version)
    try:
        owners = metadata.packages_distributions().get(name.split(".")[0], [])
    except AttributeError:  # Python < 3.10
        owners = []
    for dist in owners:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def module_facts(name: str) -> dict:
    """Whether `name` imports here, its version, and why not ("not installed" when there is no such module)."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name == name or name.startswith(f"{exc.name}.")
        return {"importable": False, "version": None, "error": "not installed" if missing else error_text(exc)}
    except BaseException as exc:  # noqa: B036 - a broken install raises anything; the message is the point
        return {"importable": False, "version": None, "error": error_text(exc)}
    return {"importable": True, "version": _version(name, module), "error": None}


def _emit(out: dict) -> None:
    sys.stdout.flush()
    sys.stdout.write(f"\n{MARKER} {json.dumps(out)}\n")
    sys.stdout.flush()


def _core(out: dict) -> None:
    """torch, accelerate and the device, into `out`."""
    for name in ("torch", "accelerate"):
        out["importing"] = name
        _emit(out)
        found = module_facts(name)
        out[name] = found["version"]
        if not found["importable"]:
            out["errors"][name] = found["error"]
    if out["torch"] is not None:
        try:
            out["device"] = device(sys.modules["torch"])
        except Exception as exc:
            out["errors"]["device"] = error_text(exc)


def _options(sd_scripts: str) -> list[str]:
    """train_network.py's option names, imported the way the trainer imports it (from the checkout's root)."""
    sys.path.insert(0, sd_scripts)
    os.chdir(sd_scripts)
    parser = importlib.import_module("train_network").setup_parser()
    return sorted({action.dest for action in parser._actions if action.dest != "help"})


def environment(modules: list[str], sd_scripts: str | None = None, options: bool = False) -> dict:
    """Every fact of the module docstring, written (MARKER line) after each step and returned."""
    out: dict = {"environment": 1, "python": sys.version.split()[0], "executable": sys.executable,
                 "torch": None, "accelerate": None, "device": {}, "modules": {}, "errors": {}}
    _core(out)
    for name in modules:
        out["importing"] = name
        _emit(out)
        out["modules"][name] = module_facts(name)
    if options and sd_scripts:
        out["importing"] = "train_network"
        _emit(out)
        try:
            out["options"] = _options(sd_scripts)
        except BaseException as exc:  # noqa: B036 - sd-scripts' own failure (even a SystemExit) is the answer
            out["errors"]["options"] = error_text(exc)
    del out["importing"]
    _emit(out)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="envprobe.py")
    parser.add_argument("--sd-scripts")
    parser.add_argument("--options", action="store_true")
    parser.add_argument("modules", nargs="*")
    args = parser.parse_args(argv[1:])
    environment(args.modules, args.sd_scripts, args.options)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
