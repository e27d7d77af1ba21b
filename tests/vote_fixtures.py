"""Helpers for the vote tests: a small simulated run processed for real, and items to vote on."""

from __future__ import annotations

from pathlib import Path

from review_fixtures import simulated_run

from bespoke.review.votes import Item


def processed_run(outputs: Path, run_id: str = "64-vote-0a1b2c3d", prompts: int = 3, epochs: int = 4) -> Path:
    """A planned run with simulated samples (epoch 0 and 1..epochs), processed by bespoke's own process."""
    from bespoke.review.process import process_run

    run_dir = simulated_run(outputs, run_id, resolution=64, prompts=prompts, epochs=epochs, process=False)
    process_run(run_dir)
    return run_dir


def item(epoch: int, prompt: int = 0, run: str = "run-a") -> Item:
    """A made-up candidate of `run`'s `epoch` (files need not exist for the votes file)."""
    name = f"{run}_e{epoch:06d}_{prompt:02d}_20261207000000_{prompt + 1}"
    return Item(run, epoch, f"model/sample/{name}.png", f"candidates/grid/{name}.png", "grid", prompt, prompt + 1)
