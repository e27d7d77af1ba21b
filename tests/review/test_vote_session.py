"""What the vote page is asked to show: pairs of the same prompt and seed from two epochs, the most informative
first and none twice before all are seen, sides drawn at random, nothing on the page naming a run, epoch or
file; answers, marks and undo as they land in the votes file."""

from __future__ import annotations

import io
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from vote_fixtures import item, processed_run

from bespoke.errors import UsageError
from bespoke.review.vote_pairs import Pair, PairChooser, build_pairs, parse_epochs
from bespoke.review.vote_session import SessionError
from bespoke.review.votes import Mark, Vote, read_votes
from bespoke.review.voting import VoteRequest, load_sources, open_session, votes_path


@pytest.fixture
def run(tmp_path):
    return processed_run(tmp_path / "outputs")


def test_pairs_are_the_same_prompt_and_seed_from_two_trained_epochs(run):
    sources = load_sources(VoteRequest((run,)))
    pairs, scores = build_pairs(sources, parse_epochs(None, 1))
    assert len(pairs) == 3 * 6  # 3 prompts x C(4 epochs, 2); epoch 0 (the untrained model) is not voted on
    for pair in pairs:
        assert pair.a.epoch != pair.b.epoch and 0 not in (pair.a.epoch, pair.b.epoch)
        assert (pair.a.prompt_index, pair.a.seed) == (pair.b.prompt_index, pair.b.seed)
        assert (run / pair.a.candidate).is_file() and (run / pair.b.sample).is_file()
    assert set(scores) == {(run.name, e) for e in range(1, 5)}
    chosen, _ = build_pairs(sources, parse_epochs("2,4", 1))
    assert {(p.a.epoch, p.b.epoch) for p in chosen} == {(2, 4)} and len(chosen) == 3


def test_epochs_option():
    assert parse_epochs(None, 1) == "all" and parse_epochs(None, 2) == "best"
    assert parse_epochs("3-5, 8", 1) == {3, 4, 5, 8}
    with pytest.raises(UsageError, match="--epochs 'last'"):
        parse_epochs("last", 1)


def test_one_epoch_gives_nothing_to_vote_on(run):
    with pytest.raises(UsageError, match="nothing to vote on"):
        open_session(VoteRequest((run,), epochs="3"))


def test_every_pair_once_before_any_twice_and_the_closest_to_the_best_first(run):
    session = open_session(VoteRequest((run,), voter="alice"), seed=1)
    total = len(session.chooser.pairs)
    scores = session.chooser.scores
    top = max(v for v in scores.values() if v is not None)
    seen, gaps = [], []
    for _ in range(total):
        shown = session.next("page")
        token = shown["token"]
        item = session._shown[token]
        seen.append(item.pair_key)
        gaps.append(top - min(scores[item.left.player], scores[item.right.player]))
        session.answer(token, "left")
    assert len(set(seen)) == total  # a whole round, no pair twice
    assert gaps == sorted(gaps)  # epochs the score cannot tell from the best come first
    again = session.next("page")
    assert again["progress"] == {"round": 2, "done": 0, "total": total, "votes": total}


def test_the_page_never_says_which_is_which_and_sides_are_drawn_at_random(run):
    session = open_session(VoteRequest((run,), voter="alice"), seed=5)
    lefts = Counter()
    for _ in range(300):
        shown = session.next("page")
        text = json.dumps(shown)
        for side in ("left", "right"):
            item = session._shown[shown["token"]].side(side)
            for secret in (item.run, item.sample, item.candidate, f"e{item.epoch:06d}"):
                assert secret not in text
        placed = session._shown[shown["token"]]
        lefts[placed.left < placed.right] += 1
    assert 120 < lefts[True] < 180  # the earlier epoch is on the left about half the time


def test_images_are_the_candidate_and_sample_reencoded(run):
    session = open_session(VoteRequest((run,), voter="alice"), seed=2)
    shown = session.next("page")
    placed = session._shown[shown["token"]]
    for side in ("left", "right"):
        png = session.image(shown["token"], side, "candidate")
        with Image.open(io.BytesIO(png)) as img, Image.open(run / placed.side(side).candidate) as original:
            assert img.format == "PNG" and not img.text  # no text chunks that could name the file
            assert img.size == (24, 24)
            assert (np.asarray(img.convert("RGB")) == np.asarray(original.convert("RGB"))).all()
        with Image.open(io.BytesIO(session.image(shown["token"], side, "sample"))) as sample:
            assert sample.size == (64, 64)
    with pytest.raises(SessionError):
        session.image("not-a-token", "left", "candidate")


def test_answer_mark_and_undo_in_the_votes_file(run):
    session = open_session(VoteRequest((run,), voter="alice"), seed=3)
    path = votes_path((run,))
    shown = session.next("page")
    placed = session._shown[shown["token"]]
    session.mark(shown["token"], "right", "keep", "m1")
    assert session.answer(shown["token"], "right")
    with pytest.raises(SessionError):  # the answered pair is no longer on show
        session.answer(shown["token"], "left")
    [mark, vote] = read_votes(path).records
    assert isinstance(mark, Mark) and mark.item == placed.right and mark.mark == "keep"
    assert isinstance(vote, Vote) and vote.id == shown["token"] and vote.voter == "alice"
    chosen = vote.a if vote.answer == "a" else vote.b
    assert chosen == placed.right and (vote.a if vote.left == "a" else vote.b) == placed.left
    session.next("page")
    assert session.undo("page", "u1") == "vote"
    back = session.next("page")
    assert session._shown[back["token"]].pair_key == placed.pair_key  # the taken-back pair is asked again
    assert session.undo("page", "u2") == "mark" and session.undo("page", "u3") is None
    assert [r.id for r in read_votes(path).records] == ["m1", vote.id, "u1", "u2"]


def test_a_reload_replaces_the_pair_on_show_and_two_pages_get_different_pairs(run):
    session = open_session(VoteRequest((run,), voter="alice"), seed=4)
    first = session.next("page")
    again = session.next("page")  # the page was reloaded
    with pytest.raises(SessionError, match="no longer on show"):
        session.answer(first["token"], "left")
    other = session.next("other-browser")
    assert session._shown[other["token"]].pair_key != session._shown[again["token"]].pair_key
    assert session.answer(again["token"], "same") and session.answer(other["token"], "neither")
    assert len(read_votes(votes_path((run,))).records) == 2


def test_two_runs_are_compared_at_their_best_epochs_and_ranked_as_runs(tmp_path):
    from bespoke.review.voting import gather_votes, rankings

    first = processed_run(tmp_path / "outputs", "64-vote-0a1b2c3d")
    second = processed_run(tmp_path / "outputs", "64-other-9f8e7d6c")
    request = VoteRequest((first, second), voter="alice")
    session = open_session(request, seed=6)
    best = {s.run_id: s.report.best.epoch for s in session.sources.values() if s.report.best is not None}
    assert len(session.chooser.pairs) == 3  # one pair per prompt and seed: the two runs' best epochs
    for pair in session.chooser.pairs:
        assert pair.a.run != pair.b.run and {pair.a.epoch, pair.b.epoch} <= set(best.values())
    assert session.votes.path == votes_path((first, second)) and session.votes.path.parent.name.startswith("review-")
    for _ in range(9):
        shown = session.next("page")
        placed = session._shown[shown["token"]]
        session.answer(shown["token"], "left" if placed.left.run == second.name else "right")
    read = gather_votes(VoteRequest((first, second)))
    *per_run, runs = rankings(load_sources(VoteRequest((first, second))), read)
    assert [r.votes for r in per_run] == [0, 0]  # no votes between epochs of one run
    assert runs.kind == "runs" and runs.rows[0].player == second.name and runs.votes == 9
    assert runs.lines == ["64 px · 64-other-9f8e7d6c (simulated) over 64 px · 64-vote-0a1b2c3d (simulated): "
                          "100 % of 9 votes, 95 % interval 70 %–100 %"]


def test_epochs_the_score_cannot_separate_are_asked_first():
    # epochs 2 and 4 are tied with the highest (Best.tied), 3 is told apart though its score is closer to 4's
    pairs = [Pair(*sorted((item(x), item(y)))) for x, y in ((3, 4), (2, 4))]
    scores = {("run-a", 2): 0.60, ("run-a", 3): 0.70, ("run-a", 4): 0.72}
    tied = frozenset({("run-a", 2), ("run-a", 4)})
    assert PairChooser(pairs, scores, seed=0, tied=tied).next([], "alice").a.epoch == 2
    assert PairChooser(pairs, scores, seed=0).next([], "alice").a.epoch == 3  # without it: the closest scores
