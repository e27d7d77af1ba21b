"""The score against the votes of a run: its agreement, the epochs where they disagree, and the lines review,
process and vote print; --calibrate saves a profile only when it agrees better."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from vote_fixtures import item, processed_run

from bespoke.cli import main
from bespoke.review.profiles import load_profiles
from bespoke.review.vote_agreement import RunTerms, check_lines, check_score, epoch_terms
from bespoke.review.vote_pairs import build_pairs, parse_epochs
from bespoke.review.votes import Read, VotesFile, make_vote, merged, read_votes
from bespoke.review.voting import VoteRequest, load_sources, votes_path

EPOCH_TERMS = {5: {"pixel_art": 0.9, "few_colours": 0.9}, 8: {"pixel_art": 0.6, "few_colours": 1.0},
               9: {"pixel_art": 0.3, "few_colours": 0.3}}  # epoch 0 is never scored (epoch_terms leaves it out)
TERMS = RunTerms({item(e, prompt=p).sample: (e, t) for e, t in EPOCH_TERMS.items() for p in range(3)},
                 ("pixel_art", "few_colours"))  # three samples an epoch, all alike
WEIGHTS = {"pixel_art": 1.0, "few_colours": 1.0}


def _votes(spec) -> list:
    """(winner epoch, loser epoch or 'same', count) -> votes of run-a."""
    out = []
    for first, second, count, answer in spec:
        for i in range(count):
            out.append(make_vote("alice", item(first, prompt=i % 3), item(second, prompt=i % 3), answer))
    return out


def test_agreement_and_the_epochs_where_the_votes_and_the_score_disagree():
    votes = _votes([(8, 5, 18, "left"), (8, 5, 3, "right"), (5, 9, 6, "left"), (8, 9, 3, "same"),
                    (8, 9, 2, "neither")])
    check = check_score(TERMS, "run-a", votes, WEIGHTS)
    assert check.agreement is not None and check.agreement.votes == 27  # same and neither are not decisive
    assert check.agreement.share == pytest.approx((3 + 6) / 27)
    [d] = check.disagreements
    assert (d.votes.first, d.votes.second, d.votes.votes) == (8, 5, 21) and d.scores == pytest.approx((0.8, 0.9)) and d.sure
    lines = check_lines(check)
    assert lines[0].startswith("the score against the votes: it agrees with 33 % of 27 votes (95 % interval")
    assert lines[1].startswith("  disagree: epoch 8 over epoch 5: 86 % of 21 votes")
    few = check_score(TERMS, "run-a", _votes([(8, 5, 4, "left"), (8, 5, 1, "right")]), WEIGHTS)
    assert not few.disagreements[0].sure and "95 % sure" not in check_lines(few)[1]
    assert lines[1].endswith("the score has epoch 5 0.900 over epoch 8 0.800 (the votes are 95 % sure)")


def test_other_runs_and_unscored_epochs_are_left_out():
    votes = _votes([(5, 9, 4, "left")]) + [make_vote("alice", item(5, run="run-b"), item(9, run="run-b"), "right")]
    votes.append(make_vote("alice", item(0), item(5), "left"))  # epoch 0 is never scored
    check = check_score(TERMS, "run-a", votes, WEIGHTS)
    assert check.agreement is not None and check.agreement.votes == 4 and check.agreement.share == 1.0
    assert check.disagreements == []
    assert check_lines(check_score(TERMS, "run-c", votes, WEIGHTS))[0].endswith("no decisive votes between "
                                                                                 "two of this run's epochs yet")


def test_merged_files_count_each_record_once_in_time_order(tmp_path):
    a, b = VotesFile(tmp_path / "a.jsonl"), VotesFile(tmp_path / "b.jsonl")
    one = make_vote("alice", item(1), item(2), "left", vote_id="one")
    two = make_vote("alice", item(1), item(3), "left", vote_id="two")
    b.append(two)
    a.append(one)
    a.append(two)
    read = merged([read_votes(a.path), read_votes(b.path), Read()])
    assert sorted(r.id for r in read.records) == ["one", "two"]
    assert [r.time for r in read.records] == sorted(r.time for r in read.records)


def _vote_for(run, voter: str, prefer, rounds: int = 2) -> None:
    pairs, _ = build_pairs(load_sources(VoteRequest((run,))), parse_epochs(None, 1))
    votes = VotesFile(votes_path((run,)))
    for _ in range(rounds):
        for pair in pairs:
            votes.append(make_vote(voter, pair.a, pair.b, "left" if prefer(pair.a.epoch, pair.b.epoch) else "right"))


def _sample_agreement(run) -> str:
    """The share of the run's decisive votes whose preferred candidate's sample the report scores higher (score
    ties half), as the lines print it: the score scores samples."""
    from bespoke.review.report import load_report
    from bespoke.review.selection import sample_score, used_terms

    report = load_report(run)  # report.json rounds scores to 4 places: two samples a hair apart look tied there
    scores = {s.file: sample_score(s, used_terms(report.samples)) for s in report.samples}
    decisive = [v for v in read_votes(votes_path((run,))).records if v.answer in ("a", "b")]
    hits = 0.0
    for v in decisive:
        won, lost = (v.a, v.b) if v.answer == "a" else (v.b, v.a)
        hits += 0.5 if scores[won.sample] == scores[lost.sample] else float(scores[won.sample] > scores[lost.sample])
    return f"{100 * hits / len(decisive):.0f} % of {len(decisive)} votes"


def test_review_and_process_print_the_agreement(tmp_path):
    run = processed_run(tmp_path / "outputs")  # its score ranks the epochs 4 > 3 > 2 > 1
    quiet = CliRunner().invoke(main, ["review", str(run)])
    assert quiet.exit_code == 0 and "the score against the votes" not in quiet.output  # no votes: no line
    _vote_for(run, "alice", lambda a, b: (a == 3) if 3 in (a, b) else a > b)  # epoch 3 over everything
    review = CliRunner().invoke(main, ["review", str(run)])
    assert review.exit_code == 0, review.output
    share = _sample_agreement(run)  # 72 %: epoch 4's samples over epoch 3's, and some samples out of step
    assert share.endswith("of 36 votes") and f"the score against the votes: it agrees with {share}" in review.output
    assert "disagree: epoch 3 over epoch 4: 100 % of 6 votes" in review.output
    process = CliRunner().invoke(main, ["process", str(run)])
    assert process.exit_code == 0 and f"it agrees with {share}" in process.output
    report = CliRunner().invoke(main, ["vote", str(run), "--report"])
    assert f"it agrees with {share}" in report.output and "→ epoch 3 leads" in report.output
    assert "the votes are 95 % sure" not in report.output  # 6 votes: the ranking cannot yet separate 3 from 4


def test_calibrate_saves_a_profile_beside_the_defaults(tmp_path, isolated_project):
    run = processed_run(tmp_path / "outputs", epochs=4)
    few = CliRunner().invoke(main, ["vote", str(run), "--calibrate"])
    assert few.exit_code != 0 and "--calibrate: 0 usable votes" in few.output
    _vote_for(run, "alice", lambda a, b: a > b, rounds=3)  # the later epoch, as the score does
    result = CliRunner().invoke(main, ["vote", str(run), "--calibrate", "--profile", "alice"])
    assert result.exit_code == 0, result.output
    share = _sample_agreement(run)  # the later epoch is not always the higher-scored sample
    assert f"default weights: the score agrees with {share}" in result.output
    assert "calibrated weights: it agrees with" in result.output and "saved as score profile alice" in result.output
    [profile] = load_profiles(isolated_project).values()
    assert profile.name == "alice" and profile.votes == 54
    assert set(profile.weights) == {"clean_cells", "feature_contrast", "few_colours", "pixel_art"}  # measured here
    assert profile.sources == (str(votes_path((run,))),)
    assert f"{100 * (profile.agreement_default or 0):.0f} % of 54 votes" == share
    bad = CliRunner().invoke(main, ["vote", str(run), "--calibrate", "--profile", "no spaces"])
    assert bad.exit_code != 0 and "letters, digits, - and _ only" in bad.output


def test_epoch_terms_are_the_reports_trained_epochs(tmp_path):
    from bespoke.review.report import load_report

    run = processed_run(tmp_path / "outputs")
    report = load_report(run)
    from bespoke.review.selection import WEIGHTS as STATED

    terms = epoch_terms(report)
    assert sorted(terms.epochs()) == [1, 2, 3, 4]
    for row in report.epochs:  # the one total: the report's epoch scores, from the recorded terms
        if row.epoch in terms.epochs():
            assert terms.epoch_score(row.epoch, STATED) == pytest.approx(row.score.total, abs=1e-3)
