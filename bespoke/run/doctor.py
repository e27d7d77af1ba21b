"""`bespoke doctor`: is this machine ready to train, and what exactly to fix if not.

The environment probe (bespoke.run.facts.trainer_facts) runs in the trainer's Python (versions, accelerate,
torch + CUDA, xformers, the optional packages, and the installed sd-scripts' own argument parser), so the answers
are about the environment that will really train; then every shipped preset is preflighted there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bespoke.errors import BespokeError, ConfigError, RunError
from bespoke.kohya.config import load_toml
from bespoke.kohya.environment import TrainerFacts
from bespoke.kohya.packages import PACKAGES, TrainerPackage, needed_by
from bespoke.kohya.presets import list_presets, load_preset_file, resolve_preset
from bespoke.run.facts import trainer_facts
from bespoke.run.paths import RunPaths, list_run_dirs, read_training
from bespoke.run.preflight import plan_shipped, preflight_runs
from bespoke.settings import Settings

# Keys bespoke writes into every training.toml besides the preset's own (kohya.config.build_training_config).
_FILLED_KEYS = ("pretrained_model_name_or_path", "resolution", "output_dir", "output_name", "logging_dir",
                "sample_prompts")
LOW_DISK_GB = 10.0
MIN_DISK_GB = 1.0


@dataclass(frozen=True)
class Check:
    """One finding: level ok | info | warning | error, what was found, and how to fix it."""

    name: str
    level: str
    message: str
    fix: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def newest_run(settings: Settings) -> RunPaths | None:
    """The run folder whose training.toml was written last, if any."""
    runs = [RunPaths(d) for d in list_run_dirs(settings.outputs_dir)]
    runs = [p for p in runs if p.training_toml.is_file() and p.dataset_toml.is_file()]
    return max(runs, key=lambda p: p.training_toml.stat().st_mtime) if runs else None


def keys_bespoke_writes(settings: Settings) -> tuple[list[str], str]:
    """Training keys to check: those of the newest planned training.toml, else of the resolved default preset."""
    newest = newest_run(settings)
    if newest is not None:
        try:
            data = load_toml(newest.training_toml)
            keys: set[str] = set()
            for key, value in data.items():
                keys |= set(value) if isinstance(value, dict) else {key}
            return sorted(keys), str(newest.training_toml)
        except ConfigError:
            pass
    preset = resolve_preset(512, None)
    return sorted(set(preset.training) | set(_FILLED_KEYS)), "the default preset (base + res-512)"


def _free_gb(path: Path) -> float:
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free / 1e9


def _base_model_checks(base_model: str) -> list[Check]:
    # a hub id is "org/name"; anything else that names a file or folder is a local path
    looks_local = base_model.startswith((".", "/", "~")) or base_model.endswith((".safetensors", ".ckpt")) \
        or base_model.count("/") != 1
    path = Path(base_model).expanduser()
    if path.exists():
        return [Check("base model", "ok", f"{path} ({'folder' if path.is_dir() else f'{path.stat().st_size / 1e9:.2f} GB'})")]
    if looks_local:
        return [Check("base model", "error", f"{base_model} does not exist",
                      "point --base-model (or base_model in bespoke.toml) at your SD 1.5 .safetensors file")]
    hf_home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    cached = hf_home / "hub" / ("models--" + base_model.replace("/", "--"))
    if cached.is_dir():
        return [Check("base model", "ok", f"hub id {base_model}, cached in {cached}")]
    return [Check("base model", "warning", f"{base_model} is a hub id and is not in the local cache ({cached})",
                  "make sure this machine can download it (huggingface-cli download " + base_model +
                  "), or set base_model to a local .safetensors file")]


def _checkout_checks(settings: Settings) -> tuple[list[Check], Path | None]:
    """The sd-scripts checkout: configured, present, holding train_network.py. Returns it when usable."""
    sd = settings.sd_scripts
    if sd is None:
        return [Check("sd-scripts", "error", "no sd-scripts checkout configured",
                      "pass --sd-scripts PATH, set BESPOKE_SD_SCRIPTS, or add sd_scripts = \"...\" to bespoke.toml")], None
    if not Path(sd).is_dir():
        return [Check("sd-scripts", "error", f"{sd} does not exist",
                      "git clone https://github.com/kohya-ss/sd-scripts there, or fix the configured path")], None
    if not (Path(sd) / "train_network.py").is_file():
        return [Check("sd-scripts", "error", f"{sd} has no train_network.py",
                      "point sd_scripts at the root of a kohya-ss/sd-scripts checkout")], None
    return [Check("sd-scripts", "ok", f"{sd} (train_network.py found)")], Path(sd)


def _python_checks(python: str, facts: TrainerFacts) -> list[Check]:
    """What the environment probe found in the trainer's Python: the interpreter, accelerate, torch and the GPU."""
    if facts.python is None:
        return [Check("trainer python", "error", f"{python} did not run the probe ({facts.errors.get('probe')})",
                      "set --python / BESPOKE_PYTHON / sd_python to the Python of your sd-scripts venv")]
    checks = [Check("trainer python", "ok", f"{python} (Python {facts.python})")]
    if "probe" in facts.errors:  # it ran, then an import killed it: what comes after it is unknown
        checks.append(Check("environment probe", "error", facts.errors["probe"],
                            "reinstall that package in the trainer's venv, or uninstall it"))
    if facts.accelerate is not None:
        checks.append(Check("accelerate", "ok", f"accelerate {facts.accelerate}"))
    else:
        checks.append(Check("accelerate", "error", f"accelerate does not import: {facts.errors.get('accelerate')}",
                            f"{python} -m pip install -r requirements.txt (in the sd-scripts checkout)"))
    if facts.torch is None:
        checks.append(Check("torch", "error", f"torch does not import: {facts.errors.get('torch')}",
                            f"install torch in that venv ({python} -m pip install torch torchvision)"))
    elif facts.device.cuda:
        checks.append(Check("torch", "ok", f"torch {facts.torch}, CUDA: {facts.device.describe()}"))
    else:
        checks.append(Check("torch", "warning", f"torch {facts.torch} sees no CUDA GPU: training runs on CPU "
                            "(hours per epoch at 512 px)", "install a CUDA build of torch and check nvidia-smi"))
    return checks + [_packages_check(facts)]


def _packages_check(facts: TrainerFacts) -> Check:
    """xformers and the optional packages: which import (a preset that needs another fails its preflight)."""
    present = [f"{p.name} {p.version or ''}".strip() for p in (facts.xformers, *facts.packages) if p.importable]
    broken = [f"{p.name} ({p.error})" for p in (facts.xformers, *facts.packages)
              if not p.importable and p.error != "not installed"]
    absent = [p.name for p in (facts.xformers, *facts.packages) if p.error == "not installed"]
    message = f"importable: {', '.join(present) or 'none'}; not installed: {', '.join(absent) or 'none'}"
    if broken:
        return Check("optional packages", "warning", f"{message}; installed but failing: {'; '.join(broken)}",
                     "reinstall those in the trainer's venv (a preset that uses one fails its preflight)")
    return Check("optional packages", "info", message)


def _disk_check(outputs_dir: Path) -> Check:
    free = _free_gb(outputs_dir)
    level = "error" if free < MIN_DISK_GB else "warning" if free < LOW_DISK_GB else "ok"
    return Check("disk", level, f"{free:.1f} GB free for {outputs_dir}",
                 "free some space or point --outputs elsewhere (a run needs ~1-5 GB)" if level != "ok" else "")


def _options_check(settings: Settings, sd: Path, python: str, facts: TrainerFacts) -> Check:
    """Every training key bespoke writes must be an option of the installed train_network.py."""
    if facts.options is None:
        return Check("sd-scripts options", "error",
                     f"could not read train_network.setup_parser(): {facts.errors.get('options')}",
                     f"install sd-scripts' requirements in {python}'s venv (pip install -r requirements.txt in the "
                     "checkout)")
    keys, origin = keys_bespoke_writes(settings)
    missing = [k for k in keys if k not in set(facts.options)]
    if missing:
        return Check("sd-scripts options", "error",
                     f"this sd-scripts does not know {', '.join(missing)} (keys from {origin}); it would silently "
                     "ignore them", f"update sd-scripts (git -C {sd} pull), or remove these keys from your preset / "
                     "--set")
    return Check("sd-scripts options", "ok", f"all {len(keys)} training keys bespoke writes are options of this sd-scripts")


def preflight_checks(settings: Settings) -> list[Check]:
    """`bespoke preflight` of every shipped preset x resolution (planned into a temporary folder with 4 synthetic
    punks) and of the newest run, in one probe: an error for each that the trainer would refuse on this box."""
    with tempfile.TemporaryDirectory(prefix="bespoke-doctor-") as tmp:
        try:
            runs = {f"preset {label}": path for label, path in plan_shipped(settings, Path(tmp)).items()}
        except BespokeError as error:
            return [Check("preflight", "error", f"could not plan the shipped presets: {error}")]
        newest = newest_run(settings)
        if newest is not None:
            runs[f"newest run {newest.root.name}"] = newest.root
        report = preflight_runs(settings, list(runs.values()))
    checks = []
    for label, run in zip(runs, report.runs, strict=True):
        if run.error:
            checks.append(Check(f"preflight {label}", "error", run.error, "bespoke preflight RUN shows the details"))
        elif run.problems:
            message = "; ".join(f"{s.name} {s.status}: {s.message[:160]}" for s in run.problems)
            fixes = "; ".join(dict.fromkeys(s.fix for s in run.problems if s.fix))
            checks.append(Check(f"preflight {label}", "error", message, fixes))
        else:
            checks.append(Check(f"preflight {label}", "ok", f"all {len(run.stages)} stages pass"))
    return checks


def package_needs(settings: Settings) -> dict[str, list[str]]:
    """{module: ["preset NAME" | "run ID", ...]}: which of your presets (the ones `bespoke presets` lists, shadowed
    ones aside) and run folders make the trainer import an optional package. A preset counts for what it sets
    itself (what it inherits is base's)."""
    needs: dict[str, list[str]] = {}
    sources: list[tuple[str, dict]] = []
    for row in list_presets(user_dir=settings.presets_dir):
        if row["role"] != "sweep" and not row["shadowed_by"]:
            try:
                sources.append((f"preset {row['name']}", load_preset_file(Path(row["path"]))["training"]))
            except ConfigError:
                continue  # `bespoke presets` / `check` say what is wrong with it
    for folder in list_run_dirs(settings.outputs_dir):
        try:
            sources.append((f"run {folder.name}", read_training(RunPaths(folder))))
        except RunError:
            continue
    for label, training in sources:
        for package in needed_by(training):
            needs.setdefault(package.module, []).append(label)
    return needs


def _package_check(package: TrainerPackage, users: list[str], installed: bool, python: str, cuda: bool) -> Check:
    who = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
    gpu = " (it works only on a CUDA GPU, which this box has not)" if package.gpu_only and not cuda else ""
    if installed:
        return Check(f"package {package.pypi}", "ok", f"installed; needed by {who} for {package.needed_for}{gpu}")
    # a run that needs it cannot train here; a preset only when it is used
    level = "error" if any(user.startswith("run ") for user in users) and not gpu else "warning"
    return Check(f"package {package.pypi}", level, f"not installed in the trainer's venv; needed by {who} for "
                 f"{package.needed_for}{gpu}", package.fix().replace("<trainer python>", python))


def package_checks(settings: Settings, facts: TrainerFacts) -> list[Check]:
    """The optional trainer packages your presets and runs need, each installed or not in the trainer's Python;
    one line for the ones nothing of yours needs."""
    if facts.python is None:
        return []  # the probe did not run: _python_checks says why
    installed = {package.module: facts.package(package.module).importable for package in PACKAGES}
    needs = package_needs(settings)
    checks: list[Check] = []
    spare: dict[bool, list[str]] = {True: [], False: []}
    for package in PACKAGES:
        if package.module in needs:
            checks.append(_package_check(package, needs[package.module], installed[package.module],
                                         settings.trainer_python, facts.device.cuda))
        else:
            spare[installed[package.module]].append(package.pypi)
    if spare[True] or spare[False]:
        checks.append(Check("unneeded packages", "info", "not needed by your presets or runs: installed "
                            f"{', '.join(spare[True]) or 'none'}; not installed {', '.join(spare[False]) or 'none'}"))
    return checks


def run_checks(settings: Settings) -> list[Check]:
    """Every readiness check, in order; each problem carries its fix."""
    checks, sd = _checkout_checks(settings)
    python = settings.trainer_python
    facts = trainer_facts(settings, options=sd is not None)
    checks += _python_checks(python, facts)
    checks += package_checks(settings, facts)
    checks += _base_model_checks(settings.base_model)
    checks.append(_disk_check(settings.outputs_dir))
    if sd is not None and facts.python is not None:
        checks.append(_options_check(settings, sd, python, facts))
        checks += preflight_checks(settings)
    return checks
