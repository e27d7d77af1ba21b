"""Keep or reject on the vote page, then `bespoke export RUN --kept`: exactly the kept candidates, whatever
their epoch (a keep taken back by a reject or an undo is not kept)."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image
from vote_fixtures import processed_run

from bespoke.cli import main
from bespoke.review.votes import VotesFile, make_mark
from bespoke.review.voting import VoteRequest, kept_candidates, open_session, votes_path


def _mark_some(run):
    """Alice keeps five candidates of several epochs on the page and takes the fifth back; Bob rejects the
    first (the latest mark decides, whoever made it). Returns (the kept, the taken-back one)."""
    session = open_session(VoteRequest((run,), voter="alice"), seed=9)
    marked: list = []
    while len(marked) < 5:
        shown = session.next("page")
        placed = session._shown[shown["token"]]
        for side in ("left", "right"):
            if placed.side(side) not in marked and len(marked) < 5:
                session.mark(shown["token"], side, "keep", f"keep-{len(marked)}")
                marked.append(placed.side(side))
        session.answer(shown["token"], "same")
    session.undo("page", "u1")  # the "same" vote
    assert session.undo("page", "u2") == "mark"  # the fifth keep
    VotesFile(votes_path((run,))).append(make_mark("bob", marked[0], "reject"))
    return marked[1:4], marked[4]


def test_export_kept_writes_exactly_the_kept_candidates(tmp_path):
    run = processed_run(tmp_path / "outputs")
    kept, undone = _mark_some(run)
    assert sorted(kept_candidates(run)) == sorted((i.sample, i.method) for i in kept)
    result = CliRunner().invoke(main, ["export", str(run), "--kept", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["kept"] is True and manifest["epoch"] is None and manifest["out_dir"] == str(
        run / "export" / "kept")
    by_sample = {e["sample"]: e for e in manifest["images"]}
    assert set(by_sample) == {i.sample.split("/")[-1] for i in kept}
    assert undone.sample.split("/")[-1] not in by_sample and len({i.epoch for i in kept}) > 1
    for item in kept:
        entry = by_sample[item.sample.split("/")[-1]]
        assert entry["epoch"] == item.epoch and entry["png"].startswith(f"png/e{item.epoch:03d}_")
        with Image.open(run / "export" / "kept" / entry["png"]) as got, Image.open(run / item.candidate) as want:
            assert (np.asarray(got.convert("RGB")) == np.asarray(want.convert("RGB"))).all()
    again = CliRunner().invoke(main, ["export", str(run), "--kept"])
    assert again.exit_code == 0 and "kept candidates (grid): 3 images" in again.output


def test_kept_needs_marks_and_no_epoch(tmp_path):
    run = processed_run(tmp_path / "outputs")
    none = CliRunner().invoke(main, ["export", str(run), "--kept"])
    assert none.exit_code != 0 and "no candidate is marked keep" in none.output
    assert not (run / "export").exists()
    _mark_some(run)
    both = CliRunner().invoke(main, ["export", str(run), "--kept", "--epoch", "2"])
    assert both.exit_code != 0 and "--epoch with --kept" in both.output
