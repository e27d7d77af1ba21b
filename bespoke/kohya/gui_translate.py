"""What the kohya_ss GUI itself makes of a saved LoRA config, for an SD 1.x LoRA: ported from bmaltais/kohya_ss
at GUI_COMMIT, so that `bespoke import kohya-gui` trains what the GUI would have trained.

The GUI loads a config with `update_my_data` (kohya_gui/common_gui.py: old field names, numbers saved as text);
a field the file lacks keeps the value the GUI shows, a fresh GUI's widget default (GUI_DEFAULTS). `train_model`
(kohya_gui/lora_gui.py) then writes the training TOML: LoRA_type picks network_module and builds network_args,
noise_offset_type "Multires" passes multires_noise_* and drops noise_offset / adaptive_noise_scale (only
"Original" passes those), text_encoder_lr / unet_lr of 0 become network_train_*_only, lr_warmup (a % of the
steps) becomes a fraction, the attention menu becomes xformers / sdpa, additional_parameters are appended to
the command line; any value "", False, None or 0 is left out, so sd-scripts' default applies. dynamo_backend,
the process counts and threads go to `accelerate launch` instead (class_accelerate_launch.py).

One deliberate difference: a config without max_train_steps counts in epochs here (a fresh GUI's box shows
1600, which would stop such a run after 1600 steps whatever `epoch` says).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bespoke.errors import ConfigError
from bespoke.kohya.options import train_network_options

GUI_COMMIT = "45088f04"

# A fresh GUI's value for each field it passes to sd-scripts (lora_gui.py lora_tab, class_basic_training.py,
# class_advanced_training.py, class_source_model.py, class_sample_images.py, class_accelerate_launch.py).
GUI_DEFAULTS: dict[str, object] = {
    "LoRA_type": "Standard", "LyCORIS_preset": "full", "network_dim": 8, "network_alpha": 1, "conv_dim": 1,
    "conv_alpha": 1, "factor": -1, "unit": 1, "constrain": 0.0, "train_on_input": True, "network_dropout": 0,
    "rank_dropout": 0, "module_dropout": 0.0, "learning_rate": 0.0001, "text_encoder_lr": 0.0001,
    "unet_lr": 0.0001, "lr_scheduler": "cosine", "lr_warmup": 10, "lr_warmup_steps": 0,
    "lr_scheduler_num_cycles": 1, "lr_scheduler_power": 1.0, "lr_scheduler_type": "", "optimizer": "AdamW",
    "max_grad_norm": 1.0, "train_batch_size": 1, "epoch": 1, "max_train_epochs": 0, "max_train_steps": 0,
    "save_every_n_epochs": 1, "seed": 0, "cache_latents": True, "max_resolution": "512,512",
    "gradient_accumulation_steps": 1, "prior_loss_weight": 1.0, "loss_type": "l2", "huber_schedule": "snr",
    "huber_c": 0.1, "huber_scale": 1.0, "clip_skip": 1, "max_token_length": 75, "xformers": "xformers",
    "max_timestep": 1000, "noise_offset_type": "Original", "multires_noise_discount": 0.3,
    "bucket_reso_steps": 64, "enable_bucket": True, "min_bucket_reso": 256, "max_bucket_reso": 2048,
    "max_data_loader_n_workers": 0, "sample_sampler": "euler_a", "save_model_as": "safetensors",
    "save_precision": "fp16", "mixed_precision": "fp16", "output_name": "last", "caption_extension": ".txt",
    "dynamo_backend": "no", "dynamo_mode": "default", "num_processes": 1, "num_machines": 1,
    **dict.fromkeys(("use_tucker", "use_scalar", "use_cp", "bypass_mode", "dora_wd", "rank_dropout_scale",
                     "rescaled", "train_norm", "decompose_both"), False),
}
# Fields the GUI's train_model writes to the training TOML as they are (value of the field = value of the option).
PASSED = (
    "async_upload", "bucket_no_upscale", "bucket_reso_steps", "cache_latents", "cache_latents_to_disk",
    "caption_dropout_every_n_epochs", "caption_dropout_rate", "caption_extension", "clip_skip", "color_aug",
    "dataset_config", "debiased_estimation_loss", "dim_from_weights", "enable_bucket", "flip_aug", "fp8_base",
    "full_bf16", "full_fp16", "gradient_accumulation_steps", "gradient_checkpointing", "highvram", "huber_c",
    "huber_scale", "huber_schedule", "huggingface_repo_id", "huggingface_token", "huggingface_repo_type",
    "huggingface_repo_visibility", "huggingface_path_in_repo", "ip_noise_gamma", "ip_noise_gamma_random_strength",
    "keep_tokens", "learning_rate", "logging_dir", "log_config", "log_tracker_name", "log_tracker_config",
    "loss_type", "lr_scheduler", "lr_scheduler_num_cycles", "lr_scheduler_power", "lr_scheduler_type",
    "masked_loss", "max_bucket_reso", "max_grad_norm", "max_timestep", "max_token_length", "mem_eff_attn",
    "metadata_author", "metadata_description", "metadata_license", "metadata_tags", "metadata_title",
    "min_bucket_reso", "min_snr_gamma", "min_timestep", "mixed_precision", "network_alpha", "network_dim",
    "network_dropout", "network_weights", "output_dir", "output_name", "persistent_data_loader_workers",
    "pretrained_model_name_or_path", "prior_loss_weight", "random_crop", "reg_data_dir", "resume",
    "resume_from_huggingface", "sample_every_n_epochs", "sample_every_n_steps", "sample_prompts", "sample_sampler",
    "save_every_n_epochs", "save_every_n_steps", "save_last_n_steps", "save_last_n_steps_state",
    "save_last_n_epochs", "save_last_n_epochs_state", "save_model_as", "save_precision", "save_state",
    "save_state_on_train_end", "save_state_to_huggingface", "scale_v_pred_loss_like_noise_pred",
    "scale_weight_norms", "seed", "shuffle_caption", "skip_cache_check", "train_batch_size", "train_data_dir",
    "train_inpainting", "training_comment", "log_with", "v2", "v_parameterization", "v_pred_like_loss", "vae",
    "vae_batch_size", "wandb_api_key", "wandb_run_name", "weighted_captions", "max_data_loader_n_workers",
)
# What the GUI hands to `accelerate launch`, not to the trainer.
LAUNCH = ("dynamo_backend", "dynamo_mode", "dynamo_use_fullgraph", "dynamo_use_dynamic", "num_processes",
          "num_machines", "multi_gpu", "gpu_ids", "main_process_port", "num_cpu_threads_per_process",
          "extra_accelerate_launch_args")
# LoRA_type -> (LyCORIS algo, the network_args the GUI writes for it); the GUI field of an arg is in _ARG_FIELD.
LYCORIS: dict[str, tuple[str, tuple[str, ...]]] = {
    "LyCORIS/BOFT": ("boft", ("preset", "conv_dim", "conv_alpha", "module_dropout", "use_tucker", "rank_dropout",
                              "rank_dropout_scale", "train_norm")),
    "LyCORIS/Diag-OFT": ("diag-oft", ("preset", "conv_dim", "conv_alpha", "module_dropout", "use_tucker",
                                      "rank_dropout", "rank_dropout_scale", "constraint", "rescaled", "train_norm")),
    "LyCORIS/DyLoRA": ("dylora", ("preset", "conv_dim", "conv_alpha", "use_tucker", "block_size", "rank_dropout",
                                  "module_dropout", "train_norm")),
    "LyCORIS/GLoRA": ("glora", ("preset", "conv_dim", "conv_alpha", "use_tucker", "rank_dropout", "module_dropout",
                                "rank_dropout_scale", "train_norm")),
    "LyCORIS/iA3": ("ia3", ("preset", "conv_dim", "conv_alpha", "train_on_input")),
    "LyCORIS/LoCon": ("locon", ("preset", "conv_dim", "conv_alpha", "use_tucker", "rank_dropout", "bypass_mode",
                                "dora_wd", "module_dropout", "use_scalar", "rank_dropout_scale", "train_norm")),
    "LyCORIS/LoHa": ("loha", ("preset", "conv_dim", "conv_alpha", "use_tucker", "rank_dropout", "bypass_mode",
                              "dora_wd", "module_dropout", "use_scalar", "rank_dropout_scale", "train_norm")),
    "LyCORIS/LoKr": ("lokr", ("preset", "conv_dim", "conv_alpha", "use_tucker", "rank_dropout", "bypass_mode",
                              "dora_wd", "module_dropout", "factor", "use_cp", "use_scalar", "decompose_both",
                              "rank_dropout_scale", "train_norm")),
    "LyCORIS/Native Fine-Tuning": ("full", ("preset", "rank_dropout", "module_dropout", "rank_dropout_scale",
                                            "train_norm")),
}
_ARG_FIELD = {"preset": "LyCORIS_preset", "constraint": "constrain", "block_size": "unit"}
LYCORIS_PRESETS = ("attn-mlp", "attn-only", "full", "full-lin", "unet-transformer-only", "unet-convblock-only")
# sd-scripts' own networks: LoRA_type -> (network_module, the fields passed as network_args when set)
_BLOCKS = ("down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold", "block_dims",
           "block_alphas", "conv_block_dims", "conv_block_alphas", "rank_dropout", "module_dropout")
KOHYA: dict[str, tuple[str, tuple[str, ...]]] = {
    "Standard": ("networks.lora", _BLOCKS),
    "Kohya LoCon": ("networks.lora", _BLOCKS),
    "LoRA-FA": ("networks.lora_fa", _BLOCKS),
    "Kohya DyLoRA": ("networks.dylora", ("conv_dim", "conv_alpha", *_BLOCKS, "unit")),
}
_LORAPLUS = ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio")


class _Fields(dict):
    """The loaded config; remembers which fields were read (the others are ones the GUI does not pass)."""

    def __init__(self, data: dict):
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str):
        self.read.add(key)
        value = super().get(key)
        return GUI_DEFAULTS.get(key) if value is None else value


def _number(value: object, default: float, kind: type = float):
    """update_my_data's conversion of a field saved as text: int("") etc. fall back to `default`."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        return kind(default)


def load_fields(raw: dict) -> tuple[_Fields, list[str]]:
    """The config as the GUI holds it after loading it (update_my_data), and what that renamed."""
    data, notes = dict(raw), []
    if "optimizer" not in data:
        data["optimizer"] = "AdamW8bit" if data.get("use_8bit_adam") else "AdamW"
        if "use_8bit_adam" in raw:
            notes.append(f"use_8bit_adam = {raw['use_8bit_adam']!r} -> optimizer_type {data['optimizer']!r}")
    ints = {key: 0 for key in ("clip_skip", "epoch", "gradient_accumulation_steps", "keep_tokens", "lr_warmup",
                               "max_data_loader_n_workers", "max_train_epochs", "save_every_n_epochs", "seed",
                               "max_train_steps", "caption_dropout_every_n_epochs")}
    ints.update(lr_scheduler_num_cycles=1, max_token_length=75)
    for key, fallback in ints.items():
        if data.get(key) is not None:
            data[key] = _number(data[key], fallback, int)  # int("64.0") fails in the GUI too: the fallback
    for key in ("adaptive_noise_scale", "noise_offset", "learning_rate", "text_encoder_lr", "unet_lr",
                "lr_scheduler_power"):
        if data.get(key) is not None:
            data[key] = _number(data[key], 1.0 if key == "lr_scheduler_power" else 0.0)
    if data.get("LoRA_type") == "LoCon":
        data["LoRA_type"] = "LyCORIS/LoCon"
        notes.append("LoRA_type \"LoCon\" is the GUI's old name of \"LyCORIS/LoCon\"")
    if isinstance(data.get("xformers"), bool):
        data["xformers"] = "xformers" if data["xformers"] else "none"
    if data.pop("use_wandb", None) == "True":
        data["log_with"] = "wandb"
        notes.append("use_wandb = \"True\" -> log_with \"wandb\"")
    if "lora_network_weights" in data:
        data["network_weights"] = data.pop("lora_network_weights")
    fields = _Fields(data)
    fields.read |= {"use_8bit_adam", "use_wandb", "lora_network_weights"} & set(raw)
    return fields, notes


def off(value: object) -> bool:
    """The GUI's filter: "", False, None and 0 (0 == False in Python) are not written; neither is an empty list."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9.eE+-]+\s*", value):
        try:
            value = float(value)
        except ValueError:
            pass
    return value in ("", False, None) or value == []


def _arg(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _network(fields: _Fields) -> tuple[str, list[str], str]:
    """LoRA_type -> (network_module, network_args, what it became), as train_model builds them."""
    kind = str(fields["LoRA_type"])
    if kind in LYCORIS:
        algo, names = LYCORIS[kind]
        preset = str(fields["LyCORIS_preset"])
        if preset not in LYCORIS_PRESETS:
            raise ConfigError(f"LyCORIS_preset {preset!r} is a preset file on the machine the GUI ran on; use one "
                              f"of {', '.join(LYCORIS_PRESETS)} (edit the config) or copy the file here and "
                              f"--set network_args with preset=<its path>")
        text = " ".join(f"{name}={_arg(fields[_ARG_FIELD.get(name, name)])}" for name in dict.fromkeys(names))
        module, text = "lycoris.kohya", f"{text} algo={algo}"
    else:
        module, names = KOHYA[kind]
        text = f"conv_dim={_arg(fields['conv_dim'])} conv_alpha={_arg(fields['conv_alpha'])}" \
            if kind == "Kohya LoCon" else ""
        text += "".join(f" {name}={_arg(fields[name])}" for name in names if not off(fields[name]))
    text += "".join(f" {name}={_arg(fields[name])}" for name in _LORAPLUS if not off(fields[name]))
    args = text.replace('"', "").split()
    what = f"LoRA_type {kind!r} -> network_module {module!r}" + (f", network_args {' '.join(args)}" if args else "")
    return module, args, what


def _noise(fields: _Fields) -> tuple[dict, str | None]:
    kind = str(fields["noise_offset_type"])
    original, multires = kind == "Original", kind == "Multires"
    values = {"noise_offset": fields["noise_offset"] if original else None,
              "adaptive_noise_scale": fields["adaptive_noise_scale"] if original else None,
              "noise_offset_random_strength": fields["noise_offset_random_strength"] if original else None,
              "multires_noise_iterations": fields["multires_noise_iterations"] if multires else None,
              "multires_noise_discount": fields["multires_noise_discount"] if multires else None}
    dropped = [k for k in ("noise_offset", "adaptive_noise_scale") if not original and not off(fields[k])]
    note = (f"noise_offset_type {kind!r}: {' and '.join(dropped)} not passed (the GUI passes them only with "
            f"\"Original\")") if dropped else None
    return values, note


def _rates(fields: _Fields) -> tuple[dict, str | None]:
    """The learning rates as train_model passes them (resolve_network_train_flags)."""
    te, unet, base = (float(fields[k] or 0) for k in ("text_encoder_lr", "unet_lr", "learning_rate"))
    if te == unet == base == 0:
        raise ConfigError("learning_rate, text_encoder_lr and unet_lr are all 0: the GUI refuses to train it "
                          "(\"Please input learning rate values.\"); --set learning_rate=1e-4")
    values = {"learning_rate": base, "text_encoder_lr": te if te > 0 else None, "unet_lr": unet or None,
              "network_train_unet_only": te == 0 and unet != 0, "network_train_text_encoder_only": te != 0 and unet == 0}
    only = "network_train_unet_only" if values["network_train_unet_only"] else \
        "network_train_text_encoder_only" if values["network_train_text_encoder_only"] else None
    return values, (f"{'text_encoder_lr' if te == 0 else 'unet_lr'} = 0 -> {only} = true" if only else None)


def _warmup(fields: _Fields) -> tuple[object, str | None]:
    """resolve_lr_warmup_steps: absolute steps win, else the % of the steps as a fraction (sd-scripts takes a
    float below 1 as a share of the total steps)."""
    steps, percent = _number(fields["lr_warmup_steps"], 0.0), _number(fields["lr_warmup"], 0.0)
    if steps > 0:
        return int(steps), None
    if percent:
        return percent / 100, f"lr_warmup = {fields['lr_warmup']}% of the steps -> lr_warmup_steps = {percent / 100:g}"
    return 0, None


def _split(text: object) -> list[str]:
    """optimizer_args / lr_scheduler_args / network_args: the GUI removes quotes and splits on spaces."""
    return str(text or "").replace('"', "").split()


def _epochs(fields: _Fields, notes: list[str]) -> int | None:
    epochs, steps = int(fields["max_train_epochs"] or 0), int(fields["max_train_steps"] or 0)
    if epochs:
        return epochs
    if steps:
        notes.append(f"max_train_steps = {steps}: the GUI stops after {steps} steps; bespoke counts epochs "
                     f"(max_train_epochs = epoch = {fields['epoch']}), so the run may be longer or shorter")
    return int(fields["epoch"] or 0) or None


def _extra(text: object) -> dict:
    """additional_parameters as train_network.py's parser reads them (the GUI appends them to its command line,
    quotes removed, split on spaces): {option: value, or a list for a list option, True for a flag}."""
    options = train_network_options()
    values: dict[str, list[str]] = {}
    current = None
    for token in _split(text):
        if token.startswith("--"):
            name, equals, value = token[2:].partition("=")
            current = name.replace("-", "_")
            if current not in options:
                raise ConfigError(f"additional_parameters: --{name} is not a train_network.py option (the trainer "
                                  f"would stop: 'unrecognized arguments'); remove it from the config")
            values[current] = [value] if equals else []
        elif current is None:
            raise ConfigError(f"additional_parameters: {token!r} comes before any --option")
        else:
            values[current].append(token)
    out: dict[str, object] = {}
    for dest, items in values.items():
        option = options[dest]
        if option.store_true:
            out[dest] = not option.default if isinstance(option.default, bool) else True
        elif option.nargs == "*":
            out[dest] = items
        elif len(items) == 1:
            out[dest] = items[0]
        else:
            raise ConfigError(f"additional_parameters: --{dest} takes one value, got {len(items)}: {items}")
    return out


_FAMILIES = (  # (field, "a"/"an" + model family, the GUI's LoRA script for it)
    ("sdxl", "an SDXL", "sdxl_train_network.py"), ("flux1_checkbox", "a FLUX.1", "flux_train_network.py"),
    ("sd3_checkbox", "an SD3", "sd3_train_network.py"),
    ("hunyuan_image_checkbox", "a HunyuanImage-2.1", "hunyuan_image_train_network.py"),
    ("anima_checkbox", "an Anima", "anima_train_network.py"), ("lumina_checkbox", "a Lumina", "lumina_train_network.py"),
)
_FAMILY_TYPES = {"Flux1": 1, "Flux1 OFT": 1, "HunyuanImage-2.1": 3, "Anima": 4, "Lumina": 5}
_OTHER_TABS = (  # (fields only that tab saves, what it is, its scripts SD 1.x / SDXL, what it trains)
    (("token_string", "init_word", "num_vectors_per_token"), "Textual Inversion",
     "train_textual_inversion.py / sdxl_train_textual_inversion.py", "a new token embedding"),
    (("train_dir", "image_folder", "caption_metadata_filename", "latent_metadata_filename"), "fine-tuning",
     "fine_tune.py / sdxl_train.py", "the whole model from a metadata file"),
)
SD1 = ("bespoke trains SD 1.x LoRAs (train_network.py on an SD 1.5 model; its presets, 64-512 px buckets and "
       "24 px pipeline are made for SD 1.5)")


def refusal(raw: dict) -> str | None:
    """Why bespoke cannot train this GUI config as an SD 1.x LoRA (None when it can): another tab's config
    (DreamBooth, fine-tuning, Textual Inversion), another model family, or no training config at all."""
    lora = "LoRA_type" in raw or "network_dim" in raw
    sdxl = " on an SDXL model" if raw.get("sdxl") is True or raw.get("sdxl_checkbox") is True else ""
    for keys, kind, scripts, trains in _OTHER_TABS:
        if not lora and any(k in raw for k in keys):
            return (f"a {kind} config (the kohya_ss GUI runs {scripts} for it){sdxl}: it trains {trains}, not a "
                    f"LoRA; {SD1}: import a LoRA config (the GUI's LoRA tab, Save config)")
    if not lora:
        if not any(k in raw for k in ("learning_rate", "optimizer", "train_batch_size", "max_resolution")):
            return ("not a kohya_ss GUI training config (no LoRA_type, network_dim, learning_rate, optimizer, ...); "
                    "export one from the GUI's LoRA tab (Save config)")
        return (f"a DreamBooth config (no LoRA_type or network_dim: the kohya_ss GUI runs train_db.py / sdxl_train.py "
                f"for it){sdxl}: it trains the whole model, not a LoRA; {SD1}: import a LoRA config")
    index = _FAMILY_TYPES.get(str(raw.get("LoRA_type")))
    for position, (key, family, script) in enumerate(_FAMILIES):
        if raw.get(key) is True or index == position:
            why = f"{key} = true" if raw.get(key) is True else f"LoRA_type {raw['LoRA_type']!r}"
            return (f"{family} LoRA config: {why} makes the kohya_ss GUI run {script} on {family} model, and its "
                    f"settings are tuned for that model; {SD1}: start from an SD 1.5 preset (`bespoke presets`) or "
                    f"an sd15 GUI preset")
    if raw.get("v2") is True:
        return (f"an SD 2.x LoRA config: v2 = true makes train_network.py load an SD 2 model (another text encoder "
                f"and size); {SD1}")
    return None


def _refuse_settings(fields: _Fields) -> None:
    """What the GUI's train_model itself refuses for an SD 1.x LoRA."""
    kind = str(fields["LoRA_type"])
    if kind in ("Kohya LoHa", "Kohya LoKr"):
        raise ConfigError(f"LoRA_type {kind!r} (sd-scripts' networks.loha / networks.lokr) needs an SDXL or Anima "
                          f"model: the GUI refuses it for SD 1.x; choose LyCORIS/{kind.split()[1]} in the GUI")
    if kind not in LYCORIS and kind not in KOHYA:
        raise ConfigError(f"LoRA_type {kind!r} is not a LoRA type of the kohya_ss GUI ({GUI_COMMIT}): "
                          f"{', '.join([*KOHYA, *LYCORIS])}")
    for key in ("optimizer_args", "lr_scheduler_args"):
        if not re.match(r"^(\S+=\S+)( \S+=\S+)*$|^$", str(fields[key] or "")):
            raise ConfigError(f"{key} {fields[key]!r} is not key=value pairs separated by one space: the GUI "
                              f"refuses to train it (validate_args_setting)")
    if not 0 <= float(fields["noise_offset"] or 0) <= 1:
        raise ConfigError(f"noise_offset = {fields['noise_offset']}: the GUI refuses values outside 0..1")


@dataclass
class GuiTraining:
    """What the GUI would run for a config: the trainer's options, the accelerate launch settings, and how."""

    options: dict  # train_network.py options the GUI passes (its left-out values removed)
    controlled: set[str]  # every option the GUI decides: passed, or left to sd-scripts' default
    launch: dict = field(default_factory=dict)  # accelerate launch settings of the file
    notes: list[str] = field(default_factory=list)  # the GUI's translations, in words
    ignored: list[str] = field(default_factory=list)  # fields the GUI does not pass for an SD 1.x LoRA
    command_line: set[str] = field(default_factory=set)  # options given in additional_parameters


def translate(raw: dict) -> GuiTraining:
    """The train_network.py options the kohya_ss GUI passes for `raw`, an SD 1.x LoRA config (see refusal)."""
    fields, notes = load_fields(raw)
    fields.read |= {key for key, _, _ in _FAMILIES}  # refusal() has decided on them
    _refuse_settings(fields)
    module, network_args, network = _network(fields)
    notes.insert(0, network)
    noise, noise_note = _noise(fields)
    rates, rates_note = _rates(fields)
    warmup, warmup_note = _warmup(fields)
    menu = str(fields["xformers"])
    options = {key: fields[key] for key in PASSED}
    options.update(noise, **rates, network_module=module, network_args=network_args, lr_warmup_steps=warmup,
                   optimizer_type=fields["optimizer"], resolution=fields["max_resolution"],
                   optimizer_args=_split(fields["optimizer_args"]), lr_scheduler_args=_split(fields["lr_scheduler_args"]),
                   xformers=menu == "xformers", sdpa=menu == "sdpa", max_train_epochs=_epochs(fields, notes))
    extra = _extra(fields["additional_parameters"])
    options.update(extra)  # the command line wins over the TOML
    notes += [n for n in (noise_note, rates_note, warmup_note) if n]
    if extra:
        notes.append("additional_parameters -> " + ", ".join(f"{k} = {v!r}" for k, v in extra.items()))
    kept = {key: value for key, value in options.items() if not off(value)}
    kept["max_data_loader_n_workers"] = int(fields["max_data_loader_n_workers"])
    launch = {key: raw[key] for key in LAUNCH if key in raw and not off(raw[key])}
    ignored = sorted(key for key in raw if key not in fields.read and key not in LAUNCH)
    return GuiTraining(kept, set(options), launch, notes, ignored, set(extra))
