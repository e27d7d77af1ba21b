"""What the real sd-scripts train_network.py (commit 48d368fa) refuses, with its own messages, for the fake.

Written from sd-scripts' source (library/config_util.py ConfigSanitizer, train_util.py verify_training_args,
prepare_dataset_args, BaseDataset.adjust_min_max_bucket_reso_by_steps, verify_bucket_reso_steps,
train_network.py train()) and ../shared/kohya/FACTS.md §2/§10, never from bespoke's validator: the fake must
fail where the real trainer fails so that a bespoke validator bug fails a test. No bespoke import, no
voluptuous (the fake runs in bespoke's venv): the schema is re-stated here with voluptuous' messages.

API (helper modules of the fake import these names):
    check_training(args) -> list[str]      flat training options after config file + CLI merge
    check_dataset(user_config, args) -> list[str]   the parsed dataset TOML + those options
Each returns the real trainer's error messages (the last line of its traceback), [] when fine.
`NO_DATA` is the message of the one "error" that exits 0.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

# --- voluptuous-style type checks (voluptuous uses isinstance: a bool is an int, an int is not a float) ----------

INT, FLOAT, BOOL, STR, DICT = int, float, bool, str, dict
NUMBER = (float, int)  # Any(float, int): voluptuous reports the first alternative ("expected float")
TWO_FLOATS = "two floats"  # face_crop_aug_range: ExactSequence([float, float])
RESOLUTION = "int or [int, int]"

SUBSET_ASCENDABLE = {
    "color_aug": BOOL, "face_crop_aug_range": TWO_FLOATS, "flip_aug": BOOL, "num_repeats": INT,
    "random_crop": BOOL, "shuffle_caption": BOOL, "keep_tokens": INT, "keep_tokens_separator": STR,
    "secondary_separator": STR, "caption_separator": STR, "enable_wildcard": BOOL, "token_warmup_min": INT,
    "token_warmup_step": NUMBER, "caption_prefix": STR, "caption_suffix": STR, "custom_attributes": DICT,
    "resize_interpolation": STR,
}
DROPOUT_ASCENDABLE = {"caption_dropout_every_n_epochs": INT, "caption_dropout_rate": NUMBER,
                      "caption_tag_dropout_rate": NUMBER}
DREAMBOOTH_ASCENDABLE = {"caption_extension": STR, "class_tokens": STR, "cache_info": BOOL}
DREAMBOOTH_DISTINCT = {"image_dir": STR, "is_reg": BOOL, "alpha_mask": BOOL}  # image_dir Required
FINETUNE_DISTINCT = {"metadata_file": STR, "image_dir": STR, "alpha_mask": BOOL}  # metadata_file Required
DATASET_ASCENDABLE = {
    "batch_size": INT, "bucket_no_upscale": BOOL, "bucket_reso_steps": INT, "enable_bucket": BOOL,
    "max_bucket_reso": INT, "min_bucket_reso": INT, "validation_seed": INT, "validation_split": FLOAT,
    "resolution": RESOLUTION, "network_multiplier": FLOAT, "resize_interpolation": STR,
}
# train_network.py: ConfigSanitizer(support_dreambooth=True, support_finetuning=True, masked_loss, dropout=True)
DB_SUBSET = {**SUBSET_ASCENDABLE, **DREAMBOOTH_DISTINCT, **DREAMBOOTH_ASCENDABLE, **DROPOUT_ASCENDABLE}
FT_SUBSET = {**SUBSET_ASCENDABLE, **FINETUNE_DISTINCT, **DROPOUT_ASCENDABLE}
DB_DATASET = {**DATASET_ASCENDABLE, **SUBSET_ASCENDABLE, **DREAMBOOTH_ASCENDABLE, **DROPOUT_ASCENDABLE}
FT_DATASET = {**DATASET_ASCENDABLE, **SUBSET_ASCENDABLE, **DROPOUT_ASCENDABLE}
GENERAL = {**DATASET_ASCENDABLE, **SUBSET_ASCENDABLE, **DREAMBOOTH_ASCENDABLE, **DROPOUT_ASCENDABLE}
# the parsed training options are checked too (sanitize_argparse_namespace; None values are skipped)
ARGPARSE = {**GENERAL, "debug_dataset": BOOL, "max_token_length": INT, "prior_loss_weight": NUMBER,
            "train_batch_size": INT, "dataset_repeats": INT}
ARGPARSE.pop("resolution")  # a tuple by then (prepare_dataset_args)
ARGPARSE.pop("face_crop_aug_range")

# train_util.IMAGE_EXTENSIONS (pillow_avif / jxl absent); glob is case-sensitive on Linux
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP")
NO_DATA = ("No data found. Please verify arguments (train_data_dir must be the parent of folders with images) / "
           "画像がありません。引数指定を確認してください（train_data_dirには画像があるフォルダではなく、"
           "画像があるフォルダの親フォルダを指定する必要があります）")
PERSISTENT_WORKERS = "ValueError: persistent_workers option needs num_workers > 0"
_INVALID = "voluptuous.error.MultipleInvalid: "


def _path(parts: list) -> str:
    return "data" + "".join(f"[{p!r}]" for p in parts)


def _type_error(kind, value, where: str, parts: list) -> str | None:
    """voluptuous' message for `value` against `kind`, or None when it fits."""
    if kind == TWO_FLOATS:
        if not isinstance(value, (list, tuple)):
            return f"expected float for {where} value @ {_path(parts)}"
        if len(value) != 2:
            return f"None for {where} value @ {_path(parts)}"
        return None if all(isinstance(v, float) for v in value) else f"expected float for {where} value @ {_path(parts)}"
    if kind == RESOLUTION:
        ok = isinstance(value, int) or (isinstance(value, (list, tuple)) and len(value) == 2
                                        and all(isinstance(v, int) for v in value))
        return None if ok else f"expected int for {where} value @ {_path(parts)}"
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, kinds):
        return None
    name = kinds[0].__name__
    return f"expected {name} for {where} value @ {_path(parts)}"


def _check_table(table, schema: dict, parts: list, required: tuple = (), skip: tuple = ()) -> list[str]:
    if not isinstance(table, dict):
        return [f"expected a dictionary for dictionary value @ {_path(parts)}"]
    errors = []
    for key, value in table.items():
        if key in skip:
            continue
        if key not in schema:
            errors.append(f"extra keys not allowed @ {_path(parts + [key])}")
            continue
        error = _type_error(schema[key], value, "dictionary", parts + [key])
        if error:
            errors.append(error)
    for key in required:
        if key not in table:
            errors.append(f"required key not provided @ {_path(parts + [key])}")
    return errors


def _check_dataset_table(dataset, parts: list) -> list[str]:
    if not isinstance(dataset, dict):
        return [f"expected a dictionary for dictionary value @ {_path(parts)}"]
    subsets = dataset.get("subsets", [])
    if not isinstance(subsets, list):
        return [f"expected a list for dictionary value @ {_path(parts + ['subsets'])}"]
    with_metadata = [isinstance(s, dict) and "metadata_file" in s for s in subsets]
    if all(with_metadata):
        dataset_schema, subset_schema, required = FT_DATASET, FT_SUBSET, ("metadata_file",)
    elif not any(with_metadata):
        dataset_schema, subset_schema, required = DB_DATASET, DB_SUBSET, ("image_dir",)
    else:
        return ["DreamBooth subset and fine tuning subset cannot be mixed in the same dataset. Please split them "
                "into separate datasets. / DreamBoothのサブセットとfine tuninのサブセットを同一のデータセットに"
                f"混在させることはできません。別々のデータセットに分割してください。 @ {_path(parts)}"]
    errors = _check_table(dataset, dataset_schema, parts, skip=("subsets",))
    for j, subset in enumerate(subsets):
        errors += _check_table(subset, subset_schema, parts + ["subsets", j], required)
    return errors


def schema_errors(user_config: dict) -> list[str]:
    """ConfigSanitizer.sanitize_user_config: voluptuous messages, data order."""
    errors = []
    for key, value in user_config.items():
        if key == "general":
            errors += _check_table(value, GENERAL, ["general"])
        elif key == "datasets":
            if not isinstance(value, list):
                errors.append(f"expected a list for dictionary value @ {_path(['datasets'])}")
                continue
            for i, dataset in enumerate(value):
                errors += _check_dataset_table(dataset, ["datasets", i])
        else:
            errors.append(f"extra keys not allowed @ {_path([key])}")
    return errors


def argparse_errors(args: dict) -> list[str]:
    """ConfigSanitizer.sanitize_argparse_namespace: the training options against the same types."""
    errors = []
    for key, value in args.items():
        if value is None or key not in ARGPARSE:
            continue
        error = _type_error(ARGPARSE[key], value, "object", [key])
        if error:
            errors.append(error)
    return errors


# --- training options (verify_training_args, prepare_dataset_args, set_seed, later asserts) -------------------

def early_training_errors(args: dict) -> list[str]:
    """What train() refuses before building the dataset."""
    errors = []
    if args.get("adaptive_noise_scale") is not None and args.get("noise_offset") is None:
        errors.append("ValueError: adaptive_noise_scale requires noise_offset / "
                      "adaptive_noise_scaleを使用するにはnoise_offsetが必要です")
    if args.get("scale_v_pred_loss_like_noise_pred") and not args.get("v_parameterization"):
        errors.append("ValueError: scale_v_pred_loss_like_noise_pred can be enabled only with v_parameterization / "
                      "scale_v_pred_loss_like_noise_predはv_parameterizationが有効なときのみ有効にできます")
    if args.get("v_pred_like_loss") and args.get("v_parameterization"):
        errors.append("ValueError: v_pred_like_loss cannot be enabled with v_parameterization / "
                      "v_pred_like_lossはv_parameterizationが有効なときには有効にできません")
    resolution = args.get("resolution")
    if resolution is not None and not isinstance(resolution, str):
        errors.append(f"AttributeError: '{type(resolution).__name__}' object has no attribute 'split'")
    seed = args.get("seed")
    if isinstance(seed, int) and not 0 <= seed < 2**32:
        errors.append("ValueError: Seed must be between 0 and 2**32 - 1")
    return errors


def _items(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _trains_something(args: dict) -> bool:
    """LoRANetwork.prepare_optimizer_params: the text encoder takes text_encoder_lr (its first item), the U-Net
    unet_lr, each falling back to learning_rate; a group whose rate is 0 or None is skipped."""
    default = args.get("learning_rate", 2e-6)
    te_lr = args.get("text_encoder_lr")
    te_lr = (te_lr[0] if te_lr else None) if isinstance(te_lr, list) else te_lr
    te_lr = default if te_lr is None else te_lr
    unet_lr = default if args.get("unet_lr") is None else args.get("unet_lr")
    text_encoder = not args.get("network_train_unet_only") and te_lr not in (0, None)
    unet = not args.get("network_train_text_encoder_only") and unet_lr not in (0, None)
    return text_encoder or unet


def accelerator_errors(args: dict) -> list[str]:
    """What `prepare_accelerator` refuses (after the dataset build, before the model load)."""
    precision = args.get("mixed_precision") or "no"
    if precision not in ("no", "fp8", "fp16", "bf16"):
        return [f"ValueError: Unknown mixed_precision mode: {precision}. Choose between ['no', 'fp8', 'fp16', 'bf16']"]
    return []


def late_training_errors(args: dict) -> list[str]:
    """What the trainer refuses only after loading the model (minutes on a real GPU box)."""
    errors = []
    precision = args.get("mixed_precision") or "no"
    for item in _items(args.get("network_args")):  # train_network.py: key, value = net_arg.split("=", 1)
        if "=" not in str(item):
            errors.append("ValueError: not enough values to unpack (expected 2, got 1)")
    weights = args.get("network_weights")
    if weights and not os.path.isfile(weights):  # LoRANetwork.load_weights, relative to the working directory
        errors.append(f'FileNotFoundError: No such file or directory: "{weights}"' if weights.endswith(".safetensors")
                      else f"FileNotFoundError: [Errno 2] No such file or directory: '{weights}'")
    if args.get("network_dim") == 0 or not _trains_something(args):
        # networks.lora: a rank-0 LoRA has no parameters; a learning rate of 0 skips its group ("NO LR skipping!")
        errors.append("ValueError: optimizer got an empty parameter list")
    for item in _items(args.get("optimizer_args")):  # train_util.get_optimizer: key, value = arg.split("=")
        count = str(item).count("=")
        if count != 1:
            errors.append("ValueError: not enough values to unpack (expected 2, got 1)" if count == 0 else
                          "ValueError: too many values to unpack (expected 2)")
    if args.get("persistent_data_loader_workers") and args.get("max_data_loader_n_workers", 8) == 0:
        errors.append(PERSISTENT_WORKERS)
    if args.get("full_fp16") and precision != "fp16":
        errors.append("AssertionError: full_fp16 requires mixed precision='fp16' / "
                      "full_fp16を使う場合はmixed_precision='fp16'を指定してください。")
    if args.get("full_bf16") and precision != "bf16":
        errors.append("AssertionError: full_bf16 requires mixed precision='bf16' / "
                      "full_bf16を使う場合はmixed_precision='bf16'を指定してください。")
    return errors


def check_training(args: dict) -> list[str]:
    """The real trainer's error messages for these flat training options, in its order (before the dataset,
    at the accelerator, after the model load). The options' voluptuous types are checked while the dataset
    is built, so they are in check_dataset's answer, as in the real trainer."""
    return early_training_errors(args) + accelerator_errors(args) + late_training_errors(args)


# --- datasets (blueprint fallbacks, BaseDataset asserts, assert_extra_args) --------------------------------------

_DATASET_DEFAULTS = {"batch_size": 1, "enable_bucket": False, "min_bucket_reso": 256, "max_bucket_reso": 1024,
                     "bucket_reso_steps": 64, "resolution": None, "caption_extension": ".caption", "num_repeats": 1}
_ARG_NAMES = {"train_batch_size": "batch_size", "dataset_repeats": "num_repeats"}


def _pair(value):
    if value is None:
        return None
    if isinstance(value, str):  # the training option, "N" or "W,H"
        sizes = [int(v) for v in value.split(",")]
        return (sizes[0], sizes[-1])
    if isinstance(value, (list, tuple)):
        return (value[0], value[1])
    return (value, value)


def resolved_datasets(user_config: dict, args: dict) -> list[tuple[dict, list[dict]]]:
    """Each dataset's values and its subsets' values after the fallbacks (first non-None wins:
    subset -> dataset -> [general] -> training option -> default)."""
    fallback = {_ARG_NAMES.get(k, k): v for k, v in args.items() if v is not None}
    general = user_config.get("general", {}) or {}
    out = []
    for dataset in user_config.get("datasets", []) or []:
        layers = [{k: v for k, v in dataset.items() if k != "subsets"}, general, fallback, _DATASET_DEFAULTS]

        def pick(key, layers=layers):
            return next((layer[key] for layer in layers if layer.get(key) is not None), None)

        values = {key: pick(key) for key in set(_DATASET_DEFAULTS) | set(layers[0]) | set(general)}
        values["resolution"] = _pair(values["resolution"])
        subsets = [{key: next((layer[key] for layer in [subset] + layers if layer.get(key) is not None), None)
                    for key in set(subset) | set(values)} for subset in dataset.get("subsets", [])]
        out.append((values, subsets))
    return out


def _bucket_errors(values: dict) -> list[str]:
    resolution = values["resolution"]
    if resolution is None:
        return ["AssertionError: resolution is required / resolution（解像度）指定は必須です"]
    if not values["enable_bucket"]:
        return []
    steps, low, high = values["bucket_reso_steps"], values["min_bucket_reso"], values["max_bucket_reso"]
    if low % steps:
        low -= low % steps  # adjusted with a warning
    if high % steps:
        high += steps - high % steps
    if min(resolution) < low:
        return ["AssertionError: min_bucket_reso must be equal or less than resolution / "
                "min_bucket_resoは最小解像度より大きくできません。解像度を大きくするかmin_bucket_resoを小さくしてください"]
    if max(resolution) > high:
        return ["AssertionError: max_bucket_reso must be equal or greater than resolution / "
                "max_bucket_resoは最大解像度より小さくできません。解像度を小さくするかmin_bucket_resoを大きくしてください"]
    return []


def images_of(image_dir) -> list[str]:
    """train_util.glob_images: the files directly in the folder with one of IMAGE_EXTENSIONS."""
    if not image_dir or not os.path.isdir(image_dir):
        return []
    return sorted(os.path.join(image_dir, name) for name in os.listdir(image_dir)
                  if os.path.splitext(name)[1] in IMAGE_EXTENSIONS)


def split_images(paths: list[str], values: dict, seed) -> tuple[list, list]:
    """train_util.split_train_val: a dataset's images shuffled with its validation_seed (else the training
    seed) and split by validation_split, training images first; (training, validation) as Paths."""
    split = values.get("validation_split") or 0.0
    if not 0.0 < split <= 1.0:
        return [Path(p) for p in paths], []
    paths = sorted(paths)
    random.Random(values.get("validation_seed") if values.get("validation_seed") is not None else seed).shuffle(paths)
    cut = math.ceil(len(paths) * (1 - split))
    return sorted(Path(p) for p in paths[:cut]), sorted(Path(p) for p in paths[cut:])


def image_count(user_config: dict, args: dict) -> int:
    """Training images x repeats over all subsets (0 -> "No data found"; held-out images do not train)."""
    return sum(len(split_images(images_of(s.get("image_dir")), values, args.get("seed"))[0])
               * int(s.get("num_repeats") or 0)
               for values, subsets in resolved_datasets(user_config, args) for s in subsets)


def check_dataset(user_config: dict, args: dict) -> list[str]:
    """The real trainer's messages for this dataset TOML with these training options, in its order:
    schema, training-option types, dataset build (resolution, buckets), "No data found" (exit 0),
    cache_latents vs augmentation, the SD 1.x bucket step assertion."""
    errors = [_INVALID + e for e in schema_errors(user_config)]
    if errors:
        return errors[:1]  # MultipleInvalid shows the first
    errors = [_INVALID + e for e in argparse_errors(args)]
    if errors:
        return errors[:1]
    datasets = resolved_datasets(user_config, args)
    for values, _subsets in datasets:
        errors += _bucket_errors(values)
        if errors:
            return errors
        if values["batch_size"] == 0:  # BaseDataset.make_buckets: ceil(len(bucket) / batch_size)
            return ["ZeroDivisionError: division by zero"]
    if image_count(user_config, args) == 0:
        return [NO_DATA]
    if args.get("cache_latents") or args.get("cache_latents_to_disk"):
        if any(s.get("color_aug") or s.get("random_crop") for _v, subsets in datasets for s in subsets):
            return ["AssertionError: when caching latents, either color_aug or random_crop cannot be used / "
                    "latentをキャッシュするときはcolor_augとrandom_cropは使えません"]
    for values, _subsets in datasets:
        steps = values["bucket_reso_steps"] if values["enable_bucket"] else None
        if steps is not None and steps % 64:
            return [f"AssertionError: bucket_reso_steps is {steps}. it must be divisible by 64.\n"
                    f"bucket_reso_stepsが{steps}です。64で割り切れる必要があります"]
    return []
