"""The rules sd-scripts enforces across keys and files, checked before anything runs.

A key-and-type check is not enough: these configs pass one and still fail in the trainer, some only after
minutes of model loading on a paid GPU (../shared/kohya/FACTS.md §10, sd-scripts 48d368fa):
- SD 1.x asserts `bucket_reso_steps % 64 == 0` for every dataset that buckets (`assert_extra_args`);
- `min_bucket_reso <= resolution <= max_bucket_reso` when bucketing (`adjust_min_max_bucket_reso_by_steps`);
- `persistent_data_loader_workers` needs `max_data_loader_n_workers > 0` (torch DataLoader, after the load);
- an `image_dir` with no images, or none at all: "No data found" and exit 0 with nothing trained;
- a training-TOML value the dataset sanitizer checks with voluptuous (`validation_split` must be a float);
- `verify_training_args` (adaptive_noise_scale needs noise_offset, ...), full_fp16/bf16 and fp8 precision asserts;
- values that make no sense (`max_train_epochs = -3`, `network_dim = 0`, a seed numpy refuses, ...);
- files the trainer opens late (`network_weights`) and captions it would silently not find.

Each error is one line: the file, the key, and the fix as a `--set key=value`.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from pathlib import Path

from bespoke.errors import ConfigError
from bespoke.kohya.options import dataset_keys

# sd-scripts' library/train_util.py IMAGE_EXTENSIONS (glob is case-sensitive: ".Png" is not an image to it)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP")
# train_network.py argparse defaults that a dataset falls back to (DreamBoothDatasetParams has the same ones)
ARGPARSE_DATASET_DEFAULTS = {"enable_bucket": False, "min_bucket_reso": 256, "max_bucket_reso": 1024,
                             "bucket_reso_steps": 64, "batch_size": 1, "caption_extension": ".caption",
                             "num_repeats": 1}
# training option -> dataset key it stands in for (config_util ARGPARSE_OPTNAME_TO_CONFIG_OPTNAME)
_ARGPARSE_TO_DATASET = {"train_batch_size": "batch_size", "dataset_repeats": "num_repeats"}
SD1_BUCKET_STEP = 64  # train_network.py assert_extra_args: verify_bucket_reso_steps(64)


def _positive(value) -> bool:
    return value > 0


def _not_negative(value) -> bool:
    return value >= 0


def _unit(value) -> bool:
    return 0 <= value <= 1


def _below_one(value) -> bool:
    return 0 <= value < 1


# key -> (test, what it must be, a value that works). Only keys whose nonsense values the trainer either
# rejects late or turns into a run that trains nothing.
RANGES: dict[str, tuple[Callable, str, str]] = {
    "max_train_epochs": (_positive, "at least 1", "10"),
    "max_train_steps": (_positive, "at least 1", "1600"),
    "network_dim": (_positive, "at least 1", "16"),
    "network_alpha": (_not_negative, "0 or more", "8"),
    "network_dropout": (_below_one, "in [0, 1)", "0.1"),
    "learning_rate": (_not_negative, "0 or more", "1e-4"),
    "unet_lr": (_not_negative, "0 or more", "1e-4"),
    "text_encoder_lr": (_not_negative, "0 or more (0 leaves the text encoder untrained)", "5e-5"),
    "train_batch_size": (_positive, "at least 1", "2"),
    "batch_size": (_positive, "at least 1", "2"),
    "num_repeats": (_positive, "at least 1", "1"),
    "dataset_repeats": (_positive, "at least 1", "1"),
    "gradient_accumulation_steps": (_positive, "at least 1", "1"),
    "save_every_n_epochs": (_positive, "at least 1 (sd-scripts divides by it)", "1"),
    "save_every_n_steps": (_positive, "at least 1 (sd-scripts divides by it)", "100"),
    "max_data_loader_n_workers": (_not_negative, "0 or more", "0"),
    "lr_warmup_steps": (_not_negative, "0 or more", "0"),
    "lr_scheduler_num_cycles": (_positive, "at least 1", "1"),
    "vae_batch_size": (_positive, "at least 1", "1"),
    "keep_tokens": (_not_negative, "0 or more", "0"),
    "clip_skip": (_positive, "at least 1", "1"),
    "seed": (lambda v: 0 <= v < 2**32, "in [0, 2**32) (numpy refuses other seeds)", "42"),
    "resolution": (lambda v: v >= 64, "at least 64", "64"),
    "min_bucket_reso": (_positive, "at least 1", "64"),
    "max_bucket_reso": (_positive, "at least 1", "1024"),
    "bucket_reso_steps": (_positive, "a positive multiple of 64", "64"),
    "caption_dropout_rate": (_unit, "in [0, 1]", "0.0"),
    "caption_tag_dropout_rate": (_unit, "in [0, 1]", "0.0"),
    "validation_split": (_unit, "in [0, 1]", "0.0"),
}


def _numbers(value) -> list:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, (int, float)) and not isinstance(item, bool)]


def set_key(key: str, training: bool) -> str:
    """How `--set` names a key of this table (it looks in the dataset table first)."""
    return f"training.{key}" if training and key in dataset_keys() else key


def check_ranges(values: dict, source: str, where: str = "", training: bool = False) -> None:
    """Every numeric value of `values` (one dataset TOML level, or the flat training options when `training`)
    within sensible bounds."""
    prefix = f"{source}: {where}: " if where else f"{source}: "
    for key, value in values.items():
        if key not in RANGES:
            continue
        test, wanted, example = RANGES[key]
        for number in _numbers(value):
            if not test(number):
                raise ConfigError(f"{prefix}{key} = {number!r} makes no sense: it must be {wanted}; "
                                  f"e.g. --set {set_key(key, training)}={example}")


def check_training_rules(training: dict, source: str) -> None:
    """The trainer's own rules on the flat training options (after the config file is flattened): the first
    one broken raises (`training_rules` lists them, for a caller that reports every one)."""
    for rule in training_rules():
        rule(training, source)


def training_rules() -> tuple[Callable[[dict, str], None], ...]:
    """Each rule of the trainer on the flat training options, independent of the others."""
    ranges = functools.partial(check_ranges, training=True)
    requires = tuple(functools.partial(_check_requires, requirement) for requirement in _REQUIRES)
    return (ranges, _check_bucket_fallbacks, _check_workers, _check_validation_split, *requires,
            _check_key_value_args, _check_something_trains, _check_strings)


def _check_bucket_fallbacks(training: dict, source: str) -> None:
    if training.get("enable_bucket") and isinstance(training.get("resolution"), str):
        # without a dataset TOML (or one that leaves them unset) the training values are the dataset's
        fallbacks = _training_fallbacks(training)
        _check_buckets(source, "training", fallbacks, fallbacks["resolution"])


def _check_workers(training: dict, source: str) -> None:
    workers = training.get("max_data_loader_n_workers", 8)
    if training.get("persistent_data_loader_workers") and workers == 0:
        raise ConfigError(f"{source}: persistent_data_loader_workers = true needs max_data_loader_n_workers > 0 "
                          f"(torch: 'persistent_workers option needs num_workers > 0', after the model load); "
                          f"--set persistent_data_loader_workers=false or --set max_data_loader_n_workers=2")


def _check_validation_split(training: dict, source: str) -> None:
    split = training.get("validation_split")
    if split is not None and not isinstance(split, float):
        raise ConfigError(f"{source}: validation_split = {split!r} must be a float (sd-scripts' dataset sanitizer "
                          f"refuses an int: 'expected float'); --set training.validation_split={float(split)}")


_REQUIRES = (  # key, what it needs, the need in words, the fix
    ("adaptive_noise_scale", lambda t: t.get("noise_offset") is not None, "noise_offset", "--set noise_offset=0.05"),
    ("scale_v_pred_loss_like_noise_pred", lambda t: t.get("v_parameterization"), "v_parameterization = true",
     "--set scale_v_pred_loss_like_noise_pred=false"),
    ("v_pred_like_loss", lambda t: not t.get("v_parameterization"), "v_parameterization off",
     "remove v_pred_like_loss"),
    ("full_fp16", lambda t: t.get("mixed_precision") == "fp16", "mixed_precision = \"fp16\"",
     "--set full_fp16=false"),
    ("full_bf16", lambda t: t.get("mixed_precision") == "bf16", "mixed_precision = \"bf16\"",
     "--set full_bf16=false"),
    ("fp8_base", lambda t: t.get("mixed_precision", "no") != "no", "mixed_precision fp16 or bf16",
     "--set fp8_base=false"),
)


def _check_requires(requirement: tuple, training: dict, source: str) -> None:
    key, ok, needs, fix = requirement
    if training.get(key) not in (None, False) and not ok(training):
        raise ConfigError(f"{source}: {key} needs {needs} (sd-scripts refuses it otherwise); {fix}")


def _check_strings(training: dict, source: str) -> None:
    """Training strings sd-scripts parses itself: face_crop_aug_range "lo,hi" (prepare_dataset_args asserts two
    floats, lo <= hi) and the sample prompt file (sampling without one is a TypeError at the first sample; a
    suffix other than .txt/.toml/.json an UnboundLocalError)."""
    crop = training.get("face_crop_aug_range")
    if isinstance(crop, str):
        try:
            low, high = (float(part) for part in crop.split(","))
        except ValueError:
            low, high = 1.0, 0.0
        if low > high:
            raise ConfigError(f"{source}: face_crop_aug_range = {crop!r} must be \"lo,hi\" with lo <= hi "
                              f"(sd-scripts asserts it); e.g. --set face_crop_aug_range='\"2.0,4.0\"'")
    sampling = training.get("sample_at_first") or training.get("sample_every_n_epochs") or \
        training.get("sample_every_n_steps")
    prompts = training.get("sample_prompts")
    if sampling and not prompts:
        raise ConfigError(f"{source}: sampling is on but sample_prompts is not set (sd-scripts fails at the first "
                          f"sample); set sample_prompts or --set sample_every_n_epochs=0")
    if prompts and Path(prompts).suffix.lower() not in (".txt", ".toml", ".json"):
        raise ConfigError(f"{source}: sample_prompts {prompts} must be a .txt, .toml or .json file (sd-scripts "
                          f"reads nothing else)")


def _check_something_trains(training: dict, source: str) -> None:
    """networks.lora skips a parameter group whose learning rate is 0 (text encoder: text_encoder_lr, U-Net:
    unet_lr, both falling back to learning_rate); with none left the optimizer has no parameters."""
    default = training.get("learning_rate", 2e-6)
    te_lr = training.get("text_encoder_lr")
    te_lr = (te_lr[0] if te_lr else None) if isinstance(te_lr, list) else te_lr
    te_lr = default if te_lr is None else te_lr
    unet_lr = default if training.get("unet_lr") is None else training["unet_lr"]
    text_encoder = not training.get("network_train_unet_only") and te_lr != 0
    unet = not training.get("network_train_text_encoder_only") and unet_lr != 0
    if not (text_encoder or unet):
        raise ConfigError(f"{source}: nothing would train: the learning rates of the U-Net (unet_lr, else "
                          f"learning_rate = {default!r}) and of the text encoder (text_encoder_lr, else learning_rate) "
                          f"are 0 or off (sd-scripts: 'optimizer got an empty parameter list'); --set learning_rate=1e-4")


def _check_key_value_args(training: dict, source: str) -> None:
    """network_args / optimizer_args items are "key=value"; sd-scripts splits them only after the model load
    (optimizer values must be Python literals: it runs ast.literal_eval on them)."""
    for key in ("network_args", "optimizer_args"):
        items = training.get(key) or []
        for item in items if isinstance(items, list) else [items]:
            name, equals, value = str(item).partition("=")
            problem = None
            if not equals or not name.strip():
                problem = "is not key=value"
            elif key == "optimizer_args":
                if "=" in value:
                    problem = "has more than one '=' (sd-scripts splits on every '=')"
                else:
                    try:
                        ast.literal_eval(value)
                    except (ValueError, SyntaxError):
                        problem = "has a value that is not a Python literal (quote strings: key=\"'text'\")"
            if problem:
                raise ConfigError(f"{source}: {key} item {item!r} {problem}; e.g. --set {key}='[\"{name.strip() or 'key'}=1\"]'")


def _training_fallbacks(training: dict) -> dict:
    """The training options as the dataset level sees them (config_util's argparse_config)."""
    fallbacks = dict(ARGPARSE_DATASET_DEFAULTS)
    for key, value in training.items():
        if value is not None:
            fallbacks[_ARGPARSE_TO_DATASET.get(key, key)] = value
    if isinstance(training.get("resolution"), str):
        fallbacks["resolution"] = resolution_pair(training["resolution"])
    return fallbacks


def resolution_pair(value) -> tuple[int, int]:
    """A resolution as sd-scripts reads it: "N"/"W,H" (training TOML), N or [W, H] (dataset TOML)."""
    if isinstance(value, str):
        parts = [int(part) for part in value.split(",")]
        return parts[0], parts[-1]
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def effective_datasets(dataset_config: dict, training: dict) -> list[tuple[str, dict, list[dict]]]:
    """Per [[datasets]]: (where, dataset values, [subset values]) after sd-scripts' fallbacks
    (subset -> dataset -> [general] -> training option -> default; the first non-None wins)."""
    general = dataset_config.get("general", {}) or {}
    fallbacks = _training_fallbacks(training)
    out = []
    for i, dataset in enumerate(dataset_config.get("datasets", []) or []):
        own = {k: v for k, v in dataset.items() if k != "subsets"}
        values = {**fallbacks, **general, **own}
        subsets = [{**values, **subset} for subset in dataset.get("subsets", []) or []]
        out.append((f"datasets[{i}]", values, subsets))
    return out


def check_dataset_rules(dataset_config: dict, training: dict, source: str) -> None:
    """Buckets, ranges and latent caching of every dataset, with the training options it falls back to."""
    check_ranges(dataset_config.get("general", {}) or {}, source, "[general]")
    for i, dataset in enumerate(dataset_config.get("datasets", []) or []):
        check_ranges({k: v for k, v in dataset.items() if k != "subsets"}, source, f"datasets[{i}]")
        for j, subset in enumerate(dataset.get("subsets", []) or []):
            check_ranges(subset, source, f"datasets[{i}].subsets[{j}]")
    for where, values, subsets in effective_datasets(dataset_config, training):
        if values.get("enable_bucket") and values.get("resolution") is not None:
            _check_buckets(source, where, values, resolution_pair(values["resolution"]))
        if training.get("cache_latents") or training.get("cache_latents_to_disk"):
            for j, subset in enumerate(subsets):
                for key in ("color_aug", "random_crop"):
                    if subset.get(key):
                        raise ConfigError(f"{source}: {where}.subsets[{j}]: {key} = true cannot be used with "
                                          f"cache_latents (sd-scripts asserts it); --set {key}=false or "
                                          f"--set cache_latents=false")


def _check_buckets(source: str, where: str, values: dict, resolution: tuple[int, int]) -> None:
    low, high, steps = values["min_bucket_reso"], values["max_bucket_reso"], values["bucket_reso_steps"]
    if steps % SD1_BUCKET_STEP:
        raise ConfigError(f"{source}: {where}: bucket_reso_steps = {steps}: SD 1.x needs a multiple of 64 "
                          f"(sd-scripts: 'bucket_reso_steps is {steps}. it must be divisible by 64.'); "
                          f"--set bucket_reso_steps=64 (or --set enable_bucket=false)")
    if low > min(resolution):
        raise ConfigError(f"{source}: {where}: min_bucket_reso {low} > resolution {min(resolution)} (sd-scripts "
                          f"asserts min_bucket_reso <= resolution); --set min_bucket_reso={min(resolution)}")
    if high < max(resolution):
        raise ConfigError(f"{source}: {where}: max_bucket_reso {high} < resolution {max(resolution)} (sd-scripts "
                          f"asserts max_bucket_reso >= resolution); --set max_bucket_reso={max(resolution)}")
    for key, value in (("min_bucket_reso", low), ("max_bucket_reso", high)):
        if value % steps:
            raise ConfigError(f"{source}: {where}: {key} {value} is not a multiple of bucket_reso_steps {steps} "
                              f"(sd-scripts would silently change it); --set {key}={value - value % steps or steps}")


def _local(path: str, base: Path | None) -> Path:
    folder = Path(path).expanduser()
    return folder if folder.is_absolute() or base is None else base / folder


def images_in(folder: Path) -> list[Path]:
    """The images sd-scripts' glob_images finds directly in `folder` (no subfolders)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in IMAGE_SUFFIXES)


def check_image_dirs(dataset_config: dict, training: dict, source: str, base: Path | None = None) -> None:
    """Every subset's image_dir holds images the trainer finds, with captions of the extension it looks for.

    Relative paths are taken from `base`, the trainer's working directory (the run folder), else from here.
    """
    for where, _values, subsets in effective_datasets(dataset_config, training):
        for j, subset in enumerate(subsets):
            if not subset.get("image_dir"):
                continue
            folder = _local(str(subset["image_dir"]), base)
            images = images_in(folder)
            if not images:
                what = "has no images" if folder.is_dir() else "does not exist"
                raise ConfigError(f"{source}: {where}.subsets[{j}]: image_dir {folder} {what} "
                                  f"({', '.join(IMAGE_SUFFIXES[:5])}); sd-scripts would print 'No data found' "
                                  f"and exit 0 having trained nothing: point it at the prepared images")
            extension = subset.get("caption_extension") or ".caption"
            if not any(image.with_suffix(extension).is_file() for image in images):
                raise ConfigError(f"{source}: {where}.subsets[{j}]: no caption file *{extension} next to the "
                                  f"{len(images)} images in {folder}; sd-scripts would train without captions: "
                                  f"--set caption_extension='\".txt\"'")


def check_network_weights(training: dict, source: str, base: Path | None = None) -> None:
    """`network_weights` names a file (relative to `base`, the trainer's working directory)."""
    weights = training.get("network_weights")
    if weights and not _local(str(weights), base).is_file():
        raise ConfigError(f"{source}: network_weights {weights} is not a file (sd-scripts opens it after the "
                          f"model load); fix the path or remove network_weights")
