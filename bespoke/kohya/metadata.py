"""A LoRA's settings read back from its safetensors file, without torch.

A safetensors file starts with an 8-byte little-endian header length and a JSON header holding every
tensor's dtype/shape/offsets and a `__metadata__` map of strings. sd-scripts writes its training settings
there (`ss_*`, `modelspec.*`; all values are strings, "None" included; FACTS.md §4). The tensor shapes in
the same header give the real network dim (rank of `lora_down`), so a checkpoint whose metadata is missing
or disagrees with the run's config can be flagged without guessing from the file size.
"""

from __future__ import annotations

import datetime as _dt
import json
import struct
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from safetensors import safe_open

from bespoke.errors import UsageError

_MAX_HEADER = 100 * 1024 * 1024  # safetensors itself refuses headers above 100 MB


class WeightsError(UsageError):
    """A file that is not a readable safetensors checkpoint (exit 2)."""


@dataclass(frozen=True)
class Header:
    """The parsed safetensors header: metadata strings and tensor entries (name -> dtype/shape/offsets)."""

    metadata: dict[str, str]
    tensors: dict[str, dict]
    header_bytes: int


def read_header(path: Path) -> Header:
    """Parse a safetensors header (8-byte little-endian length + JSON); one-line errors for bad input."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such file")
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, not a .safetensors file (for a run folder use `bespoke inspect RUN`)")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise WeightsError(f"{path}: {size} bytes, too short to be a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if length == 0 or length > min(_MAX_HEADER, size - 8):
            if length <= _MAX_HEADER and length > size - 8:
                raise WeightsError(f"{path}: truncated: header says {length} bytes but the file has {size - 8} after "
                                   "the length field; copy the checkpoint again")
            raise WeightsError(f"{path}: not a safetensors file (bad header length {length}); "
                               "is it a .ckpt/.pt or another format?")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: not a safetensors file (header is not JSON: {exc.__class__.__name__})") from exc
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: not a safetensors file (header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise WeightsError(f"{path}: malformed safetensors header (__metadata__ is not a map)")
    tensors = {k: v for k, v in header.items() if isinstance(v, dict) and "shape" in v}
    end = max((int(v.get("data_offsets", [0, 0])[1]) for v in tensors.values()), default=0)
    if 8 + length + end > size:
        raise WeightsError(f"{path}: truncated: tensors need {8 + length + end} bytes, the file has {size}; "
                           "copy the checkpoint again")
    return Header({str(k): str(v) for k, v in metadata.items()}, tensors, length)


def read_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` strings of a safetensors file ({} when it has none)."""
    return read_header(path).metadata


# ---------------------------------------------------------------- value parsing (all metadata values are strings)

def _none(value):
    return None if value in (None, "", "None", "null", "(unknown)") else value


def as_int(value: object) -> int | None:
    """An int from a metadata string ('10', '10.0'); None for 'None', '' or junk."""
    value = _none(value)
    if not isinstance(value, (str, int, float)):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):  # OverflowError: "1e999" (corrupt metadata)
        return None


def as_float(value: object) -> float | None:
    """A float from '1e-4', '[5e-05]' (text_encoder_lr is nargs=* in newer sd-scripts) or None."""
    value = _none(value)
    if not isinstance(value, (str, int, float)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    if not isinstance(value, str):
        return None
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return None
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], (int, float)):
        return float(parsed[0])
    return None


def _json(value, default):
    value = _none(value)
    if value is None:
        return default
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return default


def _resolution(value) -> tuple[int, int] | None:
    """'512,512', '(512, 512)', '[512, 512]', '512x512', '512' or a list -> (w, h)."""
    value = _none(value)
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        text = str(value).strip().strip("()[]")
        parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        numbers = [int(float(p)) for p in parts]
    except (TypeError, ValueError):
        return None
    if len(numbers) == 1:
        return numbers[0], numbers[0]
    if len(numbers) == 2:
        return numbers[0], numbers[1]
    return None


def _timestamp(value) -> str | None:
    seconds = as_float(value)
    if seconds is None:
        return None
    return _dt.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def _tensor_rank(tensors: dict[str, dict]) -> int | None:
    """The LoRA rank from the header: dim 0 of the `lora_down` weights (most common value)."""
    ranks = Counter(int(v["shape"][0]) for k, v in tensors.items()
                    if k.endswith("lora_down.weight") and v.get("shape"))
    return ranks.most_common(1)[0][0] if ranks else None


def _tensor_alpha(path: Path, tensors: dict[str, dict]) -> float | None:
    """The value of the first `.alpha` scalar, read with safetensors' numpy backend (no torch)."""
    names = sorted(k for k in tensors if k.endswith(".alpha"))
    if not names:
        return None
    try:
        with safe_open(str(path), framework="np") as handle:
            return float(handle.get_tensor(names[0]))
    except Exception:  # noqa: BLE001 - an odd dtype (bf16) must not stop the summary; metadata still has alpha
        return None


# ---------------------------------------------------------------- summary

@dataclass
class DatasetSummary:
    """What the checkpoint says about its training data (from ss_datasets, or the legacy ss_* keys)."""

    images: int | None = None
    reg_images: int | None = None
    batch_size: int | None = None
    batches_per_epoch: int | None = None
    resolution: tuple[int, int] | None = None
    buckets: list[dict] = field(default_factory=list)  # [{"resolution": [w, h], "count": n}]
    subsets: list[dict] = field(default_factory=list)  # [{"image_dir", "num_repeats", "img_count", ...}]

    @property
    def repeats(self) -> list[int]:
        return [int(s["num_repeats"]) for s in self.subsets if s.get("num_repeats") is not None]


@dataclass
class LoraSummary:
    """The settings of one LoRA checkpoint as its metadata and tensor header state them."""

    path: str
    file_size: int
    tensor_count: int
    has_metadata: bool
    metadata_keys: int
    title: str | None = None
    output_name: str | None = None
    epoch: int | None = None
    num_epochs: int | None = None
    steps: int | None = None
    max_train_steps: int | None = None
    network_module: str | None = None
    dim: int | None = None
    alpha: float | None = None
    tensor_dim: int | None = None
    tensor_alpha: float | None = None
    network_args: dict | None = None
    learning_rate: float | None = None
    unet_lr: float | None = None
    text_encoder_lr: float | None = None
    lr_scheduler: str | None = None
    lr_warmup_steps: int | None = None
    optimizer: str | None = None
    mixed_precision: str | None = None
    seed: int | None = None
    base_model_name: str | None = None
    base_model_hash: str | None = None
    base_model_legacy_hash: str | None = None
    base_model_version: str | None = None
    resolution: tuple[int, int] | None = None
    dataset: DatasetSummary = field(default_factory=DatasetSummary)
    tag_frequency: list[tuple[str, int]] = field(default_factory=list)
    tags_total: int = 0
    sd_scripts_commit: str | None = None
    training_started_at: str | None = None
    training_finished_at: str | None = None
    session_id: str | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data["dataset"]["repeats"] = self.dataset.repeats
        data["tag_frequency"] = [{"tag": t, "count": c} for t, c in self.tag_frequency]
        return data

    @property
    def is_final_name(self) -> bool:
        """True for `{output_name}.safetensors` (the last epoch, FACTS.md §4)."""
        return bool(self.output_name) and Path(self.path).stem == self.output_name


def _subset_images(subsets: list[dict]) -> int | None:
    """Training images counted with their repeats over the non-reg subsets; None unless every subset
    states img_count and num_repeats (sd-scripts: num_train_images = img_count x num_repeats)."""
    total = 0
    for subset in subsets:
        count, repeats = as_int(subset.get("img_count")), as_int(subset.get("num_repeats"))
        if count is None or repeats is None:
            return None
        if not subset.get("is_reg"):
            total += count * repeats
    return total if subsets else None


def _dataset_summary(meta: dict[str, str]) -> DatasetSummary:
    summary = DatasetSummary(images=as_int(meta.get("ss_num_train_images")),
                             reg_images=as_int(meta.get("ss_num_reg_images")),
                             batches_per_epoch=as_int(meta.get("ss_num_batches_per_epoch")))
    datasets = _json(meta.get("ss_datasets"), [])
    if isinstance(datasets, list) and datasets:
        first = datasets[0] if isinstance(datasets[0], dict) else {}
        summary.batch_size = as_int(first.get("batch_size_per_device"))
        summary.resolution = _resolution(first.get("resolution"))
        if summary.images is None:
            counts = [as_int(d.get("num_train_images")) for d in datasets if isinstance(d, dict)]
            known = [c for c in counts if c is not None]
            summary.images = sum(known) if counts and len(known) == len(counts) else None
        for dataset in datasets:
            if not isinstance(dataset, dict):
                continue
            buckets = (dataset.get("bucket_info") or {}).get("buckets") or {}
            for bucket in buckets.values() if isinstance(buckets, dict) else []:
                summary.buckets.append({"resolution": list(bucket.get("resolution", [])), "count": bucket.get("count")})
            for subset in dataset.get("subsets") or []:
                if isinstance(subset, dict):
                    summary.subsets.append({k: subset.get(k) for k in (
                        "image_dir", "num_repeats", "img_count", "keep_tokens", "shuffle_caption",
                        "flip_aug", "color_aug", "random_crop", "class_tokens", "is_reg") if k in subset})
        if summary.images is None:
            summary.images = _subset_images(summary.subsets)
        return summary
    # no dataset config: the legacy top-level keys (FACTS.md §4)
    summary.batch_size = as_int(meta.get("ss_batch_size_per_device"))
    summary.resolution = _resolution(meta.get("ss_resolution"))
    buckets = (_json(meta.get("ss_bucket_info"), {}) or {}).get("buckets") or {}
    for bucket in buckets.values() if isinstance(buckets, dict) else []:
        summary.buckets.append({"resolution": list(bucket.get("resolution", [])), "count": bucket.get("count")})
    dirs = _json(meta.get("ss_dataset_dirs"), {})
    for name, info in (dirs.items() if isinstance(dirs, dict) else []):
        if isinstance(info, dict):
            summary.subsets.append({"image_dir": name, "num_repeats": info.get("n_repeats"),
                                    "img_count": info.get("img_count")})
    return summary


def _tags(meta: dict[str, str], top: int) -> tuple[list[tuple[str, int]], int]:
    freq = _json(meta.get("ss_tag_frequency"), {})
    counts: Counter = Counter()
    for per_dir in (freq.values() if isinstance(freq, dict) else []):
        if isinstance(per_dir, dict):
            for tag, count in per_dir.items():
                if isinstance(count, (int, float)):
                    counts[str(tag).strip()] += int(count)
    return counts.most_common(top), len(counts)


def summarize(path: Path, top_tags: int = 15) -> LoraSummary:
    """Read a LoRA checkpoint's metadata and header into a `LoraSummary` (no torch, no tensor data but alpha)."""
    path = Path(path)
    header = read_header(path)
    meta = header.metadata
    if not any(k.startswith(("ss_", "modelspec.")) for k in meta):
        raise WeightsError(f"{path}: no sd-scripts metadata (no ss_*/modelspec.* keys); it was saved with "
                           "--no_metadata or by another tool, so its settings cannot be read back")
    tags, tags_total = _tags(meta, top_tags)
    dataset = _dataset_summary(meta)
    resolution = _resolution(meta.get("ss_resolution")) or dataset.resolution or _resolution(
        meta.get("modelspec.resolution"))
    network_args = _json(meta.get("ss_network_args"), None)
    return LoraSummary(
        path=str(path),
        file_size=path.stat().st_size,
        tensor_count=len(header.tensors),
        has_metadata=bool(meta),
        metadata_keys=len(meta),
        title=_none(meta.get("modelspec.title")),
        output_name=_none(meta.get("ss_output_name")),
        epoch=as_int(meta.get("ss_epoch")),
        num_epochs=as_int(meta.get("ss_num_epochs")),
        steps=as_int(meta.get("ss_steps")),
        max_train_steps=as_int(meta.get("ss_max_train_steps")),
        network_module=_none(meta.get("ss_network_module")),
        dim=as_int(meta.get("ss_network_dim")),
        alpha=as_float(meta.get("ss_network_alpha")),
        tensor_dim=_tensor_rank(header.tensors),
        tensor_alpha=_tensor_alpha(path, header.tensors),
        network_args=network_args if isinstance(network_args, dict) else None,
        learning_rate=as_float(meta.get("ss_learning_rate")),
        unet_lr=as_float(meta.get("ss_unet_lr")),
        text_encoder_lr=as_float(meta.get("ss_text_encoder_lr")),
        lr_scheduler=_none(meta.get("ss_lr_scheduler")),
        lr_warmup_steps=as_int(meta.get("ss_lr_warmup_steps")),
        optimizer=_none(meta.get("ss_optimizer")),
        mixed_precision=_none(meta.get("ss_mixed_precision")),
        seed=as_int(meta.get("ss_seed")),
        base_model_name=_none(meta.get("ss_sd_model_name")),
        base_model_hash=_none(meta.get("ss_new_sd_model_hash")),
        base_model_legacy_hash=_none(meta.get("ss_sd_model_hash")),
        base_model_version=_none(meta.get("ss_base_model_version")),
        resolution=resolution,
        dataset=dataset,
        tag_frequency=tags,
        tags_total=tags_total,
        sd_scripts_commit=_none(meta.get("ss_sd_scripts_commit_hash")),
        training_started_at=_timestamp(meta.get("ss_training_started_at")),
        training_finished_at=_timestamp(meta.get("ss_training_finished_at")),
        session_id=_none(meta.get("ss_session_id")),
    )
