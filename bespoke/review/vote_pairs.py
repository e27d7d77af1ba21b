"""What the vote page asks: the candidates to compare (from the reviewed runs' reports) and which pair next.

A pair is two candidates of the same prompt and seed from two different epochs (of one run, or of two runs),
never a degenerate sample (the eye needs no help there). The next pair for a voter is one they have seen the
fewest times (no pair twice until every pair is seen), and among those the most informative: a pair of two
epochs the score cannot separate (both in their run's Best.tied: indistinguishable from the highest at 95 %)
first, then the pair whose weaker epoch is closest to the best score, then the closer of the two scores, then
the pair with the fewest votes from anyone, then chance.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from bespoke.errors import UsageError
from bespoke.review.records import ProcessReport
from bespoke.review.votes import Item, Vote

EPOCHS_HELP = ("Epochs to compare: all (every trained epoch), best (each run's best epoch), or a list such as "
               "5,8,10 or 3-10 (default: all for one run, best for several).")


@dataclass(frozen=True)
class Source:
    """One reviewed run (or folder) as the vote page needs it: its id, folder, report and the method it shows."""

    run_id: str
    label: str
    folder: Path
    report: ProcessReport
    method: str


def parse_epochs(spec: str | None, runs: int) -> str | set[int]:
    """--epochs as "all", "best" or a set of epoch numbers."""
    spec = (spec or ("all" if runs == 1 else "best")).strip().lower()
    if spec in ("all", "best"):
        return spec
    chosen: set[int] = set()
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise UsageError(f"--epochs {spec!r}: all, best, or numbers like 5,8,10 or 3-10")
        low, high = int(match[1]), int(match[2] or match[1])
        chosen.update(range(min(low, high), max(low, high) + 1))
    return chosen


def _epochs_of(source: Source, spec: str | set[int]) -> set[int]:
    trained = {s.epoch for s in source.report.samples if s.epoch is not None}
    if spec == "all":
        return {e for e in trained if e >= 1}
    if spec == "best":
        return {source.report.best.epoch} if source.report.best is not None else set()
    assert isinstance(spec, set)
    return spec & trained


def items_of(source: Source, spec: str | set[int]) -> list[Item]:
    """The candidates of `source` that can be voted on: chosen epochs, not degenerate, with a shown candidate."""
    epochs = _epochs_of(source, spec)
    out = []
    for s in source.report.samples:
        cand = s.candidates.get(source.method)
        if s.epoch in epochs and not s.degenerate and cand is not None:
            out.append(Item(source.run_id, s.epoch, s.file, cand.file, source.method, s.prompt_index, s.seed))
    return out


def match_key(item: Item, prompts: dict[tuple[str, str], str | None]) -> tuple:
    """Candidates are compared when this is equal: the prompt (its text when known, else its index) and seed."""
    text = prompts.get(item.key)
    return (text if text is not None else f"#{item.prompt_index}", item.seed)


@dataclass(frozen=True)
class Pair:
    """Two candidates to show side by side (in file order: `a` is the earlier)."""

    a: Item
    b: Item

    @property
    def key(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return (self.a.key, self.b.key)


def build_pairs(sources: Sequence[Source], spec: str | set[int]) -> tuple[list[Pair], dict]:
    """(every pair that can be voted on, {player (run, epoch): score total or None})."""
    items: list[Item] = []
    prompts: dict[tuple[str, str], str | None] = {}
    scores: dict[tuple[str, int], float | None] = {}
    for source in sources:
        found = items_of(source, spec)
        by_file = {s.file: s for s in source.report.samples}
        for item in found:
            prompts[item.key] = by_file[item.sample].prompt
        items += found
        for row in source.report.epochs:
            if row.epoch is not None:
                scores[(source.run_id, row.epoch)] = row.score.total
    groups: dict[tuple, list[Item]] = {}
    for item in items:
        groups.setdefault(match_key(item, prompts), []).append(item)
    pairs = [Pair(*sorted((x, y))) for group in groups.values() for x, y in combinations(group, 2)
             if x.player != y.player]
    if not pairs:
        raise UsageError("nothing to vote on: no two epochs share a prompt and seed with a usable candidate "
                         "(give more epochs with --epochs, or runs drawn from the same prompts)")
    return sorted(pairs, key=lambda p: p.key), scores


def tied_players(sources: Sequence[Source]) -> frozenset[tuple[str, int]]:
    """The (run, epoch) the score cannot separate from its run's highest epoch (Best.tied, the highest among
    them)."""
    return frozenset((s.run_id, e) for s in sources if s.report.best is not None for e in s.report.best.tied)


class PairChooser:
    """Picks the next pair for a voter (see the module doc); `reserved` pairs (on another page) come last;
    `tied`: the players the score cannot separate (tied_players)."""

    def __init__(self, pairs: Sequence[Pair], scores: dict, seed: int | None = None,
                 tied: frozenset = frozenset()) -> None:
        self.pairs = list(pairs)
        self.scores = scores
        self.tied = tied
        self._random = random.Random(seed)
        values = [v for v in scores.values() if v is not None]
        self._top = max(values) if values else 0.0

    def _score(self, item: Item) -> float:
        value = self.scores.get(item.player)
        return 0.0 if value is None else float(value)

    def informative(self, pair: Pair) -> tuple[bool, float, float]:
        """The pair's key, lowest first: not both tied, the weaker one's distance to the best, the gap."""
        sa, sb = self._score(pair.a), self._score(pair.b)
        undecided = pair.a.player in self.tied and pair.b.player in self.tied
        return (not undecided, round(self._top - min(sa, sb), 6), round(abs(sa - sb), 6))

    def seen(self, votes: Iterable[Vote], voter: str) -> Counter:
        """How many times `voter` has voted on each pair (votes in effect)."""
        return Counter(v.pair for v in votes if v.voter == voter)

    def next(self, votes: Sequence[Vote], voter: str, reserved: Iterable[tuple] = ()) -> Pair:
        mine = self.seen(votes, voter)
        everyone = Counter(v.pair for v in votes)
        held = set(reserved)
        return min(self.pairs, key=lambda p: (mine[p.key], p.key in held, *self.informative(p), everyone[p.key],
                                              self._random.random()))

    def progress(self, votes: Sequence[Vote], voter: str) -> dict:
        """{"round", "done", "total", "votes"}: this voter's pass over every pair (round 1 = the first)."""
        mine = self.seen(votes, voter)
        counts = [mine[p.key] for p in self.pairs]
        round_ = min(counts) + 1
        return {"round": round_, "done": sum(1 for c in counts if c >= round_), "total": len(self.pairs),
                "votes": sum(mine.values())}
