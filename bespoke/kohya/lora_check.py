"""A LoRA checkpoint against the run that made it: what its metadata and tensors say vs the run's training config."""

from __future__ import annotations

import json
from pathlib import Path

from bespoke.kohya.metadata import LoraSummary, as_float, as_int
from bespoke.kohya.naming import epoch_from_filename


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 + 1e-6 * max(abs(a), abs(b))


def check_against_run(summary: LoraSummary, training: dict) -> list[str]:
    """Mismatches between a checkpoint and the run's training config (flattened training.toml keys).

    Checks dim, alpha (metadata and tensors), learning rates, scheduler, epoch count, output name, and
    that the file name matches its `ss_epoch` (the last epoch is only `{output_name}.safetensors`).
    """
    problems: list[str] = []
    dim = as_int(training.get("network_dim"))
    if dim is not None:
        problems += _disagree("network_dim", dim, (("metadata", summary.dim), ("tensors", summary.tensor_dim)))
    elif summary.dim is not None and summary.tensor_dim is not None and summary.dim != summary.tensor_dim:
        problems.append(f"network_dim {summary.dim} in metadata but the tensors have rank {summary.tensor_dim}")
    alpha = as_float(training.get("network_alpha"))
    if alpha is not None:
        problems += _disagree("network_alpha", alpha, (("metadata", summary.alpha),
                                                       ("tensors", summary.tensor_alpha)))
    for key, have in (("learning_rate", summary.learning_rate), ("unet_lr", summary.unet_lr),
                      ("text_encoder_lr", summary.text_encoder_lr)):
        want = as_float(json.dumps(training[key]) if isinstance(training.get(key), list) else training.get(key))
        if want is not None and have is not None and not _close(have, want):
            problems.append(f"{key} {have:g} in metadata, {want:g} in the run's config")
    scheduler = training.get("lr_scheduler")
    if scheduler and summary.lr_scheduler and str(scheduler) != summary.lr_scheduler:
        problems.append(f"lr_scheduler {summary.lr_scheduler} in metadata, {scheduler} in the run's config")
    epochs = as_int(training.get("max_train_epochs"))
    if epochs is not None and summary.num_epochs is not None and summary.num_epochs != epochs:
        problems.append(f"num_epochs {summary.num_epochs} in metadata, max_train_epochs {epochs} in the run's config")
    name = training.get("output_name")
    if name and summary.output_name and summary.output_name != name:
        problems.append(f"output_name {summary.output_name} in metadata, {name} in the run's config")
    problems += _name_vs_epoch(summary)
    return problems


def _disagree(key: str, want: float, sources) -> list[str]:
    """'network_dim 8 in metadata and tensors, 4 in the run's config' (sources that disagree, grouped by value)."""
    wrong: dict[str, list[str]] = {}
    for where, have in sources:
        if have is not None and not _close(float(have), float(want)):
            wrong.setdefault(f"{have:g}", []).append(where)
    return [f"{key} {value} in {' and '.join(where)}, {want:g} in the run's config" for value, where in wrong.items()]


def _name_vs_epoch(summary: LoraSummary) -> list[str]:
    if summary.epoch is None:
        return []
    from_name = epoch_from_filename(Path(summary.path), summary.output_name)
    if from_name is not None and from_name != summary.epoch:
        return [f"file name says epoch {from_name} but ss_epoch is {summary.epoch}"]
    if summary.is_final_name and summary.num_epochs is not None and summary.epoch != summary.num_epochs:
        return [f"final file but ss_epoch {summary.epoch} of {summary.num_epochs} (training stopped early?)"]
    return []
