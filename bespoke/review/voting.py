"""`bespoke vote`: the runs voted on, where their votes are kept, and the ranking the votes give.

The votes of a set of runs live in the folder `bespoke review` writes for the same runs: `<run>/report/` for
one run (or `<folder>/bespoke_process/report/` for a folder of samples), `review-<hash>/` beside several, or
`--out DIR`. Rankings: per run, its epochs from the votes between its own epochs; with several runs, the
runs from the votes between candidates of different runs (bespoke.review.ranking for the rules).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from bespoke.errors import UsageError
from bespoke.review.build import Inputs, review_dir_for, view_of
from bespoke.review.calibration import Calibration, calibrate
from bespoke.review.html_data import label_views
from bespoke.review.profiles import Profile
from bespoke.review.ranking import Fit, Game, fit, head_to_head, head_to_head_text, verdict
from bespoke.review.records import ProcessReport
from bespoke.review.report import output_dirs
from bespoke.review.selection import WEIGHTS
from bespoke.review.vote_agreement import ScoreCheck, check_score, comparisons, epoch_terms
from bespoke.review.vote_pairs import PairChooser, Source, build_pairs, parse_epochs, tied_players
from bespoke.review.vote_session import VoteSession
from bespoke.review.votes import VOTES_FILE, Read, Vote, VotesFile, kept, merged, read_votes, votes_of


@dataclass(frozen=True)
class VoteRequest:
    """What `bespoke vote` was asked: the runs (folders), the epochs, the voter and where the votes go."""

    paths: tuple[Path, ...]
    epochs: str | None = None
    voter: str = "me"
    out_dir: Path | None = None
    outputs_dir: Path | None = None
    process: bool = True
    profile: Profile | None = None  # score the runs with this profile (the pairs' order, the score column)


def votes_path(paths: Sequence[Path], out_dir: Path | None = None, outputs_dir: Path | None = None) -> Path:
    """The votes file of these runs: in the folder `bespoke review` writes for the same runs."""
    if out_dir is not None:
        return Path(out_dir) / VOTES_FILE
    if len(paths) == 1:
        return output_dirs(Path(paths[0]))[1] / VOTES_FILE
    return review_dir_for(list(paths), outputs_dir) / VOTES_FILE


def votes_files(request: VoteRequest) -> list[Path]:
    """The votes files that may speak of these runs: theirs together, each run's own, and those of the
    multi-run review folders beside each run (review-<hash>/)."""
    paths = [votes_path(request.paths, request.out_dir, request.outputs_dir)]
    paths += [votes_path((p,)) for p in request.paths]
    paths += [found for p in request.paths for found in sorted(Path(p).parent.glob(f"review-*/{VOTES_FILE}"))]
    return list(dict.fromkeys(paths))


def kept_candidates(run: Path, out_dir: Path | None = None) -> list[tuple[str, str]]:
    """(sample file, method) of every candidate of `run` whose latest mark in any of its votes files is keep."""
    run_id = view_of(run, process=False).run_id
    marks = kept(gather_votes(VoteRequest((Path(run),), out_dir=out_dir)).records)
    return [(mark.item.sample, mark.item.method) for (owner, _), mark in marks.items() if owner == run_id]


def gather_votes(request: VoteRequest) -> Read:
    """Every record of `votes_files(request)`, merged."""
    return merged(read_votes(path) for path in votes_files(request))


def load_sources(request: VoteRequest) -> list[Source]:
    """Each run's report (processed first when stale, like `review`), the candidate it shows, and a label
    unique among the runs (as the review page labels them)."""
    if not request.paths:
        raise UsageError("vote: give at least one run folder, run id or folder of samples")
    views = [view_of(path, process=request.process, inputs=Inputs(profile=request.profile)) for path in request.paths]
    if len({v.run_id for v in views}) != len(views):
        raise UsageError("vote: the same run was given twice")
    label_views(views)
    sources = []
    for path, view in zip(request.paths, views, strict=True):
        if view.method is None:
            raise UsageError(f"{path}: its report has no candidates; run `bespoke process {path}`")
        sources.append(Source(view.run_id, view.label, view.run_dir, view.report, view.method))
    return sources


def open_session(request: VoteRequest, seed: int | None = None) -> VoteSession:
    """A session on `request`'s runs: every pair that can be voted on, and the votes file."""
    paths = tuple(dict.fromkeys(Path(p).resolve() for p in request.paths))
    request = replace(request, paths=paths)
    sources = load_sources(request)
    pairs, scores = build_pairs(sources, parse_epochs(request.epochs, len(sources)))
    votes = VotesFile(votes_path(paths, request.out_dir, request.outputs_dir))
    return VoteSession(sources, PairChooser(pairs, scores, seed, tied_players(sources)), votes, request.voter, seed)


def games_of(votes: Sequence[Vote], player: Callable[[Vote], tuple[Hashable, Hashable] | None]) -> list[Game]:
    """The games of the votes `player` maps to two players (None: the vote is not about these players)."""
    out = []
    for vote in votes:
        players = player(vote)
        if players is None or players[0] == players[1]:
            continue
        score = {"a": 1.0, "b": 0.0, "same": 0.5}.get(vote.answer)
        out.append(Game(players[0], players[1], score))
    return out


@dataclass(frozen=True)
class Ranked:
    """One player's place: its name, its strength against the leader's (theta - the leader's, 0 for the
    leader) with the 95 % interval of that difference, the chance the leader is better (with its interval),
    the votes it was in, and its score."""

    player: Hashable
    name: str
    behind: float
    low: float
    high: float
    leader_better: tuple[float, float, float] | None
    votes: int
    score: float | None


@dataclass
class Ranking:
    """A ranking of epochs (of one run) or of runs, with the head-to-head lines and the recommendation."""

    title: str
    kind: str  # "epochs" | "runs"
    votes: int
    rows: list[Ranked] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    verdict: str = ""
    fit: Fit | None = None


def rank(title: str, kind: str, games: list[Game], name: Callable[[Hashable], str],
         scores: dict | None = None) -> Ranking:
    """The Bradley-Terry ranking of `games`, in rows and words."""
    players = sorted({p for g in games for p in (g.first, g.second)}, key=str)
    if not games:
        return Ranking(title, kind, 0, verdict="no votes yet")
    result = fit(players, games)
    order = result.order()
    rows = []
    for player in order:
        behind, low, high = result.difference(player, order[0])
        better = None if player == order[0] else result.beats(order[0], player)
        n = sum(1 for g in games if player in (g.first, g.second))
        rows.append(Ranked(player, name(player), behind, low, high, better, n, (scores or {}).get(player)))
    pairs = [(order[0], p) for p in order[1:]] + list(zip(order[1:], order[2:], strict=False))
    lines = []
    for first, second in dict.fromkeys(pairs):
        h = head_to_head(games, first, second)
        if h is not None:
            lines.append(head_to_head_text(h, name))
    return Ranking(title, kind, len(games), rows, lines, verdict(result, name), result)


def _within(run: str) -> Callable[[Vote], tuple[Hashable, Hashable] | None]:
    """A vote between two epochs of `run` as its two epochs (None for any other vote)."""
    return lambda v: (v.a.epoch, v.b.epoch) if v.a.run == run and v.b.run == run else None


def rankings(sources: Sequence[Source], read: Read, voter: str | None = None) -> list[Ranking]:
    """Per run the ranking of its epochs; with several runs, the ranking of the runs (every voter's votes
    merged, or one voter's)."""
    votes = votes_of(read.records, voter)
    labels = {s.run_id: s.label for s in sources}
    out = []
    for source in sources:
        scores = {row.epoch: row.score.total for row in source.report.epochs}
        games = games_of(votes, _within(source.run_id))
        out.append(rank(source.label, "epochs", games, lambda e: f"epoch {e}", scores))
    if len(sources) > 1:
        games = games_of(votes, lambda v: (v.a.run, v.b.run) if v.a.run in labels and v.b.run in labels else None)
        out.append(rank("runs", "runs", games, lambda r: labels.get(str(r), str(r))))
    return out


def score_checks(runs: Sequence[tuple[str, str, ProcessReport]], read: Read,
                 weights: Mapping[str, float] | None = None) -> list[tuple[str, ScoreCheck]]:
    """(label, the score against the votes) of each (label, run id, report) that has votes between its own
    epochs in `read` (the score under `weights`, default the stated ones)."""
    votes = votes_of(read.records)
    out = []
    for label, run_id, report in runs:
        own = [v for v in votes if v.a.run == run_id and v.b.run == run_id]
        if own:
            out.append((label, check_score(epoch_terms(report), run_id, own, weights)))
    return out


def calibrate_votes(sources: Sequence[Source], read: Read, voter: str | None = None) -> Calibration:
    """The score's term weights fitted to the votes between epochs of each run (pooled over the runs; every
    voter's votes, or one voter's), beside the stated defaults (bespoke.review.calibration)."""
    votes = votes_of(read.records, voter)
    found = [c for s in sources for c in comparisons(votes, s.run_id, epoch_terms(s.report))]
    return calibrate(found, WEIGHTS)
