"""sd-scripts sample prompt files: parse, check, render.

sd-scripts reads a bad prompt file only at the first sample point (after an epoch of training) and
ignores unknown options, so bespoke checks the file up front. Line syntax (train_util.line_to_prompt_dict):
the line is split on " --"; the first part is the prompt, each other part is an option letter and its value
(case-insensitive): n negative, w width, h height, d seed, s steps, l CFG scale, ss sampler.
Lines starting with '#' and blank lines are skipped; a `# name` comment right above a prompt names it.
.toml ([prompt] defaults + [[prompt.subset]]) and .json (list of strings or dicts) files are read too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import toml

from bespoke.errors import ConfigError, did_you_mean
from bespoke.kohya.config import toml_error
from bespoke.kohya.options import train_network_options

OPTIONS = {"n": "negative", "w": "width", "h": "height", "d": "seed", "s": "steps", "l": "scale", "ss": "sampler"}
OTHER_ARCH = ("g", "cn", "ctr", "rcfg", "fs")  # sd-scripts options for other model families
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_DICT_KEYS = {"prompt": "prompt", "negative_prompt": "negative", "width": "width", "height": "height",
              "seed": "seed", "sample_steps": "steps", "scale": "scale", "sample_sampler": "sampler"}


@dataclass(frozen=True)
class SamplePrompt:
    """One sample prompt; None means sd-scripts' default (512 px, random seed, 30 steps, CFG 7.5)."""

    index: int
    prompt: str
    negative: str | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    steps: int | None = None
    scale: float | None = None
    sampler: str | None = None
    name: str | None = None
    line: int | None = None

    def to_json(self) -> dict:
        """The manifest form (the source line number left out)."""
        return {k: v for k, v in self.__dict__.items() if k != "line"}


# keys every kohya_ss GUI LoRA config holds (presets/lora/*.json and "Save config" files) and no prompt list does
GUI_CONFIG_KEYS = frozenset({"LoRA_type", "train_data_dir", "pretrained_model_name_or_path", "network_dim"})


def _samplers() -> tuple[str, ...]:
    choices = train_network_options()["sample_sampler"].choices
    assert choices is not None, "sample_sampler is a choices option in train_network_options.json"
    return tuple(choices)


def _convert(where: str, field: str, raw, letter: str) -> str | int | float:
    """Check one option value; `where` is 'file:line'."""
    if field in ("negative",):
        return str(raw)
    if field == "sampler":
        sampler = str(raw).strip().lower()
        if sampler not in _samplers():
            raise ConfigError(f"{where}: --{letter} {raw!r} is not a sampler sd-scripts knows "
                              f"({', '.join(_samplers())}){did_you_mean(sampler, _samplers())}")
        return sampler
    if field == "scale":
        try:
            scale = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: --{letter} needs a number (CFG scale), got {raw!r}") from None
        if scale != scale or scale <= 0:
            raise ConfigError(f"{where}: --{letter} must be a positive number, got {raw!r}")
        return scale
    try:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError
        value = int(raw) if not isinstance(raw, str) else int(raw.strip())
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: --{letter} needs an integer, got {raw!r}") from None
    if field in ("width", "height"):
        if value < 64 or value % 8:
            raise ConfigError(f"{where}: --{letter} {value}: {field} must be a multiple of 8 and at least 64 "
                              f"(sd-scripts would silently change it)")
    elif field == "steps":
        if not 1 <= value <= 1000:
            raise ConfigError(f"{where}: --{letter} {value}: steps must be 1..1000")
    elif field == "seed" and value < 0:
        raise ConfigError(f"{where}: --{letter} {value}: the seed must be 0 or more")
    return value


def parse_prompt_line(line: str, where: str, index: int = 0, name: str | None = None, lineno=None) -> SamplePrompt:
    """Parse one prompt line in sd-scripts' syntax; errors name `where` (file:line)."""
    parts = line.strip().split(" --")
    prompt = parts[0].strip()
    if not prompt or prompt.startswith("--"):
        raise ConfigError(f"{where}: empty prompt (the text before the first ' --' option)")
    fields: dict = {}
    for part in parts[1:]:
        match = re.match(r"^([A-Za-z]+)(?:\s+(.*))?$", part.strip(), re.DOTALL)
        if not match:
            raise ConfigError(f"{where}: cannot read option '--{part.strip()}'")
        letter, raw = match.group(1).lower(), (match.group(2) or "").strip()
        if letter in OTHER_ARCH:
            raise ConfigError(f"{where}: --{letter} is for other model families, not SD 1.5; remove it")
        if letter not in OPTIONS:
            raise ConfigError(f"{where}: unknown option --{letter}{did_you_mean(letter, OPTIONS)} "
                              f"(known: {', '.join('--' + k for k in OPTIONS)})")
        if not raw:
            raise ConfigError(f"{where}: --{letter} needs a value")
        field = OPTIONS[letter]
        if field in fields:
            raise ConfigError(f"{where}: --{letter} is given twice")
        fields[field] = _convert(where, field, raw, letter)
    return SamplePrompt(index=index, prompt=prompt, name=name, line=lineno, **fields)


def _parse_txt(path: Path, text: str) -> list[SamplePrompt]:
    prompts: list[SamplePrompt] = []
    pending_name = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            pending_name = None
            continue
        if line.startswith("#"):
            comment = line[1:].strip()
            pending_name = comment if _NAME.match(comment) else None
            continue
        prompts.append(parse_prompt_line(line, f"{path}:{lineno}", len(prompts), pending_name, lineno))
        pending_name = None
    return prompts


def _from_dict(path: Path, entry, index: int) -> SamplePrompt:
    where = f"{path}: prompt {index + 1}"
    if isinstance(entry, str):
        return parse_prompt_line(entry, where, index)
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a string or a table, got {entry!r}")
    fields: dict = {}  # SamplePrompt keyword arguments of mixed types
    letters = {v: k for k, v in OPTIONS.items()}
    for key, value in entry.items():
        if key not in _DICT_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, _DICT_KEYS)}")
        field = _DICT_KEYS[key]
        fields[field] = value if field == "prompt" else _convert(where, field, value, letters[field])
    prompt = str(fields.pop("prompt", "")).strip()
    if not prompt:
        raise ConfigError(f"{where}: empty prompt")
    return SamplePrompt(index=index, prompt=prompt, **fields)


def parse_prompt_text(text: str, path: Path) -> list[SamplePrompt]:
    """Parse prompt file contents; the suffix of `path` picks the format (.txt, .toml, .json)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:  # sd-scripts reads a .toml prompt file with toml 0.10.2: so does bespoke
            data = toml.loads(text)
        except (toml.TomlDecodeError, IndexError, ValueError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {toml_error(text, exc)}") from exc
        section = data.get("prompt", {})
        defaults = {k: v for k, v in section.items() if k != "subset"}
        entries = [{**defaults, **sub} for sub in section.get("subset", [])]
        prompts = [_from_dict(path, entry, i) for i, entry in enumerate(entries)]
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        if isinstance(data, dict) and GUI_CONFIG_KEYS & set(data):
            raise ConfigError(f"{path}: a kohya_ss GUI config (its LoRA tab's \"Save config\"), not prompts; bring "
                              f"it in as a preset with `bespoke import kohya-gui {path}`")
        if not isinstance(data, list):
            raise ConfigError(f"{path}: must be a JSON list of prompts")
        prompts = [_from_dict(path, entry, i) for i, entry in enumerate(data)]
    elif suffix == ".txt":
        prompts = _parse_txt(path, text)
    else:
        raise ConfigError(f"{path}: sd-scripts reads prompt files ending .txt, .toml or .json only")
    if not prompts:
        raise ConfigError(f"{path}: no prompts (only blank or # comment lines); add one prompt per line")
    return prompts


def parse_prompt_file(path: Path) -> list[SamplePrompt]:
    """Read and check an sd-scripts sample prompt file; ConfigError names the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: prompt file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read prompt file ({exc.strerror})") from None
    return parse_prompt_text(text, path)


def for_size(prompts: list[SamplePrompt], size: int, *, force: bool = True) -> list[SamplePrompt]:
    """Set width/height to `size` (all prompts when `force`, else only where the file gave none)."""
    return [
        replace(p, width=size if force or p.width is None else p.width,
                height=size if force or p.height is None else p.height)
        for p in prompts
    ]


def render_prompts(prompts: list[SamplePrompt], header: str = "") -> str:
    """sd-scripts .txt prompt file text; `# name` comments above named prompts."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    if lines:
        lines.append("")
    for p in prompts:
        for field in ("prompt", "negative"):
            value = getattr(p, field) or ""
            if "\n" in value or "\r" in value or " --" in value:
                raise ConfigError(f"prompt {p.index + 1}: the {field} text cannot contain a line break or ' --' "
                                  f"in sd-scripts' line syntax: {value[:60]!r}")
        if p.name:
            lines.append(f"# {p.name}")
        text = p.prompt
        for field, letter in (("negative", "n"), ("width", "w"), ("height", "h"), ("seed", "d"),
                              ("steps", "s"), ("scale", "l"), ("sampler", "ss")):
            value = getattr(p, field)
            if value is not None:
                text += f" --{letter} {value}"
        lines.append(text)
    return "\n".join(lines) + "\n"
