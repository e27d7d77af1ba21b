"""Stand-in for `train_network.NetworkTrainer` (re-exported by the fake train_network.py): the methods the
preflight probe calls before the model load."""

from __future__ import annotations

import os
from pathlib import Path

CLIP = "openai/clip-vit-large-patch14"


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


class NetworkTrainer:
    def get_tokenize_strategy(self, args):
        """The real SdTokenizeStrategy: tokenizer_cache_dir/<id with _>, else the hub (HF_HOME cache offline)."""
        if args.tokenizer_cache_dir and (Path(args.tokenizer_cache_dir) / CLIP.replace("/", "_")).is_dir():
            return CLIP
        hf_home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
        if (hf_home / "hub" / ("models--" + CLIP.replace("/", "--"))).is_dir() or not _offline():
            return CLIP
        # what transformers' from_pretrained ends in when offline without a cached tokenizer
        raise TypeError("expected str, bytes or os.PathLike object, not NoneType")

    def assert_extra_args(self, args, train_dataset_group, val_dataset_group) -> None:
        train_dataset_group.verify_bucket_reso_steps(64)
        if val_dataset_group is not None:
            val_dataset_group.verify_bucket_reso_steps(64)
