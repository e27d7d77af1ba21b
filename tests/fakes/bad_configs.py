"""The bad configs, defined once: each passes a key-and-type check (or slips past one) and the real sd-scripts
trainer (commit 48d368fa) still refuses it, or "succeeds" with nothing (exit 0, "No data found").

Used three ways: bespoke's validator must refuse each (tests/kohya/test_rules.py), the fake trainer must refuse
each when bespoke's validation is bypassed (tests/fakes/test_fake_rules.py), and the real trainer must refuse
each (tests/real_trainer/test_bad_configs.py). Every `trainer_message` was seen in a real run of the harness
(../shared/kohya/harness) on 2026-12-01; the `slow` ones fail only after the model load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import toml


@dataclass(frozen=True)
class BadConfig:
    """Overrides of a planned run's config: `training` keys of config/training.toml (in whatever section holds
    them, else [training]), `dataset` keys of the first [[datasets]], `subset` keys of its first
    [[datasets.subsets]]; a value None deletes the key. `image_dir`: None keeps the prepared images, "empty"
    points the subset at an empty folder, "missing" at a folder that does not exist."""

    name: str
    training: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    subset: dict = field(default_factory=dict)
    image_dir: str | None = None  # None | "empty" | "missing"
    trainer_message: str = ""
    trainer_exit_zero: bool = False
    bespoke_message: str = ""
    slow: bool = False  # the real trainer fails only after loading the model (about a minute on CPU)

    @property
    def trains_nothing(self) -> bool:
        """The trainer writes no checkpoint ("No data found" or an error); max_train_epochs < 0 writes one."""
        return "override steps" not in self.trainer_message


BAD_CONFIGS: tuple[BadConfig, ...] = (
    BadConfig("bucket_steps_32", dataset={"bucket_reso_steps": 32},
              trainer_message="AssertionError: bucket_reso_steps is 32. it must be divisible by 64.",
              bespoke_message="bucket_reso_steps = 32: SD 1.x needs a multiple of 64"),
    BadConfig("min_bucket_above_resolution", dataset={"min_bucket_reso": 128},
              trainer_message="AssertionError: min_bucket_reso must be equal or less than resolution",
              bespoke_message="min_bucket_reso 128 > resolution 64"),
    BadConfig("max_bucket_below_resolution", training={"resolution": "128,128"},
              dataset={"resolution": 128, "max_bucket_reso": 64},
              trainer_message="AssertionError: max_bucket_reso must be equal or greater than resolution",
              bespoke_message="max_bucket_reso 64 < resolution 128"),
    BadConfig("persistent_workers_without_workers",
              training={"persistent_data_loader_workers": True, "max_data_loader_n_workers": 0},
              trainer_message="ValueError: persistent_workers option needs num_workers > 0",
              bespoke_message="persistent_data_loader_workers = true needs max_data_loader_n_workers > 0",
              slow=True),
    BadConfig("network_args_without_equals", training={"network_args": ["conv_dim"]},
              trainer_message="ValueError: not enough values to unpack (expected 2, got 1)",
              bespoke_message="network_args item 'conv_dim' is not key=value", slow=True),
    BadConfig("network_weights_missing", training={"network_weights": "nowhere.safetensors"},
              trainer_message='FileNotFoundError: No such file or directory: "nowhere.safetensors"',
              bespoke_message="network_weights nowhere.safetensors is not a file", slow=True),
    BadConfig("network_dim_zero", training={"network_dim": 0},
              trainer_message="ValueError: optimizer got an empty parameter list",
              bespoke_message="network_dim = 0 makes no sense", slow=True),
    BadConfig("learning_rate_zero", training={"learning_rate": 0.0},
              trainer_message="ValueError: optimizer got an empty parameter list",
              bespoke_message="nothing would train", slow=True),
    BadConfig("save_every_zero_epochs", training={"save_every_n_epochs": 0, "sample_at_first": False},
              trainer_message="ZeroDivisionError: integer modulo by zero",  # after a whole epoch of training
              bespoke_message="save_every_n_epochs = 0 makes no sense", slow=True),
    # not refused: the real trainer "trains" 0 steps and saves an untrained LoRA as the final model, exit 0
    BadConfig("max_train_epochs_negative", training={"max_train_epochs": -3, "sample_at_first": False},
              trainer_message="override steps. steps for -3 epochs is / 指定エポックまでのステップ数: -6",
              trainer_exit_zero=True, bespoke_message="max_train_epochs = -3 makes no sense", slow=True),
    BadConfig("image_dir_empty", image_dir="empty", trainer_message="No data found.", trainer_exit_zero=True,
              bespoke_message="has no images"),
    BadConfig("image_dir_missing", image_dir="missing", trainer_message="No data found.", trainer_exit_zero=True,
              bespoke_message="does not exist"),
    BadConfig("num_repeats_zero", subset={"num_repeats": 0}, trainer_message="No data found.",
              trainer_exit_zero=True, bespoke_message="num_repeats = 0 makes no sense"),
    BadConfig("unknown_subset_key", subset={"foo_bar": 1},
              trainer_message="extra keys not allowed @ data['datasets'][0]['subsets'][0]['foo_bar']",
              bespoke_message="key 'foo_bar' is not allowed here"),
    BadConfig("per_dataset_key_in_subset", subset={"batch_size": 2},
              trainer_message="extra keys not allowed @ data['datasets'][0]['subsets'][0]['batch_size']",
              bespoke_message="key 'batch_size' is only allowed in [[datasets]] or [general], not in a subset"),
    BadConfig("image_dir_key_missing", subset={"image_dir": None},
              trainer_message="required key not provided @ data['datasets'][0]['subsets'][0]['image_dir']",
              bespoke_message="key 'image_dir' is required"),
    BadConfig("resolution_string_in_dataset", dataset={"resolution": "64"},
              trainer_message="expected int for dictionary value @ data['datasets'][0]['resolution']",
              bespoke_message="key 'resolution' must be int or [int, int]"),
    BadConfig("resolution_int_in_training", training={"resolution": 64},
              trainer_message="AttributeError: 'int' object has no attribute 'split'",
              bespoke_message="key 'resolution' must be a string"),
    BadConfig("num_repeats_float", subset={"num_repeats": 2.0},
              trainer_message="expected int for dictionary value @ data['datasets'][0]['subsets'][0]['num_repeats']",
              bespoke_message="key 'num_repeats' must be int"),
    BadConfig("validation_split_int_in_dataset", dataset={"validation_split": 0},
              trainer_message="expected float for dictionary value @ data['datasets'][0]['validation_split']",
              bespoke_message="ints are not floats here"),
    BadConfig("validation_split_int_in_training", training={"validation_split": 0},
              trainer_message="expected float for object value @ data['validation_split']",
              bespoke_message="validation_split = 0 must be a float"),
    BadConfig("face_crop_ints", subset={"face_crop_aug_range": [1, 2]},
              trainer_message="expected float for dictionary value @ data['datasets'][0]['subsets'][0]"
                              "['face_crop_aug_range']",
              bespoke_message="key 'face_crop_aug_range' must be [float, float]"),
    BadConfig("mixed_type_array", training={"network_args": ["conv_dim=4", 1]},
              trainer_message="Not a homogeneous array",
              bespoke_message="is an array of mixed types"),
    BadConfig("batch_size_zero", dataset={"batch_size": 0}, trainer_message="ZeroDivisionError: division by zero",
              bespoke_message="batch_size = 0 makes no sense"),
    BadConfig("seed_negative", training={"seed": -1},
              trainer_message="ValueError: Seed must be between 0 and 2**32 - 1",
              bespoke_message="seed = -1 makes no sense"),
    BadConfig("adaptive_noise_without_offset", training={"adaptive_noise_scale": 0.1},
              trainer_message="ValueError: adaptive_noise_scale requires noise_offset",
              bespoke_message="adaptive_noise_scale needs noise_offset"),
    BadConfig("color_aug_with_cache_latents", subset={"color_aug": True},
              trainer_message="AssertionError: when caching latents, either color_aug or random_crop cannot be used",
              bespoke_message="color_aug = true cannot be used with cache_latents"),
    BadConfig("mixed_precision_unknown", training={"mixed_precision": "fp32"},
              trainer_message="ValueError: Unknown mixed_precision mode: fp32",
              bespoke_message="key 'mixed_precision' = 'fp32' is not one of"),
)


# the small 64 px run every table test plans (4 punks, 1 epoch, batch 2, no worker processes)
SMALL_RUN = ("max_train_epochs=1", "num_repeats=1", "batch_size=2", "max_data_loader_n_workers=0",
             "persistent_data_loader_workers=false")


def plan_small_run(project: Path, settings, overrides: tuple[str, ...] = ()) -> Path:
    """Plan (and so validate) a 64 px run on 4 synthetic punks with `settings`; returns the run folder."""
    from bespoke.dataset.synthetic import write_dataset
    from bespoke.run.plan import PlanRequest, plan_run

    punks = Path(project) / "punks"
    if not punks.is_dir():
        write_dataset(punks, count=4, seed=5)
    plan = plan_run(settings, PlanRequest(resolution=64, dataset=punks, overrides=SMALL_RUN + tuple(overrides)))
    return plan.paths.root


def _set(table: dict, key: str, value) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


def apply_bad_config(run_dir: Path, bad: BadConfig) -> None:
    """Edit a planned run's config/training.toml and config/dataset.toml in place (written with `toml`, the
    package sd-scripts reads them with; it writes mixed arrays that it then refuses to read)."""
    config = Path(run_dir) / "config"
    training = toml.load(config / "training.toml")
    for key, value in bad.training.items():
        sections = [section for section in training.values() if isinstance(section, dict) and key in section]
        if key in training or not sections:
            _set(training if key in training else training.setdefault("training", {}), key, value)
        for section in sections:
            _set(section, key, value)
    dataset_config = toml.load(config / "dataset.toml")
    dataset = dataset_config["datasets"][0]
    subset = dataset["subsets"][0]
    for key, value in bad.dataset.items():
        _set(dataset, key, value)
    for key, value in bad.subset.items():
        _set(subset, key, value)
    if bad.image_dir == "empty":
        (Path(run_dir) / "empty_images").mkdir(exist_ok=True)
        subset["image_dir"] = str(Path(run_dir) / "empty_images")
    elif bad.image_dir == "missing":
        subset["image_dir"] = str(Path(run_dir) / "no_such_images")
    (config / "training.toml").write_text(toml.dumps(training), encoding="utf-8")
    (config / "dataset.toml").write_text(toml.dumps(dataset_config), encoding="utf-8")
