"""When a run has peaked: the stop rules of `train --stop-when`, decided from the epochs run.json records.

- `peaked[:N]` (N = 2 unless given): the score (measured while training, bespoke.run.judge). An epoch counts as
  better only when its score is above the interval of the epoch it has to beat (the point score when the score
  has no interval): the first scored epoch is the one to beat, and each clearly better epoch takes its place.
  The run stops once N epochs have been scored after the one to beat without any of them clearly better.
- `val-loss[:N]`: the loss on the held-out designs. The run stops once N epochs have passed since the lowest
  validation loss without a lower one.
- `off`: no rule (overrides a preset's or bespoke.toml's).

A run resumed past an early stop (`train --continue`) counts its N epochs again from where it resumed
(`floor`). The stop itself is requested by bespoke.run.loop at a clean point (the epoch's checkpoint and state
saved, no save or sampling in progress).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bespoke.errors import UsageError
from bespoke.run.manifest import EpochRecord

KINDS = ("peaked", "val-loss")
DEFAULT_PATIENCE = 2


@dataclass(frozen=True)
class StopRule:
    """Stop when `kind` has not improved for `patience` epochs."""

    kind: str
    patience: int = DEFAULT_PATIENCE

    def __str__(self) -> str:
        return f"{self.kind}:{self.patience}"

    @property
    def needs(self) -> str:
        """What the rule reads: 'score' or 'validation loss'."""
        return "score" if self.kind == "peaked" else "validation loss"


@dataclass(frozen=True)
class StopDecision:
    """A rule (or the budget) says: stop after `after_epoch`, for `reason`; `best_epoch` is the rule's best."""

    rule: str
    reason: str
    after_epoch: int
    best_epoch: int | None = None


def parse_stop_rule(text: str | None, source: str = "--stop-when") -> StopRule | None:
    """`peaked`, `peaked:3`, `val-loss:2` or `off` (None); a one-line UsageError otherwise."""
    if text is None or not str(text).strip() or str(text).strip() == "off":
        return None
    kind, _, count = str(text).strip().partition(":")
    if kind not in KINDS:
        raise UsageError(f"{source} {text!r}: choose peaked[:N] (the score), val-loss[:N] (the held-out loss) or "
                         "off, e.g. peaked:2")
    if not count:
        return StopRule(kind)
    if not count.isdigit() or int(count) < 1:
        raise UsageError(f"{source} {text!r}: N is a whole number of epochs, at least 1 (e.g. {kind}:2)")
    return StopRule(kind, int(count))


def best_scored(records: Sequence[EpochRecord]) -> EpochRecord | None:
    """The epoch with the highest score (ties: the earlier), or None when none is scored."""
    scored = [r for r in records if r.score is not None]
    return min(scored, key=lambda r: (-(r.score or 0.0), r.epoch)) if scored else None


def _judged(records: Sequence[EpochRecord], floor: int) -> list[EpochRecord]:
    """The scored epochs up to the newest one judged without a gap (an epoch that could not be scored is judged
    too: it counts as not better)."""
    out: list[EpochRecord] = []
    for record in sorted(records, key=lambda r: r.epoch):
        if record.score is None and record.score_error is None:
            if record.epoch > floor:
                break
            continue
        out.append(record)
    return out


def _peaked(rule: StopRule, records: Sequence[EpochRecord], floor: int) -> StopDecision | None:
    judged = _judged(records, floor)
    scored = [r for r in judged if r.score is not None]
    if not scored:
        return None
    beat = scored[0]
    for record in scored[1:]:
        if record.score is not None and record.score > _upper(beat):
            beat = record
    last = judged[-1].epoch
    if last - max(beat.epoch, floor) < rule.patience:
        return None
    best = best_scored(scored)
    interval = (f"interval {beat.score_low:.3f}-{beat.score_high:.3f}" if beat.score_high is not None
                and beat.score_low is not None else f"score {beat.score:.3f}")
    best_note = f"; best epoch {best.epoch} ({best.score:.3f})" if best is not None and best.score is not None else ""
    return StopDecision(str(rule), f"peaked: no epoch scored above epoch {beat.epoch}'s {interval} in the "
                                   f"{last - max(beat.epoch, floor)} epochs after it{best_note}", last,
                        best.epoch if best is not None else beat.epoch)


def _upper(record: EpochRecord) -> float:
    return record.score_high if record.score_high is not None else (record.score or 0.0)


def _loss_rising(rule: StopRule, records: Sequence[EpochRecord], floor: int) -> StopDecision | None:
    measured = [r for r in sorted(records, key=lambda r: r.epoch) if r.validation_loss is not None]
    if not measured:
        return None
    lowest = min(measured, key=lambda r: (r.validation_loss or 0.0, r.epoch))
    last = measured[-1].epoch
    if last - max(lowest.epoch, floor) < rule.patience:
        return None
    return StopDecision(str(rule), f"val-loss: the validation loss has not gone below epoch {lowest.epoch}'s "
                                   f"{lowest.validation_loss:.4f} in the {last - max(lowest.epoch, floor)} epochs "
                                   f"after it", last, lowest.epoch)


def decide(rule: StopRule, records: Sequence[EpochRecord], floor: int = 0) -> StopDecision | None:
    """Whether `rule` stops the run now, given the epochs recorded so far (`floor`: the epoch a resume past an
    earlier stop started from)."""
    return _peaked(rule, records, floor) if rule.kind == "peaked" else _loss_rising(rule, records, floor)
