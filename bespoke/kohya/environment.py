"""The trainer's environment, bespoke's side: the command line of the environment probe (envprobe.py beside this
file, run in the trainer's Python), what its answer means, as a typed record (`TrainerFacts`), and its run.json
form. `bespoke.run.facts.trainer_facts` runs it; `doctor`, every attempt's `trainer` record in run.json and the
preflight probe's device checks (probe.py calls envprobe.device) all read the environment through it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENV_SCRIPT = Path(__file__).with_name("envprobe.py")
MARKER = "BESPOKE_ENVIRONMENT"  # envprobe.MARKER
XFORMERS = "xformers"
# Packages sd-scripts imports only when a config asks for them (the module names, as imported): 8-bit and paged
# optimizers, LyCORIS networks, the D-Adaptation / Prodigy / Lion / schedule-free / pytorch-optimizer families,
# and the two loggers of log_with.
OPTIONAL_PACKAGES = ("bitsandbytes", "lycoris", "dadaptation", "prodigyopt", "lion_pytorch", "schedulefree",
                     "prodigyplus", "pytorch_optimizer", "wandb", "tensorboard")
UNKNOWN_COMMIT = "unknown"  # run.json's word for a checkout whose commit cannot be read


@dataclass(frozen=True)
class ModuleFacts:
    """One module in the trainer's Python: does it import, its version, and why not ("not installed")."""

    name: str
    importable: bool = False
    version: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class DeviceFacts:
    """What torch sees in the trainer's Python: CUDA, bf16 on its first GPU, the GPUs' names."""

    cuda: bool = False
    bf16: bool = False
    gpus: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict) -> DeviceFacts:
        """From envprobe.device's dict (also the preflight probe's "device")."""
        return cls(bool(data.get("cuda")), bool(data.get("bf16")), tuple(str(g) for g in data.get("gpus") or ()))

    def describe(self) -> str:
        if not self.cuda:
            return "no CUDA GPU"
        return ", ".join(self.gpus) + ("" if self.bf16 else " (no bf16)")


@dataclass(frozen=True)
class TrainerFacts:
    """The trainer's environment. A field is None when it is unknown; `errors` says why ({"torch": "...",
    "accelerate": ..., "options": ..., "probe": the probe itself could not run})."""

    python: str | None = None
    executable: str | None = None
    torch: str | None = None
    accelerate: str | None = None
    sd_scripts_commit: str | None = None
    device: DeviceFacts = DeviceFacts()
    xformers: ModuleFacts = ModuleFacts(XFORMERS)
    packages: tuple[ModuleFacts, ...] = ()
    options: tuple[str, ...] | None = None  # train_network.py's option names, when asked for (doctor)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def importable(self) -> tuple[str, ...]:
        """The optional packages that import in the trainer's Python."""
        return tuple(p.name for p in self.packages if p.importable)

    def package(self, name: str) -> ModuleFacts:
        return next((p for p in (self.xformers, *self.packages) if p.name == name), ModuleFacts(name))

    def to_json(self) -> dict[str, Any]:
        """The run.json form (`attempt.trainer`): `sd_scripts_commit`, `versions` and `gpu` as bespoke has always
        written them, then the device, every module and the errors."""
        data: dict[str, Any] = {
            "sd_scripts_commit": self.sd_scripts_commit or UNKNOWN_COMMIT,
            "versions": {"python": self.python, "torch": self.torch, "accelerate": self.accelerate,
                         XFORMERS: self.xformers.version},
            "gpu": ", ".join(self.device.gpus) or None,
            "executable": self.executable,
            "device": {"cuda": self.device.cuda, "bf16": self.device.bf16, "gpus": list(self.device.gpus)},
            "packages": {p.name: {k: v for k, v in asdict(p).items() if k != "name"}
                         for p in (self.xformers, *self.packages)},
            "errors": dict(self.errors),
        }
        if self.options is not None:
            data["options"] = list(self.options)
        return data


def env_probe_argv(python: str, sd_scripts: Path | None, options: bool = False) -> list[str]:
    """The environment probe's command line: xformers and every optional package; --options needs a checkout."""
    argv = [python, str(ENV_SCRIPT)]
    if sd_scripts is not None:
        argv += ["--sd-scripts", str(sd_scripts)]
        if options:
            argv.append("--options")
    return [*argv, XFORMERS, *OPTIONAL_PACKAGES]


def _last_answer(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER + " "):
            try:
                return json.loads(line[len(MARKER) + 1:])
            except ValueError:
                return None
    return None


def parse_environment(stdout: str, stderr: str, exit_code: int, commit: str | None = None) -> TrainerFacts:
    """The probe's answer as TrainerFacts (`commit`: the checkout's, read by bespoke). A probe that died says so
    in errors["probe"], naming the import it died in; what it found before stays."""
    answer = _last_answer(stdout)
    if answer is None:
        tail = (stderr.strip().splitlines() or [f"exit code {exit_code}, no output"])[-1]
        return TrainerFacts(sd_scripts_commit=commit, errors={"probe": f"the environment probe did not run: {tail}"})
    errors = {str(k): str(v) for k, v in (answer.get("errors") or {}).items()}
    if answer.get("importing"):
        tail = (stderr.strip().splitlines() or [f"exit code {exit_code}"])[-1]
        errors["probe"] = f"the environment probe died while importing {answer['importing']}: {tail}"
    modules = answer.get("modules") or {}

    def facts(name: str) -> ModuleFacts:
        found = modules.get(name) or {}
        return ModuleFacts(name, bool(found.get("importable")), found.get("version"),
                           found.get("error") if found else "not checked (the probe stopped before it)")

    options = answer.get("options")
    return TrainerFacts(
        python=answer.get("python"), executable=answer.get("executable"), torch=answer.get("torch"),
        accelerate=answer.get("accelerate"), sd_scripts_commit=commit,
        device=DeviceFacts.from_json(answer.get("device") or {}), xformers=facts(XFORMERS),
        packages=tuple(facts(name) for name in OPTIONAL_PACKAGES),
        options=tuple(options) if options is not None else None, errors=errors)
