"""Preflight, the sd-scripts side: the probe script (bespoke/kohya/probe.py, run in the trainer's Python),
the command line that runs it, what its JSON answer means, and each failure's fix in bespoke's terms.

Stage statuses: PASS; FAIL (the trainer would stop: its own message); NEEDS-HARDWARE (this box lacks what
the config asks for: a CUDA GPU for fp16/bf16, xformers, 8-bit optimizers); SKIPPED (a stage it depends on
did not pass).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bespoke.kohya.packages import fix_rows

PROBE_SCRIPT = Path(__file__).with_name("probe.py")
GATE_SCRIPT = Path(__file__).with_name("gate.py")
MARKER = "BESPOKE_PREFLIGHT"
GATE_PASSED = "bespoke preflight passed:"  # how the gate's line starts when every stage passed (gate.py)
GATE_NO_CHECK = "--no-check"  # gate.py's first word instead of a report: guard the stop, check nothing
GATE_PREFIX = "[bespoke gate] "  # every line of the stop guard in gate.py: "[bespoke gate] KIND: text"
GATE_BUSY = ("busy", "deferred")  # the trainer is saving or sampling: a stop waits for it
GATE_IDLE = ("done", "stopping", "ended")
PASS, FAIL, HARDWARE, SKIPPED = "PASS", "FAIL", "NEEDS-HARDWARE", "SKIPPED"
STAGE_NAMES = ("arguments", "tokenizer", "dataset", "buckets", "data loader", "optimizer", "attention",
               "mixed precision", "sample prompts", "network module")
GEN_STAGE_NAMES = ("gen_img arguments", "files", "tokenizer", "attention", "mixed precision")


@dataclass(frozen=True)
class Stage:
    """One preflight stage of one run: its status, the trainer's message and bespoke's fix."""

    name: str
    status: str
    message: str
    fix: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class RunPreflight:
    """The stages of one run folder (or the one error that kept the probe from running at all)."""

    run: str
    stages: list[Stage] = field(default_factory=list)
    error: str | None = None

    @property
    def problems(self) -> list[Stage]:
        """Stages that would stop the trainer on this box: FAIL and NEEDS-HARDWARE."""
        return [s for s in self.stages if s.status in (FAIL, HARDWARE)]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems

    def to_json(self) -> dict:
        return {"run": self.run, "ok": self.ok, "error": self.error, "stages": [s.to_json() for s in self.stages]}


def probe_job(job_id: str, cwd: Path, script_args: tuple[str, ...], kind: str = "train") -> dict:
    """One job for the probe: `train_network.py script_args` (kind "gen": `gen_img.py script_args`), started in
    `cwd` (the run folder)."""
    return {"id": job_id, "cwd": str(cwd), "args": list(script_args), "kind": kind}


def probe_argv(python: str, sd_scripts: Path, jobs: list[dict]) -> list[str]:
    """The probe's command line: the trainer's Python, the script, the checkout, the jobs as JSON."""
    return [python, str(PROBE_SCRIPT), str(sd_scripts), json.dumps(jobs)]


def gate_words(report: str | Path | None) -> tuple[str, ...]:
    """The words of every launch that come before the trainer's script (LaunchSpec.gate): gate.py, which
    checks the launch's own arguments with the probe's stages, writes its answer to `report` and, when every
    stage passes, runs the script in the same process with the stop guarded (gate.py's docstring). With no
    report (`--no-preflight`) it checks nothing and only guards the stop."""
    return (str(GATE_SCRIPT), str(report) if report is not None else GATE_NO_CHECK)


@dataclass(frozen=True)
class GateLine:
    """One line of gate.py's stop guard: `kind` is busy | deferred | done | stopping | ended."""

    kind: str
    text: str

    @property
    def busy(self) -> bool:
        return self.kind in GATE_BUSY


def parse_gate_line(line: str) -> GateLine | None:
    """`[bespoke gate] busy: saving the state of epoch 2` -> GateLine("busy", ...); None for any other line."""
    if not line.startswith(GATE_PREFIX):
        return None
    kind, _, text = line[len(GATE_PREFIX):].partition(": ")
    return GateLine(kind, text.strip()) if kind in GATE_BUSY + GATE_IDLE else None


def _quote(value: str) -> str:
    return "'\"" + value + "\"'"


_FIXES: tuple[tuple[str, str, str], ...] = (
    # (stage, regex on the message, fix); the first match wins
    *fix_rows(),  # an optional trainer package missing (lycoris-lora, dadaptation, ...): install it
    ("buckets", r"bucket_reso_steps is", "--set bucket_reso_steps=64 (SD 1.x needs a multiple of 64; keep "
                                         "min_bucket_reso <= the resolution), or --set enable_bucket=false"),
    ("dataset", r"min_bucket_reso must be", "--set min_bucket_reso=<the resolution or less>"),
    ("dataset", r"max_bucket_reso must be", "--set max_bucket_reso=<the resolution or more>"),
    ("dataset", r"No data found", "the prepared image folder is empty or missing: check --dataset, then "
                                  "`bespoke check RUN`"),
    ("dataset", r"extra keys not allowed @ data(.*)\['(\w+)'\]", "remove {2} there: it is not a dataset key at that "
                                                                 "level (`bespoke check RUN` names the file)"),
    ("dataset", r"expected (\w+) for dictionary value @ data.*\['(\w+)'\]", "write {2} as a TOML {1} "
                                                                            "(e.g. 1.0, not 1, for a float)"),
    ("dataset", r"color_aug or random_crop", "--set cache_latents=false, or --set color_aug=false "
                                             "--set random_crop=false"),
    ("data loader", r"persistent_workers", "--set persistent_data_loader_workers=false "
                                           "(or --set max_data_loader_n_workers=2)"),
    ("tokenizer", r".", "--set tokenizer_cache_dir=" + _quote("<folder with openai_clip-vit-large-patch14>") +
                        ", or HF_HOME at a cache holding openai/clip-vit-large-patch14 (offline)"),
    ("optimizer", r"bitsandbytes|8bit|8-bit", "--set optimizer_type=" + _quote("AdamW") +
                                              " (or pip install bitsandbytes in the trainer's venv, on a CUDA GPU)"),
    ("optimizer", r".", "check optimizer_type / optimizer_args / lr_scheduler (--set ...)"),
    ("attention", r"xformers", "--set xformers=false --set sdpa=true (or install xformers on a CUDA box)"),
    ("attention", r"sdpa|scaled_dot", "--set sdpa=false, or upgrade torch to >= 2"),
    ("mixed precision", r"bf16|bfloat16", "--set mixed_precision=" + _quote("fp16") + " on this GPU, or " +
                                          _quote("no") + " without one"),
    ("mixed precision", r".", "--set mixed_precision=" + _quote("no") + " --set save_precision=" + _quote("float")),
    ("sample prompts", r".", "check the prompt file (--prompts FILE, or the preset's prompt set)"),
    ("network module", r"network_weights", "--set network_weights to an existing LoRA file, or remove it"),
    ("network module", r"No module named '?networks", "--set network_module=" + _quote("networks.lora") +
                                                      " (or networks.dylora, networks.lora_fa: sd-scripts' own)"),
    ("network module", r".", "install the package of network_module in the trainer's venv, or --set network_module="
                             "<one of sd-scripts' own: networks.lora, networks.dylora, networks.lora_fa>"),
    ("arguments", r".", "`bespoke check RUN` names the key; fix it with --set KEY=VALUE"),
    ("gen_img arguments", r".", "this gen_img.py rejects an option bespoke passes: update sd-scripts "
                                "(git pull in the checkout)"),
    ("files", r".", "train the run first (bespoke train), or point --base-model at your SD 1.5 file"),
)


def fix_for(stage: str, status: str, message: str) -> str:
    """The fix of a failed stage in bespoke's terms (`--set key=value`); '' when PASS/SKIPPED or unknown."""
    if status not in (FAIL, HARDWARE):
        return ""
    for name, pattern, fix in _FIXES:
        if name == stage:
            match = re.search(pattern, message)
            if match:
                return fix.format(*([match.group(0)] + list(match.groups())))
    return ""


def parse_probe(stdout: str, stderr: str, exit_code: int, job_ids: list[str]) -> list[RunPreflight]:
    """The probe's answer per job; a probe that crashed or could not import sd-scripts gives every job its error."""
    answer = None
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER + " "):
            try:
                answer = json.loads(line[len(MARKER) + 1:])
            except ValueError:
                pass
            break
    if answer is None:
        tail = (stderr.strip().splitlines() or [f"exit code {exit_code}, no output"])[-1]
        return [RunPreflight(j, error=f"the preflight probe crashed: {tail[:300]}") for j in job_ids]
    return runs_of(answer, job_ids)


def runs_of(answer: dict, job_ids: list[str]) -> list[RunPreflight]:
    """The RunPreflight of each job in a probe answer (the MARKER line's JSON, or a gate's report file)."""
    if answer.get("error"):
        return [RunPreflight(j, error=str(answer["error"])) for j in job_ids]
    results = []
    for job in answer.get("jobs", []):
        stages = [Stage(s["name"], s["status"], s["message"], fix_for(s["name"], s["status"], s["message"]))
                  for s in job["stages"]]
        results.append(RunPreflight(job["id"], stages))
    return results


def read_gate(report: Path, run: str) -> RunPreflight | None:
    """The gate's verdict on a launch from its report file; None when it wrote none (stopped before, or no gate)."""
    try:
        answer = json.loads(Path(report).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = runs_of(answer, [run])
    return found[0] if found else RunPreflight(run, error="the preflight gate reported no stages")


def probe_device(stdout: str) -> dict:
    """The device line of a probe answer ({"torch", "cuda", "bf16", "gpu"}), {} when there is none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER + " "):
            try:
                return dict(json.loads(line[len(MARKER) + 1:]).get("device") or {})
            except ValueError:
                return {}
    return {}
