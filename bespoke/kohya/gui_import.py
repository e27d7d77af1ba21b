"""A kohya_ss GUI (bmaltais/kohya_ss) LoRA training JSON -> a bespoke preset TOML, validated like any preset.

The GUI saves every field of its LoRA tab as JSON ("Save config"; the `presets/lora/*.json` files are the same
format): numbers often as strings, "" for unset, GUI-only choices (`LoRA_type`, `optimizer`, `epoch`,
`lr_warmup` in %) and paths of the machine it ran on. This module maps each key:

- to a `[training]` key when it is a train_network.py option (converted to the option's type),
- to a `[dataset]` key when it is a dataset TOML key (bespoke keeps captions and augmentation there),
- through the GUI's own translations (LoRA_type -> network_module + network_args, optimizer -> optimizer_type,
  optimizer_args text -> list, epoch -> max_train_epochs, use_wandb -> log_with, noise_offset_type), or
- to the list of settings not imported, each with why: bespoke sets it itself (paths, resolution, buckets,
  captions, sample prompts), it has no sd-scripts equivalent (GUI-only), or it is a secret.

The result goes through the same checks as every preset (kohya.presets / kohya.validate) before it is written.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bespoke.errors import ConfigError, UsageError
from bespoke.fsutil import atomic_write_text
from bespoke.kohya.config import RUN_LOCAL_KEYS, build_training_config
from bespoke.kohya.options import dataset_keys, train_network_options
from bespoke.kohya.presets import (
    MANAGED_DATASET,
    MANAGED_TRAINING,
    PRESETS_DIR,
    load_preset_file,
    resolve_preset,
)
from bespoke.kohya.tomlwriter import toml_value
from bespoke.kohya.validate import validate_preset_values, validate_training

# What bespoke decides for itself from the prepared 24 px dataset (res-R.toml, prepare), beyond MANAGED_*.
BESPOKE_SETS = {
    "max_resolution": "comes from -r/--resolution (the prepared images are exactly R x R)",
    "enable_bucket": "is set per resolution in res-R.toml (one exact bucket per size)",
    "bucket_reso_steps": "is set per resolution in res-R.toml",
    "bucket_no_upscale": "is set per resolution in res-R.toml",
    "min_bucket_reso": "is set per resolution in res-R.toml",
    "max_bucket_reso": "is set per resolution in res-R.toml",
    "caption_extension": "is .txt: bespoke prepare writes the captions",
    "model_list": "is the GUI's model menu; the base model comes from settings.base_model",
    "num_cpu_threads_per_process": "is an accelerate setting: [accelerate] in bespoke.toml",
    "resume": "is automatic: re-run `bespoke train` and it resumes the run",
    "save_state": "is managed by bespoke's resume (train --restart to start over)",
    "sample_prompts": MANAGED_TRAINING["sample_prompts"],
    "output_name": "is set per run by bespoke (checkpoint names follow the run)",
}
SECRETS = ("wandb_api_key", "huggingface_token", "huggingface_repo_id")
GUI_ONLY = {
    "LoRA_type": "translated to network_module/network_args",
    "optimizer": "translated to optimizer_type",
    "epoch": "translated to max_train_epochs",
    "use_wandb": "translated to log_with",
    "use_8bit_adam": "translated to optimizer_type",
    "noise_offset_type": "chooses noise_offset or multires_noise_*",
    "conv_dim": "network_args (LoCon/LyCORIS only)", "conv_alpha": "network_args (LoCon/LyCORIS only)",
}
_LYCORIS = {"LyCORIS/LoHa": "loha", "LyCORIS/LoKr": "lokr", "LyCORIS/LoCon": "locon", "LyCORIS/iA3": "ia3",
            "LyCORIS/DyLoRA": "dylora", "LyCORIS/GLoRA": "glora", "LyCORIS/Native Fine-Tuning": "full",
            "LyCORIS/BOFT": "boft", "LyCORIS/Diag-OFT": "diag-oft"}
_NETWORK_ARGS = ("rank_dropout", "module_dropout")
_LYCORIS_ARGS = ("use_cp", "factor", "decompose_both", "train_on_input", "use_tucker", "use_scalar")


@dataclass
class Imported:
    """The preset tables made from a GUI config and every GUI setting that was not imported (key, value, why)."""

    training: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    skipped: list[tuple[str, object, str]] = field(default_factory=list)


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _nonzero(value: object) -> bool:
    """True for a set, non-zero GUI number (text that is no number counts as set)."""
    if _empty(value) or value is False:
        return False
    try:
        return float(value) != 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True


def coerce(value: object, kind: str, key: str, source: str) -> object:
    """A GUI value ("0.0001", 64.0, "1") as the sd-scripts option type ('int', 'float', 'bool', ...)."""
    try:
        if kind == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("true", "1", "yes")
            return bool(value)
        if kind == "int":
            number = float(value)  # type: ignore[arg-type]
            if number != int(number):
                raise ValueError
            return int(number)
        if kind == "float":
            return float(value)  # type: ignore[arg-type]
        if kind == "int_or_float":
            number = float(value)  # type: ignore[arg-type]
            return int(number) if number == int(number) else number
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key} = {value!r} is not a{'n' if kind[0] in 'ai' else ''} {kind}") from None
    return str(value)


def _network(config: dict, out: Imported) -> None:
    """LoRA_type (+ conv_dim/alpha and the LyCORIS knobs) -> network_module and network_args."""
    kind = str(config.get("LoRA_type") or "Standard")
    args: list[str] = []
    if kind in _LYCORIS:
        out.training["network_module"] = "lycoris.kohya"
        args.append(f"algo={_LYCORIS[kind]}")
        args += [f"{k}={config[k]}" for k in _LYCORIS_ARGS if not _empty(config.get(k)) and config.get(k) is not False]
    elif kind in ("Standard", "LoCon", "Kohya LoCon", "Kohya DyLoRA", "LoRA-FA", "Kohya LoRA-FA"):
        out.training["network_module"] = {"Kohya DyLoRA": "networks.dylora", "LoRA-FA": "networks.lora_fa",
                                          "Kohya LoRA-FA": "networks.lora_fa"}.get(kind, "networks.lora")
    else:
        out.skipped.append(("LoRA_type", kind, "unknown LoRA type; networks.lora kept"))
    if kind != "Standard":
        args += [f"{k}={config[k]}" for k in ("conv_dim", "conv_alpha") if not _empty(config.get(k))]
    args += [f"{k}={config[k]}" for k in _NETWORK_ARGS if _nonzero(config.get(k))]
    for key in ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas", "down_lr_weight",
                "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold"):
        if not _empty(config.get(key)):
            args.append(f"{key}={config[key]}")
    if args:
        out.training["network_args"] = args


def _translations(config: dict, out: Imported, source: str) -> set[str]:
    """The GUI's own fields; returns the keys it handled."""
    done = {"LoRA_type", "conv_dim", "conv_alpha", "block_dims", "block_alphas", "conv_block_dims",
            "conv_block_alphas", "down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold",
            *_NETWORK_ARGS, *_LYCORIS_ARGS}
    _network(config, out)
    if not _empty(config.get("optimizer")):
        out.training["optimizer_type"] = str(config["optimizer"])
    elif config.get("use_8bit_adam") is True:
        out.training["optimizer_type"] = "AdamW8bit"
    if not _empty(config.get("optimizer_args")):
        try:
            out.training["optimizer_args"] = shlex.split(str(config["optimizer_args"]))
        except ValueError as exc:
            raise ConfigError(f"{source}: optimizer_args {config['optimizer_args']!r}: {exc}") from None
    if str(config.get("max_token_length") or "").strip() in ("75", "75.0"):
        out.skipped.append(("max_token_length", config["max_token_length"], "75 is sd-scripts' default, which a "
                            "preset cannot restore: base.toml's 225 is kept (bespoke's captions are longer)"))
    elif not _empty(config.get("max_token_length")):
        out.training["max_token_length"] = coerce(config["max_token_length"], "int", "max_token_length", source)
    if not _empty(config.get("epoch")) and _empty(config.get("max_train_epochs")):
        out.training["max_train_epochs"] = coerce(config["epoch"], "int", "epoch", source)
    if config.get("use_wandb") is True:
        out.training["log_with"] = "wandb"
    if str(config.get("noise_offset_type") or "Original") == "Multires":
        done.add("noise_offset")  # the GUI passes multires_noise_* instead of noise_offset then
    else:
        done |= {"multires_noise_iterations", "multires_noise_discount"}
    if _nonzero(config.get("lr_warmup")):
        out.skipped.append(("lr_warmup", config["lr_warmup"], "a % of the total steps, computed by the GUI; "
                            "set lr_warmup_steps (a fraction like 0.1 works too)"))
    return done | {"optimizer", "use_8bit_adam", "optimizer_args", "epoch", "use_wandb", "noise_offset_type",
                   "lr_warmup", "max_token_length"}


def _gui_off(key: str, value: object, default: object) -> bool:
    """The GUI shows 0 for "off" and then passes nothing to sd-scripts (noise, dropout, step counts, VAE batch)."""
    if isinstance(value, bool) or _nonzero(value):
        return False
    return default is None or key == "vae_batch_size"


def _why_not(key: str) -> str | None:
    """Why bespoke does not take `key` from a GUI config (None when it does)."""
    if key in SECRETS:
        return "a secret: never written to a preset (use the environment, e.g. WANDB_API_KEY)"
    if key in MANAGED_TRAINING:
        return "set by bespoke: it " + MANAGED_TRAINING[key]
    if key in MANAGED_DATASET:
        return "set by bespoke: it " + MANAGED_DATASET[key]
    if key in BESPOKE_SETS:
        return "set by bespoke: it " + BESPOKE_SETS[key]
    return None


def map_config(config: dict, source: str = "config") -> Imported:
    """The bespoke preset tables for a GUI config, and what was not imported with the reason."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: not a kohya_ss GUI config (expected a JSON object of settings)")
    out = Imported()
    handled = _translations(config, out, source)
    options, datasets = train_network_options(), dataset_keys()
    for key, value in config.items():
        why = _why_not(key)
        if why:
            if not _empty(value) and value is not False:
                out.skipped.append((key, value, why))
            continue
        if key in handled or _empty(value):
            continue
        if key == "train_batch_size":
            out.dataset["batch_size"] = coerce(value, "int", key, source)
        elif key in datasets:
            kind = options[key].type if key in options else ("bool" if isinstance(value, bool) else
                                                              "float" if "rate" in key else "int")
            out.dataset[key] = coerce(value, kind, key, source)
        elif key in options:
            if _gui_off(key, value, options[key].default):
                continue
            out.training[key] = coerce(value, options[key].type, key, source)
        else:
            out.skipped.append((key, value, "no sd-scripts equivalent (a kohya_ss GUI setting)"))
    return out


def read_gui_config(path: Path) -> dict:
    """A GUI JSON file as a dict; ConfigError naming the file when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON ({exc}); export the config from the kohya_ss GUI (Save config)") from exc
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: not a kohya_ss GUI config (expected a JSON object of settings)")
    if not any(k in data for k in ("LoRA_type", "network_dim", "learning_rate", "optimizer", "train_batch_size")):
        raise ConfigError(f"{path}: no LoRA training settings (LoRA_type, network_dim, learning_rate, …); "
                          "is it a kohya_ss GUI LoRA config?")
    return data


def render_preset(imported: Imported, *, name: str, source: str) -> str:
    """The preset TOML text: a header naming the source and every setting not imported, then the tables."""
    lines = [f"# bespoke preset: {name} — imported from the kohya_ss GUI config {source}",
             "# by `bespoke import kohya-gui` (layered on base.toml and res-R.toml like every preset).",
             "# Not imported (bespoke sets it, it has no sd-scripts equivalent, or it is a secret):"]
    for key, value, why in imported.skipped:
        shown = "<hidden>" if key in SECRETS else json.dumps(value, ensure_ascii=False)
        lines.append(f"#   {key} = {shown}: {why}")
    if not imported.skipped:
        lines.append("#   nothing")
    lines += ["", "[bespoke]", f"description = {toml_value(f'imported from the kohya_ss GUI config {source}')}"]
    for table, values in (("training", imported.training), ("dataset", imported.dataset)):
        lines += ["", f"[{table}]"] + [f"{key} = {toml_value(values[key])}" for key in sorted(values)]
    return "\n".join(lines) + "\n"


def preset_name(path: Path) -> str:
    """A preset name from a GUI file name: 'sd15 - EDG_LoraOptiSettings.json' -> 'sd15-edg_loraoptisettings'."""
    name = re.sub(r"[^a-z0-9_.]+", "-", Path(path).stem.lower()).strip("-.")
    return name or "imported"


def validate_text(text: str, name: str, presets_dir: Path = PRESETS_DIR) -> list[int]:
    """Check the preset `text` exactly as `plan --preset NAME` would at every resolution with a res-R.toml:
    layered on base.toml and res-R.toml, every value checked, the whole training config built and checked.
    Returns the resolutions checked; ConfigError names the key."""
    with tempfile.TemporaryDirectory(prefix="bespoke-import-") as tmp:
        try:
            return _validate_in(Path(tmp), text, name, presets_dir)
        except ConfigError as exc:  # name the preset, not the temporary folder it was checked in
            raise ConfigError(str(exc).replace(tmp + "/", "")) from None


def _validate_in(folder: Path, text: str, name: str, presets_dir: Path) -> list[int]:
    for layer in [presets_dir / "base.toml", *sorted(presets_dir.glob("res-*.toml"))]:
        shutil.copyfile(layer, folder / layer.name)
    (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    load_preset_file(folder / f"{name}.toml")
    checked = []
    for res_file in sorted(folder.glob("res-*.toml"), key=lambda p: int(p.stem[4:])):
        resolution = int(res_file.stem[4:])
        preset = resolve_preset(resolution, name, presets_dir=folder)
        validate_preset_values(preset)
        training = build_training_config(preset, base_model="base-model",
                                         run_local={key: "prompts.txt" if key == "sample_prompts" else key
                                                    for key in RUN_LOCAL_KEYS})
        validate_training(training, f"{name}.toml at {resolution} px")
        checked.append(resolution)
    return checked


@dataclass
class ImportResult:
    """What `import_gui_config` wrote: the preset file, its tables, what was not imported, where it was checked."""

    path: Path
    name: str
    imported: Imported
    resolutions: list[int]


def import_gui_config(config_path: Path, *, out_dir: Path, name: str | None = None,
                      force: bool = False) -> ImportResult:
    """Turn a kohya_ss GUI LoRA JSON into `out_dir/<name>.toml` (validated first; never overwrites another
    file unless `force`)."""
    config_path = Path(config_path)
    name = name or preset_name(config_path)
    if name in ("base",) or re.match(r"^(res-\d+|sweep-)", name) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UsageError(f"--name {name!r}: not usable as a preset name (base, res-R and sweep-* are reserved; "
                         "use letters, digits, - _ .)")
    target = Path(out_dir) / f"{name}.toml"
    if target.exists() and not force:
        raise UsageError(f"{target}: exists; choose another --name or pass --force to replace it")
    imported = map_config(read_gui_config(config_path), str(config_path))
    text = render_preset(imported, name=name, source=config_path.name)
    resolutions = validate_text(text, name)
    atomic_write_text(target, text)
    return ImportResult(target, name, imported, resolutions)
