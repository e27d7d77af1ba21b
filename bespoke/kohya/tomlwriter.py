"""bespoke's TOML writer: every TOML file bespoke writes goes through here.

The `toml` package's dumper mangles some backslashes (Windows paths) and cannot be told the section layout
sd-scripts users expect, so the emitter is ours: strings are escaped per the TOML spec, floats always keep a
decimal point, and the training TOML is grouped into readable sections (sd-scripts flattens them).
"""

from __future__ import annotations

import math
import re

from bespoke.errors import ConfigError

TRAINING_SECTIONS = ("model", "network", "optimizer", "training", "data", "output", "sampling")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_string(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def toml_value(value) -> str:
    """One TOML value (str, bool, int, float, list, inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"cannot write {value!r} to TOML (not a finite number)")
        text = repr(value)
        return text if any(c in text for c in ".e") else text + ".0"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write a {type(value).__name__} value to TOML: {value!r}")


def _section_of(key: str) -> str:
    if key in ("pretrained_model_name_or_path", "v2", "v_parameterization", "tokenizer_cache_dir", "vae", "clip_skip"):
        return "model"
    if key.startswith("network_") or key in ("base_weights", "base_weights_multiplier", "dim_from_weights",
                                              "scale_weight_norms"):
        return "network"
    if key.startswith(("optimizer_", "lr_")) or key in ("learning_rate", "unet_lr", "text_encoder_lr", "max_grad_norm"):
        return "optimizer"
    if key.startswith("sample_"):
        return "sampling"
    if key.startswith(("save_", "output_", "log_", "logging_", "metadata_")) or key in (
            "resume", "training_comment", "no_metadata"):
        return "output"
    if key in ("resolution", "caption_extension", "train_batch_size", "enable_bucket", "min_bucket_reso",
               "max_bucket_reso", "bucket_reso_steps", "bucket_no_upscale", "shuffle_caption", "keep_tokens",
               "caption_dropout_rate", "caption_dropout_every_n_epochs", "max_token_length", "prior_loss_weight",
               "resize_interpolation", "max_data_loader_n_workers", "persistent_data_loader_workers"):
        return "data"
    return "training"


def render_training_toml(values: dict, header: str = "") -> str:
    """The training TOML text: sections (sd-scripts flattens them) with sorted keys; no None values."""
    sections: dict[str, list[str]] = {name: [] for name in TRAINING_SECTIONS}
    for key in sorted(values):
        if values[key] is None:
            continue
        sections[_section_of(key)].append(f"{_toml_key(key)} = {toml_value(values[key])}")
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for name in TRAINING_SECTIONS:
        if sections[name]:
            if lines:
                lines.append("")
            lines.append(f"[{name}]")
            lines.extend(sections[name])
    return "\n".join(lines) + "\n"


def render_dataset_toml(config: dict, header: str = "") -> str:
    """The dataset TOML text: optional [general], then [[datasets]] with [[datasets.subsets]]."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]

    def table(values: dict, indent: str = "") -> None:
        for key, value in values.items():
            if value is not None and key != "subsets":
                lines.append(f"{indent}{_toml_key(key)} = {toml_value(value)}")

    if config.get("general"):
        lines += ["", "[general]"] if lines else ["[general]"]
        table(config["general"])
    for dataset in config.get("datasets", []):
        lines += ["", "[[datasets]]"] if lines else ["[[datasets]]"]
        table(dataset)
        for subset in dataset.get("subsets", []):
            lines += ["", "  [[datasets.subsets]]"]
            table(subset, "  ")
    return "\n".join(lines) + "\n"
