"""The trainer's environment: the caller's Python setup is kept from it (and said), and the environment probe's
answer reads as one typed record, whatever state the probe ended in."""

from __future__ import annotations

import json
import os

from bespoke.kohya import envprobe
from bespoke.kohya.environment import (
    ENV_SCRIPT,
    MARKER,
    OPTIONAL_PACKAGES,
    TrainerFacts,
    env_probe_argv,
    parse_environment,
)
from bespoke.kohya.launch import LEAKY_PYTHON_VARS, trainer_env


def test_the_callers_python_setup_is_removed_and_returned_with_its_values():
    caller = {"PATH": "/usr/bin", "HOME": "/root", "PYTHONPATH": "/work/bespoke/tests", "PYTHONHOME": "/opt/py",
              "PYTHONSAFEPATH": "1", "PYTHONINSPECT": "1", "PYTHONOPTIMIZE": "2", "PYTHONWARNINGS": "error",
              "PYTHONNOUSERSITE": "1", "PYTHONUSERBASE": "/u", "PYTHONSTARTUP": "/s.py", "PYTHONIOENCODING": "utf-8",
              "HF_HOME": "/hf"}
    env, removed = trainer_env(caller, "/sd/venv/bin/python")
    assert removed == {k: caller[k] for k in ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONINSPECT",
                                               "PYTHONOPTIMIZE", "PYTHONWARNINGS", "PYTHONNOUSERSITE",
                                               "PYTHONUSERBASE")}
    assert env == {k: v for k, v in caller.items() if k not in removed}
    assert {"PYTHONSTARTUP", "PYTHONIOENCODING", "HF_HOME", "PATH"} <= set(env)  # no effect on a script, or wanted
    assert set(removed) <= set(LEAKY_PYTHON_VARS)


def test_an_activated_environment_is_removed_only_when_the_trainer_lives_elsewhere(tmp_path):
    bespoke_venv, trainer_venv = tmp_path / "bespoke-venv", tmp_path / "sd-venv"
    for venv in (bespoke_venv, trainer_venv):
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").write_text("")
        (venv / "bin" / "python").chmod(0o755)
    caller = {"VIRTUAL_ENV": str(bespoke_venv), "VIRTUAL_ENV_PROMPT": "bespoke", "CONDA_PREFIX": "/opt/conda/envs/b",
              "CONDA_DEFAULT_ENV": "b", "PATH": f"{bespoke_venv / 'bin'}{os.pathsep}/usr/bin"}
    env, removed = trainer_env(caller, str(trainer_venv / "bin" / "python"))
    assert removed == {k: caller[k] for k in ("VIRTUAL_ENV", "VIRTUAL_ENV_PROMPT", "CONDA_PREFIX", "CONDA_DEFAULT_ENV")}
    assert env == {"PATH": caller["PATH"]}
    # bespoke installed in the trainer's own venv, or its python named and found on that venv's PATH: kept
    assert trainer_env(caller, str(bespoke_venv / "bin" / "python"))[1] == {
        k: caller[k] for k in ("CONDA_PREFIX", "CONDA_DEFAULT_ENV")}
    assert "VIRTUAL_ENV" not in trainer_env(caller, "python")[1]
    assert "VIRTUAL_ENV" in trainer_env(caller, "no-such-python")[1]


def answer(**values) -> str:
    facts = {"environment": 1, "python": "3.11.7", "executable": "/sd/venv/bin/python", "torch": "2.14.1",
             "accelerate": "1.6.0", "device": {"torch": "2.14.1", "cuda": True, "bf16": False, "gpus": ["T4", "T4"],
                                                 "gpu": "T4"},
             "modules": {"xformers": {"importable": True, "version": "0.0.30", "error": None},
                         "bitsandbytes": {"importable": False, "version": None,
                                          "error": "RuntimeError: CUDA Setup failed"},
                         "wandb": {"importable": False, "version": None, "error": "not installed"}},
             "errors": {}}
    facts.update(values)
    return f"noise printed by an import\n{MARKER} {json.dumps(facts)}\n"


def test_the_probes_answer_is_one_typed_record_with_the_run_json_form():
    facts = parse_environment(answer(), "", 0, "48d368fa" * 5)
    assert (facts.python, facts.torch, facts.accelerate) == ("3.11.7", "2.14.1", "1.6.0")
    assert facts.device.cuda and not facts.device.bf16 and facts.device.gpus == ("T4", "T4")
    assert facts.xformers.importable and facts.xformers.version == "0.0.30"
    assert [p.name for p in facts.packages] == list(OPTIONAL_PACKAGES)
    assert facts.package("bitsandbytes").error == "RuntimeError: CUDA Setup failed"
    assert facts.package("lycoris").error == "not checked (the probe stopped before it)"
    assert facts.importable == () and facts.options is None and facts.errors == {}
    record = facts.to_json()
    assert record["versions"] == {"python": "3.11.7", "torch": "2.14.1", "accelerate": "1.6.0", "xformers": "0.0.30"}
    assert record["sd_scripts_commit"] == "48d368fa" * 5 and record["gpu"] == "T4, T4"
    assert record["packages"]["wandb"] == {"importable": False, "version": None, "error": "not installed"}
    assert json.loads(json.dumps(record)) == record and "options" not in record


def test_a_probe_that_died_in_an_import_names_it_and_keeps_what_it_found():
    died = parse_environment(answer(importing="xformers", modules={}), "Segmentation fault", -11, None)
    assert died.torch == "2.14.1" and died.device.cuda
    assert died.errors["probe"] == "the environment probe died while importing xformers: Segmentation fault"
    assert not died.xformers.importable and died.to_json()["sd_scripts_commit"] == "unknown"
    never = parse_environment("", "/sd/venv/bin/python: No such file or directory", 127, None)
    assert never == TrainerFacts(errors={"probe": "the environment probe did not run: /sd/venv/bin/python: No such "
                                                  "file or directory"})


def test_the_probe_argv_checks_every_optional_package_and_options_need_a_checkout(tmp_path):
    argv = env_probe_argv("/py", tmp_path, options=True)
    assert argv[:5] == ["/py", str(ENV_SCRIPT), "--sd-scripts", str(tmp_path), "--options"]
    assert argv[5:] == ["xformers", *OPTIONAL_PACKAGES]
    assert "--options" not in env_probe_argv("/py", None, options=True)


def test_module_facts_tell_missing_from_broken(tmp_path, monkeypatch):
    (tmp_path / "fine_pkg.py").write_text("__version__ = '1.2.3'\n")
    (tmp_path / "broken_pkg.py").write_text("raise RuntimeError('CUDA Setup failed\\nmore')\n")
    (tmp_path / "needs_dep.py").write_text("import not_there_at_all\n")
    (tmp_path / "exits.py").write_text("raise SystemExit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert envprobe.module_facts("fine_pkg") == {"importable": True, "version": "1.2.3", "error": None}
    assert envprobe.module_facts("broken_pkg")["error"] == "RuntimeError: CUDA Setup failed"
    assert envprobe.module_facts("needs_dep")["error"] == "ModuleNotFoundError: No module named 'not_there_at_all'"
    assert envprobe.module_facts("no_such_package_here")["error"] == "not installed"
    assert envprobe.module_facts("exits")["error"] == "exited with code 3"
    assert envprobe.module_facts("json")["importable"]  # the stdlib: no version, still importable
