"""A kohya_ss GUI (bmaltais/kohya_ss) LoRA config JSON -> a bespoke preset TOML that trains what the GUI would
have trained, validated like any preset.

The GUI's own translation of its fields into train_network.py options is `bespoke.kohya.gui_translate` (ported
from the GUI); a config the GUI would not train as an SD 1.x LoRA (SDXL, FLUX.1 and the other model families,
DreamBooth, fine-tuning and Textual Inversion configs) is refused with the reason. Of what the GUI would pass,
this module takes every train_network.py option into [training] or, for captions, augmentation and the batch,
[dataset], and lists, with why, each setting it does not take: bespoke sets it (paths, resolution, buckets,
captions, sample prompts, its per-epoch samples, checkpoints and resume states), it is an accelerate launch
setting, a file on the GUI's machine, a Hub upload, or a secret. Where the GUI leaves an option to sd-scripts'
default and base.toml sets another value, the preset writes the default back (the GUI's run would not get
base.toml's value). `--set` overrides come last, like everywhere else.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bespoke.errors import ConfigError, UsageError
from bespoke.fsutil import atomic_write_text
from bespoke.kohya import packages
from bespoke.kohya.config import RUN_LOCAL_KEYS, build_training_config
from bespoke.kohya.gui_translate import GUI_COMMIT, GUI_DEFAULTS, GuiTraining, refusal, translate
from bespoke.kohya.options import dataset_levels, options_source, train_network_options
from bespoke.kohya.presets import (
    MANAGED_TRAINING,
    PRESETS_DIR,
    ResolvedPreset,
    load_preset_file,
    parse_override,
    resolve_preset,
)
from bespoke.kohya.prompts import parse_prompt_file
from bespoke.kohya.tomlwriter import toml_value
from bespoke.kohya.validate import validate_preset_values, validate_training

SECRETS = ("wandb_api_key", "huggingface_token")
_RES_LAYER = "is set per resolution in res-R.toml (one exact bucket per size)"
_HUB = "uploads to the Hugging Face Hub: not taken (bespoke's runs stay local; --set it to upload)"
_STATES = "bespoke manages the resume states itself (save_state, save_last_n_epochs_state = 1)"
_LAUNCH_WHY = {
    **dict.fromkeys(("dynamo_backend", "dynamo_mode", "dynamo_use_fullgraph", "dynamo_use_dynamic"),
                    "an accelerate launch setting (torch.compile through dynamo): bespoke launches accelerate itself "
                    "with --dynamo_backend no"),
    **dict.fromkeys(("num_processes", "num_machines", "multi_gpu", "gpu_ids", "main_process_port"),
                    "an accelerate launch setting: bespoke launches one process per run (bespoke sweep --gpus "
                    "spreads runs over GPUs)"),
    "num_cpu_threads_per_process": "an accelerate launch setting: [accelerate] num_cpu_threads_per_process in "
                                   "bespoke.toml",
    "extra_accelerate_launch_args": "accelerate launch arguments: bespoke builds the launch itself",
}
# key -> why bespoke does not take the GUI's value (beyond presets.MANAGED_*)
NOT_TAKEN = {
    **dict.fromkeys(("enable_bucket", "bucket_reso_steps", "bucket_no_upscale", "min_bucket_reso", "max_bucket_reso"),
                    "set by bespoke: it " + _RES_LAYER),
    "caption_extension": "set by bespoke: it is .txt (bespoke prepare writes the captions)",
    "keep_tokens": "set by bespoke: it writes the captions, and base.toml's keep_tokens keeps their first words "
                   "('pixel art, 24x24, portrait of ...') in front",
    "resume": "set by bespoke: re-run `bespoke train` and it resumes the run",
    "save_state": "set by bespoke: " + _STATES,
    "output_name": "set by bespoke: checkpoint names follow the run",
    "sample_every_n_epochs": "bespoke samples every epoch to choose the best one (--set sample_every_n_epochs=N "
                             "to sample less often)",
    "save_every_n_epochs": "bespoke saves every epoch so that the chosen epoch's LoRA is on disk for generate and "
                           "export (--set save_every_n_epochs=N to save less)",
    **dict.fromkeys(("sample_every_n_steps", "save_every_n_steps"), "bespoke samples and saves per epoch"),
    **dict.fromkeys(("save_last_n_epochs", "save_last_n_steps"),
                    "would delete older checkpoints: bespoke keeps every epoch's LoRA to choose from"),
    **dict.fromkeys(("save_last_n_epochs_state", "save_last_n_steps_state", "save_state_on_train_end"), _STATES),
    "save_model_as": "bespoke reads .safetensors checkpoints (inspect, generate, export)",
    **dict.fromkeys(("network_weights", "vae", "log_tracker_config"),
                    "a file on the machine the GUI ran on; --set it to a file here to use one"),
    "dim_from_weights": "needs network_weights, a file on the machine the GUI ran on",
    "masked_loss": "needs masks in the dataset (alpha_mask or conditioning images), which bespoke's prepared "
                   "images do not have: sd-scripts would compute the plain loss",
    **dict.fromkeys(("huggingface_repo_id", "huggingface_repo_type", "huggingface_repo_visibility",
                     "huggingface_path_in_repo", "save_state_to_huggingface", "resume_from_huggingface",
                     "async_upload"), _HUB),
    **dict.fromkeys(SECRETS, "a secret: never written to a preset (use the environment, e.g. WANDB_API_KEY)"),
}
_GUI_NAME = {"resolution": "max_resolution", "optimizer_type": "optimizer"}
ONE_EPOCH = 1  # a run of this many trained epochs leaves no best epoch to choose
MANY_SAMPLES = 200  # more samples than this: a warning (base.toml's 10 epochs x 4 prompts draw 44)


@dataclass
class Imported:
    """The preset tables made from a GUI config, and the record of how: the GUI's translations, every setting
    not taken (key, value, why), the fields the GUI itself does not pass, the --set overrides applied."""

    training: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    bespoke: dict = field(default_factory=dict)
    skipped: list[tuple[str, object, str]] = field(default_factory=list)
    translated: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)


def coerce(value: object, kind: str, key: str, source: str) -> object:
    """A GUI value ("0.0001", 64.0, "1") as the sd-scripts option type ('int', 'float', 'bool', ...)."""
    if isinstance(value, list):
        return [coerce(item, kind, key, source) for item in value]
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
            return int(number) if number == int(number) and not isinstance(value, float) else number
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key} = {value!r} is not a{'n' if kind[0] in 'ai' else ''} {kind}") from None
    return str(value)


def _why_not(key: str, value: object, base: dict) -> str | None:
    """Why bespoke does not take the GUI's `value` of option `key` (None when it does)."""
    if key in MANAGED_TRAINING:
        return "set by bespoke: it " + MANAGED_TRAINING[key]
    if key in ("sample_every_n_epochs", "save_every_n_epochs", "save_model_as") and value == base.get(key):
        return ""  # the same as bespoke's: nothing to say
    if key == "max_token_length" and value == 75 and base.get(key) not in (None, 75):
        return (f"75 is sd-scripts' default length, which a preset cannot restore (bespoke allows 150 or 225): "
                f"base.toml's {base[key]} is kept (bespoke's captions are longer)")
    if key in train_network_options() or key in NOT_TAKEN:
        return NOT_TAKEN.get(key)
    if value == GUI_DEFAULTS.get(key):
        return ""  # the GUI's own default of an option this sd-scripts lacks: it would ignore it anyway
    return (f"not a train_network.py option of sd-scripts {options_source()['source_commit'][:8]} (bespoke's "
            f"option table); the GUI's newer sd-scripts has it")


def _dataset_kind(key: str) -> str:
    """The type to write a dataset key as: the train_network.py option's when it is one, else the schema's."""
    if key in train_network_options():
        return train_network_options()[key].type
    for level in dataset_levels().values():
        if key in level:
            kind = level[key]["type"]
            kind = kind[0] if isinstance(kind, list) else kind
            return kind if kind in ("int", "float", "bool") else "str"
    return "str"


def _restore_defaults(out: Imported, gui: GuiTraining, base: dict, raw: dict) -> None:
    """Options the GUI leaves to sd-scripts' default where base.toml sets another value: write the default,
    or (when it is "unset", which a preset cannot say) list base.toml's value as kept."""
    options = train_network_options()
    for table, target in (("training", out.training), ("dataset", out.dataset)):
        for key, base_value in base[table].items():
            gui_key = "train_batch_size" if key == "batch_size" else key
            if gui_key not in gui.controlled or key in target or gui_key in gui.options or gui_key in NOT_TAKEN:
                continue
            default = options[gui_key].default if gui_key in options else None
            if default is None:
                out.skipped.append((gui_key, raw.get(gui_key, ""), f"the GUI leaves it unset (sd-scripts' default), which a preset "
                                                   f"cannot say: base.toml's {key} = {base_value!r} is kept"))
            elif default != base_value:
                target[key] = default


def map_config(config: dict, source: str = "config", presets_dir: Path = PRESETS_DIR) -> Imported:
    """The bespoke preset tables for a GUI config (as the GUI translates it), and what was not taken with why."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: not a kohya_ss GUI config (expected a JSON object of settings)")
    why = refusal(config)
    if why:
        raise ConfigError(f"{source}: {why}")
    try:
        gui = translate(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    base = load_preset_file(presets_dir / "base.toml")
    out = Imported(translated=gui.notes, ignored=gui.ignored)
    out.skipped += [(key, value, _LAUNCH_WHY[key]) for key, value in gui.launch.items()]
    options, datasets = train_network_options(), set(dataset_levels()["subsets"]) | {"batch_size"}
    for key, value in gui.options.items():
        reason = _why_not(key, value, base["training"])
        if reason is not None:
            if reason:
                out.skipped.append((_GUI_NAME.get(key, key), value, reason))
            continue
        target = "batch_size" if key == "train_batch_size" else key
        if target in datasets:
            out.dataset[target] = coerce(value, _dataset_kind(target), key, source)
        else:
            value = coerce(value, options[key].type, key, source)
            if value != options[key].default or key in base["training"]:  # a default is noise in a preset
                out.training[key] = value
    _restore_defaults(out, gui, base, config)
    # what a fresh GUI would add for a field the file lacks is not the file's setting: only the file's are listed
    given = set(config) | {_GUI_NAME.get(key, key) for key in gui.command_line}
    out.skipped = [item for item in out.skipped if item[0] in given]
    return out


def apply_overrides(imported: Imported, overrides: tuple[str, ...] | list[str]) -> None:
    """`--set key=value` on the imported tables (parsed and checked like train's --set), recorded in order."""
    for text in overrides:
        table, key, value = parse_override(text)
        getattr(imported, table)[key] = value
        imported.overrides.append(text)


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
    return data


def _comment_lines(title: str, items: list[str]) -> list[str]:
    return [f"# {title}", *(f"#   {item}" for item in items)] if items else []


def render_preset(imported: Imported, *, name: str, source: str) -> str:
    """The preset TOML text: a header naming the source, the translations and every setting not taken, then the
    tables."""
    lines = [f"# bespoke preset: {name} — imported from the kohya_ss GUI config {source}",
             f"# by `bespoke import kohya-gui`, translated as the kohya_ss GUI ({GUI_COMMIT}) translates it; layered",
             "# on base.toml and res-R.toml like every preset."]
    lines += _comment_lines("Translated by the GUI's rules:", imported.translated)
    skipped = [f"{key} = {'<hidden>' if key in SECRETS else json.dumps(value, ensure_ascii=False)}: {why}"
               for key, value, why in imported.skipped]
    lines += _comment_lines("Not imported (bespoke sets it, a launch setting, a file or upload, or a secret):", skipped)
    if imported.ignored:
        lines.append("# Not passed by the GUI itself for an SD 1.x LoRA, so ignored: " + ", ".join(imported.ignored))
    lines += _comment_lines("--set applied at import:", imported.overrides)
    lines += ["", "[bespoke]", f"description = {toml_value(f'imported from the kohya_ss GUI config {source}')}"]
    lines += [f"{key} = {toml_value(value)}" for key, value in sorted(imported.bespoke.items()) if key != "description"]
    for table, values in (("training", imported.training), ("dataset", imported.dataset)):
        lines += ["", f"[{table}]"] + [f"{key} = {toml_value(values[key])}" for key in sorted(values)]
    return "\n".join(lines) + "\n"


def preset_name(path: Path) -> str:
    """A preset name from a GUI file name: 'sd15 - EDG_LoraOptiSettings.json' -> 'sd15-edg_loraoptisettings'."""
    name = re.sub(r"[^a-z0-9_.]+", "-", Path(path).stem.lower()).strip("-.")
    return name or "imported"


def validate_text(text: str, name: str, presets_dir: Path = PRESETS_DIR) -> list[ResolvedPreset]:
    """Check the preset `text` exactly as `plan --preset NAME` would at every resolution with a res-R.toml:
    layered on base.toml and res-R.toml, every value checked, the whole training config built and checked.
    Returns the preset resolved at each resolution checked; ConfigError names the key."""
    with tempfile.TemporaryDirectory(prefix="bespoke-import-") as tmp:
        try:
            return _validate_in(Path(tmp), text, name, presets_dir)
        except ConfigError as exc:  # name the preset, not the temporary folder it was checked in
            raise ConfigError(str(exc).replace(tmp + "/", "")) from None


def _validate_in(folder: Path, text: str, name: str, presets_dir: Path) -> list[ResolvedPreset]:
    for layer in [presets_dir / "base.toml", *sorted(presets_dir.glob("res-*.toml"))]:
        shutil.copyfile(layer, folder / layer.name)
    (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    load_preset_file(folder / f"{name}.toml")
    checked = []
    for res_file in sorted(folder.glob("res-*.toml"), key=lambda p: int(p.stem[4:])):
        preset = resolve_preset(int(res_file.stem[4:]), name, presets_dir=folder)
        validate_preset_values(preset)
        training = build_training_config(preset, base_model="base-model",
                                         run_local={key: "prompts.txt" if key == "sample_prompts" else key
                                                    for key in RUN_LOCAL_KEYS})
        validate_training(training, f"{name}.toml at {preset.resolution} px")
        checked.append(preset)
    return checked


def sample_warnings(preset: ResolvedPreset, prompts: int) -> list[str]:
    """What the preset's epochs do to bespoke's choice of the best epoch: one epoch leaves nothing to choose;
    hundreds of sampled epochs draw more samples than anyone reviews (thresholds ONE_EPOCH, MANY_SAMPLES)."""
    training = preset.training
    epochs = int(training.get("max_train_epochs") or 0)
    every = int(training.get("sample_every_n_epochs") or 0)
    if epochs == ONE_EPOCH:
        return ["max_train_epochs = 1: one trained epoch, so there is no best epoch to choose (the review compares "
                "epochs); e.g. --set max_train_epochs=10"]
    samples = (epochs // every + (1 if training.get("sample_at_first") else 0)) * prompts if every else 0
    if samples > MANY_SAMPLES:
        wanted = max(1, -(-epochs * prompts // (MANY_SAMPLES // 2)))
        return [f"max_train_epochs = {epochs} with samples every {every} epoch(s) x {prompts} prompts draws {samples} "
                f"samples (and saves {epochs // int(training.get('save_every_n_epochs') or 1)} checkpoints), each "
                f"processed and shown in the review; e.g. --set sample_every_n_epochs={wanted} (about "
                f"{MANY_SAMPLES // 2}), or fewer epochs"]
    return []


def _prompt_count(preset: ResolvedPreset, folders: list[Path]) -> int:
    name = preset.bespoke.get("prompts", "prompts-default.txt")
    path = next((folder / name for folder in folders if (folder / name).is_file()), None)
    return len(parse_prompt_file(path)) if path else 1


@dataclass
class ImportResult:
    """What `import_gui_config` wrote: the preset file, its tables, what was not taken, where it was checked,
    the warnings about its epochs and the optional trainer packages it needs."""

    path: Path
    name: str
    imported: Imported
    resolutions: list[int]
    warnings: list[str] = field(default_factory=list)
    packages: list[packages.TrainerPackage] = field(default_factory=list)


def import_gui_config(config_path: Path, *, out_dir: Path, name: str | None = None, force: bool = False,
                      overrides: tuple[str, ...] = ()) -> ImportResult:
    """Turn a kohya_ss GUI LoRA JSON into `out_dir/<name>.toml` (validated first; never overwrites another
    file unless `force`); `overrides` are `--set key=value` applied last."""
    config_path = Path(config_path)
    name = name or preset_name(config_path)
    if name in ("base",) or re.match(r"^(res-\d+|sweep-)", name) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UsageError(f"--name {name!r}: not usable as a preset name (base, res-R and sweep-* are reserved; "
                         "use letters, digits, - _ .)")
    target = Path(out_dir) / f"{name}.toml"
    if target.exists() and not force:
        raise UsageError(f"{target}: exists; choose another --name or pass --force to replace it")
    imported = map_config(read_gui_config(config_path), str(config_path))
    apply_overrides(imported, overrides)
    text = render_preset(imported, name=name, source=config_path.name)
    presets = validate_text(text, name)
    atomic_write_text(target, text)
    last = presets[-1]
    warnings = sample_warnings(last, _prompt_count(last, [Path(out_dir), PRESETS_DIR]))
    return ImportResult(target, name, imported, [p.resolution for p in presets], warnings,
                        packages.needed_by(last.training))
