"""Optional packages the trainer's Python needs for some configs: which import name is which PyPI package,
what in a config needs it, and how the trainer says it is missing.

One table for everyone who names a fix: the preflight (a FAIL of the network or optimizer stage becomes
"install `lycoris-lora` in the trainer's venv", never a `--set` that trains something else), `import kohya-gui`
(which packages an imported preset needs) and anyone checking a trainer's venv. sd-scripts' requirements.txt
(48d368fa) installs some of them; the kohya_ss GUI's requirements.txt (45088f04) adds lycoris_lora==3.2.0.post2
and dadaptation==3.2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainerPackage:
    """One optional package of the trainer's venv."""

    module: str  # what sd-scripts imports
    pypi: str  # what pip installs
    needed_for: str  # the config setting that makes sd-scripts import it
    stage: str  # the preflight stage that fails without it
    missing: str  # regex of the trainer's message when it is not installed
    in_requirements: bool  # sd-scripts' own requirements.txt installs it
    gpu_only: bool = False  # installs anywhere, works only with a CUDA GPU

    def fix(self) -> str:
        """The one-line fix when the trainer's venv lacks it."""
        where = "; sd-scripts' requirements.txt lists it" if self.in_requirements else ""
        gpu = "; it works only on a CUDA GPU" if self.gpu_only else ""
        return (f"install `{self.pypi}` in the trainer's venv for {self.needed_for}: `<trainer python> -m pip "
                f"install {self.pypi}`{where}{gpu}")


PACKAGES: tuple[TrainerPackage, ...] = (
    TrainerPackage("lycoris", "lycoris-lora", "network_module lycoris.kohya (LyCORIS)",
                   "network module", r"No module named '?lycoris", in_requirements=False),
    TrainerPackage("dadaptation", "dadaptation", "optimizer_type DAdaptation (DAdaptAdam, DAdaptLion, ...)",
                   "optimizer", r"No dadaptation|No module named '?dadaptation", in_requirements=False),
    TrainerPackage("prodigyopt", "prodigyopt", "optimizer_type Prodigy", "optimizer",
                   r"No Prodigy|No module named '?prodigyopt", in_requirements=True),
    TrainerPackage("lion_pytorch", "lion-pytorch", "optimizer_type Lion", "optimizer",
                   r"No lion_pytorch|No module named '?lion_pytorch", in_requirements=True),
    TrainerPackage("schedulefree", "schedulefree", "optimizer_type RAdamScheduleFree/AdamWScheduleFree/"
                   "SGDScheduleFree", "optimizer", r"No module named '?schedulefree", in_requirements=True),
    TrainerPackage("prodigyplus", "prodigy-plus-schedule-free", "optimizer_type prodigyplus.ProdigyPlusScheduleFree",
                   "optimizer", r"No module named '?prodigyplus", in_requirements=True),
    TrainerPackage("pytorch_optimizer", "pytorch-optimizer", "optimizer_type pytorch_optimizer.<Class>",
                   "optimizer", r"No module named '?pytorch_optimizer", in_requirements=True),
    TrainerPackage("bitsandbytes", "bitsandbytes", "an 8-bit or paged optimizer (AdamW8bit, Lion8bit, PagedAdamW...)",
                   "optimizer", r"No bitsandbytes|No module named '?bitsandbytes", in_requirements=True, gpu_only=True),
    TrainerPackage("xformers", "xformers", "xformers = true", "attention", r"No xformers|No module named '?xformers",
                   in_requirements=False, gpu_only=True),
)
BY_MODULE = {package.module: package for package in PACKAGES}


def fix_rows() -> tuple[tuple[str, str, str], ...]:
    """(stage, regex on the trainer's message, fix) for each package a box without a GPU can use: rows for
    bespoke.kohya.preflight's fixes (braces doubled: they are str.format templates). bitsandbytes and xformers
    keep the preflight's own fixes, which also name the setting that works without a GPU."""
    return tuple((p.stage, p.missing, p.fix().replace("{", "{{").replace("}", "}}")) for p in PACKAGES
                 if not p.gpu_only)


def _optimizer_module(optimizer: str) -> str | None:
    name = optimizer.lower()
    if name.startswith("dadapt"):
        return "dadaptation"
    if name == "prodigy":
        return "prodigyopt"
    if name == "lion":
        return "lion_pytorch"
    if name.endswith("schedulefree") and "." not in name:
        return "schedulefree"
    if "8bit" in name or name.startswith("paged"):
        return "bitsandbytes"
    if "." in optimizer:
        root = optimizer.split(".", 1)[0]
        return root if root in BY_MODULE else None
    return None


def needed_by(training: dict) -> list[TrainerPackage]:
    """The optional packages the trainer imports for these training options (network, optimizer, attention)."""
    modules = []
    network = str(training.get("network_module") or "")
    if network.split(".", 1)[0] in BY_MODULE:
        modules.append(network.split(".", 1)[0])
    optimizer = _optimizer_module(str(training.get("optimizer_type") or ""))
    if optimizer:
        modules.append(optimizer)
    if training.get("xformers"):
        modules.append("xformers")
    return [BY_MODULE[m] for m in modules]


def missing_package(message: str) -> TrainerPackage | None:
    """The package a trainer's error message says is missing, if it is one of the table."""
    return next((p for p in PACKAGES if re.search(p.missing, message)), None)
