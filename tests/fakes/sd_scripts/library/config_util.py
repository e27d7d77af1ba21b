"""Stand-in for sd-scripts `library/config_util.py`: dataset TOML -> dataset group, as the probe calls it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

from library._rules import dataset_errors, raise_first

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_DATASET_DEFAULTS = {"batch_size": None, "resolution": None, "enable_bucket": False, "min_bucket_reso": None,
                     "max_bucket_reso": None, "bucket_reso_steps": None}


def load_user_config(file: str) -> dict:
    path = Path(file)
    if not path.is_file():
        raise ValueError(f"file not found / ファイルが見つかりません: {path}")
    if path.name.lower().endswith(".json"):
        return json.loads(path.read_text(encoding="utf-8"))
    if path.name.lower().endswith(".toml"):
        import toml

        return toml.load(path)
    raise ValueError(f"not supported config file format / 対応していない設定ファイルの形式です: {path}")


class ConfigSanitizer:
    def __init__(self, support_dreambooth, support_finetuning, support_controlnet, support_dropout):
        self.flags = (support_dreambooth, support_finetuning, support_controlnet, support_dropout)


class _Dataset:
    def __init__(self, params: dict, subsets: list[dict]):
        self.params, self.subsets = params, subsets
        self.bucket_reso_steps = params["bucket_reso_steps"]
        self.num_train_images = 0
        for subset in subsets:
            folder = Path(str(subset.get("image_dir", "")))
            found = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES] if folder.is_dir() else []
            self.num_train_images += len(found) * int(subset.get("num_repeats", 1))

    def __len__(self) -> int:
        return math.ceil(self.num_train_images / max(int(self.params["batch_size"] or 1), 1))

    def verify_bucket_reso_steps(self, min_steps: int) -> None:
        assert self.bucket_reso_steps is None or self.bucket_reso_steps % min_steps == 0, (
            f"bucket_reso_steps is {self.bucket_reso_steps}. it must be divisible by {min_steps}.\n"
            + f"bucket_reso_stepsが{self.bucket_reso_steps}です。{min_steps}で割り切れる必要があります")

    def is_latent_cacheable(self) -> bool:
        return all(not s.get("color_aug") and not s.get("random_crop") for s in self.subsets)


class _DatasetGroup:
    def __init__(self, datasets: list[_Dataset]):
        self.datasets = datasets

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def verify_bucket_reso_steps(self, min_steps: int) -> None:
        for dataset in self.datasets:
            dataset.verify_bucket_reso_steps(min_steps)

    def is_latent_cacheable(self) -> bool:
        return all(d.is_latent_cacheable() for d in self.datasets)


class BlueprintGenerator:
    def __init__(self, sanitizer: ConfigSanitizer):
        self.sanitizer = sanitizer

    def generate(self, user_config: dict, args):
        raise_first(dataset_errors(user_config, args))
        general = user_config.get("general", {})
        datasets = []
        for dataset in user_config.get("datasets", []):
            upper = {**general, **{k: v for k, v in dataset.items() if k != "subsets"}}
            params = {k: upper.get(k, getattr(args, k, default)) for k, default in _DATASET_DEFAULTS.items()}
            params["batch_size"] = upper.get("batch_size", getattr(args, "train_batch_size", 1))
            params["bucket_reso_steps"] = upper.get("bucket_reso_steps", getattr(args, "bucket_reso_steps", 64))
            subsets = [{**upper, **subset} for subset in dataset.get("subsets", [])]
            datasets.append((params, subsets))
        return SimpleNamespace(dataset_group=datasets)


def generate_dataset_group_by_blueprint(dataset_group):
    return _DatasetGroup([_Dataset(params, subsets) for params, subsets in dataset_group]), None
