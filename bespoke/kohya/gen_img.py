"""What `gen_img.py` (sd-scripts' image generator, kohya/FACTS.md §7) is given: its arguments for a run's
checkpoint, and a prompt file with one line per (prompt, seed) that names each output file.

gen_img.py names its outputs by batch index, not by prompt, so every line carries `--d <seed>` and
`--f <name>_s<seed>.png` (the per-prompt file-name option; gen_img.py appends no extension).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bespoke.errors import ConfigError
from bespoke.kohya.presets import presets_folder
from bespoke.kohya.prompts import parse_prompt_file

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
BASELINE_PROMPTS = "prompts-baseline.txt"  # the 7 prompts of the recorded baseline's evaluation
# gen_img.py --sampler choices (gen_img.py setup_parser; the same list as train_network.py --sample_sampler)
SAMPLERS = ("ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
            "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a")



@dataclass(frozen=True)
class GenPrompt:
    """One prompt of a generation: a file-safe name and everything gen_img.py needs per line."""

    name: str
    prompt: str
    negative: str = ""
    width: int = 512
    height: int = 512
    steps: int = 30
    scale: float = 7.5

    def to_json(self) -> dict:
        """The manifest form."""
        return dict(self.__dict__)


def safe_name(text: str) -> str:
    """A file-name-safe prompt name."""
    return _SAFE.sub("_", text).strip("._") or "prompt"


def baseline_prompts() -> list[GenPrompt]:
    """The 7 prompts of the recorded baseline protocol (negative prompt, 512x512, 30 steps, CFG 7.5): the
    baseline-512 preset's prompt set, without its seeds (generate takes seeds of its own)."""
    return prompts_from_file(presets_folder() / BASELINE_PROMPTS)


def prompts_from_file(path: Path) -> list[GenPrompt]:
    """Prompts of an sd-scripts prompt file (.txt/.toml/.json); unnamed ones become p00, p01, ..."""
    out: list[GenPrompt] = []
    seen: set[str] = set()
    for p in parse_prompt_file(Path(path)):
        name = safe_name(p.name) if p.name else f"p{p.index:02d}"
        while name in seen:
            name += "_"
        seen.add(name)
        out.append(GenPrompt(name, p.prompt, p.negative or "", p.width or 512, p.height or 512,
                             p.steps or 30, float(p.scale) if p.scale is not None else 7.5))
    return out


def image_name(prompt: GenPrompt, seed: int) -> str:
    return f"{prompt.name}_s{seed}.png"


def render_gen_prompts(prompts: list[GenPrompt], seeds: tuple[int, ...]) -> str:
    """gen_img.py prompt file: one line per (prompt, seed), with the seed and the output file name."""
    lines = ["# bespoke generate: one line per (prompt, seed); --f names the output file"]
    for p in prompts:
        for text, what in ((p.prompt, "prompt"), (p.negative, "negative prompt")):
            if " --" in text or "\n" in text or "\r" in text:
                raise ConfigError(f"prompt {p.name}: the {what} cannot contain ' --' or a line break "
                                  f"(gen_img.py's line syntax): {text[:60]!r}")
        for seed in seeds:
            line = p.prompt
            if p.negative:
                line += f" --n {p.negative}"
            line += (f" --w {p.width} --h {p.height} --s {p.steps} --l {p.scale:g} --d {seed}"
                     f" --f {image_name(p, seed)}")
            lines.append(line)
    return "\n".join(lines) + "\n"


def _precision_flag(training: dict) -> str | None:
    precision = str(training.get("mixed_precision") or "no").lower()
    return {"fp16": "--fp16", "bf16": "--bf16"}.get(precision)


@dataclass(frozen=True)
class GenImgInputs:
    """What one gen_img.py run reads and writes: the base model and the LoRA, the prompts (and the file that holds
    them, one line per prompt and seed), the LoRA multiplier, the sampler and the folder the images go to."""

    base_model: str
    outdir: Path
    prompt_file: Path
    checkpoint: Path
    prompts: list[GenPrompt]
    mul: float = 1.0
    sampler: str = "ddim"


def gen_img_args(inputs: GenImgInputs, training: dict) -> tuple[str, ...]:
    """gen_img.py arguments (FACTS.md §7) for `inputs`, with what the run trained with (`training`: its
    training.toml) that gen_img.py needs too; per-line options in the prompt file override --W/--H/--steps/--scale."""
    first = inputs.prompts[0]
    args = ["--ckpt", str(inputs.base_model), "--outdir", str(inputs.outdir), "--from_file", str(inputs.prompt_file),
            "--W", str(first.width), "--H", str(first.height), "--steps", str(first.steps),
            "--scale", f"{first.scale:g}", "--sampler", inputs.sampler,
            "--network_module", "networks.lora", "--network_weights", str(inputs.checkpoint),
            "--network_mul", f"{inputs.mul:g}", "--images_per_prompt", "1", "--batch_size", "1"]
    flag = _precision_flag(training)
    if flag:
        args.append(flag)
    if training.get("xformers"):
        args.append("--xformers")
    elif training.get("sdpa"):
        args.append("--sdpa")
    # offline, gen_img.py needs the tokenizer the run trained with (FACTS §9), like train_network.py
    if training.get("tokenizer_cache_dir"):
        args += ["--tokenizer_cache_dir", str(training["tokenizer_cache_dir"])]
    # gen_img.py has no --max_token_length: its long-prompt equivalent counts 75-token chunks
    if training.get("max_token_length"):
        args += ["--max_embeddings_multiples", str(max(int(training["max_token_length"]) // 75, 1))]
    if training.get("clip_skip"):
        args += ["--clip_skip", str(training["clip_skip"])]
    if training.get("v2"):
        args.append("--v2")
    if training.get("v_parameterization"):
        args.append("--v_parameterization")
    return tuple(args)
