"""Scoring epochs while the run trains: the protocol the supervisor speaks, implemented above run/.

The supervisor hands each complete epoch (bespoke.run.events.EpochFinished) to the run's judge with `submit`
(on the supervising thread: it must not block), collects what has been judged with `collect` at its tick, and
records each `Verdict` in run.json itself (it is the one writer of run.json) before it tells the observer
(EpochScored). At the end of the attempt `close(wait)` stops the judge, waiting up to `wait` seconds for the
epochs already submitted, and returns their verdicts. bespoke.pipeline.live implements it with process's
candidates and score; tests use doubles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bespoke.run.events import EpochFinished


@dataclass(frozen=True)
class Verdict:
    """The score of one epoch (`low`/`high`: its interval, when the score has one), or why there is none."""

    epoch: int
    score: float | None
    low: float | None = None
    high: float | None = None
    samples: int = 0
    error: str | None = None


class EpochJudge(Protocol):
    """Scores complete epochs in the background (see the module docstring)."""

    def submit(self, epoch: EpochFinished) -> None: ...

    def collect(self) -> list[Verdict]: ...

    def close(self, wait: float) -> list[Verdict]: ...


# one judge per run: a sweep's runs each get their own, made from the run folder when the run starts
JudgeFactory = Callable[[Path], EpochJudge]
