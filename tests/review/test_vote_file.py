"""The votes file: records as documented, appends that lose and duplicate nothing (threads, processes, a crash
mid-write), undo as an appended record, merged voters, kept candidates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from vote_fixtures import item

from bespoke.review.votes import (
    VotesFile,
    in_effect,
    kept,
    make_mark,
    make_vote,
    read_votes,
    votes_of,
)

WRITER = textwrap.dedent("""
    import sys, threading
    from bespoke.review.votes import Item, VotesFile, make_vote
    path, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    votes = VotesFile(path)
    a = Item("run-a", 1, "model/sample/a.png", "candidates/grid/a.png", "grid", 0, 1)
    b = Item("run-a", 2, "model/sample/b.png", "candidates/grid/b.png", "grid", 0, 1)
    def write(thread):
        for i in range(count):
            votes.append(make_vote(tag, a, b, "left", vote_id=f"{tag}-{thread}-{i}"))
            votes.append(make_vote(tag, a, b, "right", vote_id=f"shared-{thread}-{i}"))
    threads = [threading.Thread(target=write, args=(t,)) for t in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
""")


def test_a_vote_line_holds_both_sides_the_side_shown_left_the_answer_time_voter_and_id(tmp_path):
    votes = VotesFile(tmp_path / "votes.jsonl")
    later, earlier = item(8), item(5)
    assert votes.append(make_vote("alice", later, earlier, "left", vote_id="v1"))
    line = json.loads((tmp_path / "votes.jsonl").read_text().splitlines()[0])
    assert line["kind"] == "vote" and line["id"] == "v1" and line["voter"] == "alice" and line["v"] == 1
    assert line["a"]["epoch"] == 5 and line["b"]["epoch"] == 8  # a pair is always written in the same order
    assert line["left"] == "b" and line["answer"] == "b"  # epoch 8 was shown left and chosen
    assert set(line["a"]) == {"run", "epoch", "sample", "candidate", "method", "prompt_index", "seed"}
    assert line["time"][:2] == "20" and "T" in line["time"]
    [vote] = votes_of(read_votes(tmp_path / "votes.jsonl").records)
    assert vote.a == earlier and vote.b == later and vote.answer == "b"


def test_the_same_id_is_written_once(tmp_path):
    votes = VotesFile(tmp_path / "votes.jsonl")
    assert votes.append(make_vote("alice", item(1), item(2), "same", vote_id="x"))
    assert not votes.append(make_vote("alice", item(1), item(2), "left", vote_id="x"))
    assert len((tmp_path / "votes.jsonl").read_text().splitlines()) == 1


@pytest.mark.slow  # two Python processes that import bespoke
def test_two_processes_with_two_threads_each_lose_and_duplicate_nothing(tmp_path):
    path = tmp_path / "votes.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, "60"], env=env)
               for tag in ("p1", "p2")]
    try:
        assert [w.wait(timeout=120) for w in writers] == [0, 0]
    finally:  # a writer that timed out is not left running
        for w in writers:
            w.kill()
            w.wait()
    lines = path.read_text(encoding="utf-8").splitlines()
    read = read_votes(path)
    assert read.skipped == 0 and len(lines) == len(read.records)
    ids = [r.id for r in read.records]
    assert len(ids) == len(set(ids))
    # each process wrote its own 2 x 60 and both tried the same 2 x 60 shared ids: those are written once
    assert sorted(ids) == sorted([f"{p}-{t}-{i}" for p in ("p1", "p2") for t in range(2) for i in range(60)]
                                 + [f"shared-{t}-{i}" for t in range(2) for i in range(60)])


@pytest.mark.slow  # a Python process that imports bespoke, killed
def test_a_writer_killed_mid_stream_leaves_only_whole_records_and_the_next_append_reads(tmp_path):
    path = tmp_path / "votes.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "k", "100000"], env=env)
    deadline = time.monotonic() + 60
    while (not path.exists() or path.stat().st_size < 20_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    before = read_votes(path)
    assert before.skipped <= 1 and len(before.records) > 50
    VotesFile(path).append(make_vote("after", item(1), item(2), "left", vote_id="after-the-crash"))
    after = read_votes(path)
    assert after.skipped == before.skipped and after.records[-1].id == "after-the-crash"
    assert len(after.records) == len(before.records) + 1


def test_a_torn_last_line_is_ignored_and_the_next_record_starts_on_its_own_line(tmp_path):
    path = tmp_path / "votes.jsonl"
    votes = VotesFile(path)
    votes.append(make_vote("alice", item(1), item(2), "left", vote_id="one"))
    whole = path.read_bytes()
    votes.append(make_vote("alice", item(1), item(3), "left", vote_id="two"))
    path.write_bytes(path.read_bytes()[: len(whole) + 40])  # the second record cut off by a crash
    assert [r.id for r in read_votes(path).records] == ["one"] and read_votes(path).skipped == 1
    votes.append(make_vote("alice", item(2), item(3), "right", vote_id="three"))
    read = read_votes(path)
    assert [r.id for r in read.records] == ["one", "three"] and read.skipped == 1


def test_undo_is_an_appended_record_that_takes_back_the_voters_latest(tmp_path):
    path = tmp_path / "votes.jsonl"
    votes = VotesFile(path)
    votes.append(make_vote("alice", item(1), item(2), "left", vote_id="a1"))
    votes.append(make_vote("bob", item(1), item(2), "right", vote_id="b1"))
    votes.append(make_mark("alice", item(2), "keep", mark_id="m1"))
    before = path.read_bytes()
    assert votes.undo_last("alice", "u1").id == "m1"
    assert path.read_bytes().startswith(before)  # appended: nothing before it rewritten
    assert votes.undo_last("alice", "u1") is None  # the same undo request twice undoes once
    assert votes.undo_last("alice", "u2").id == "a1"
    assert votes.undo_last("alice", "u3") is None  # alice has nothing left; bob's vote is his
    read = read_votes(path)
    assert [r.id for r in in_effect(read.records)] == ["b1"]
    assert len(path.read_text().splitlines()) == 5


def test_two_voters_merge_and_the_latest_mark_decides_what_is_kept(tmp_path):
    votes = VotesFile(tmp_path / "votes.jsonl")
    votes.append(make_vote("alice", item(1), item(2), "left"))
    votes.append(make_vote("bob", item(1), item(2), "left"))
    votes.append(make_mark("alice", item(2), "keep"))
    votes.append(make_mark("alice", item(3), "keep"))
    votes.append(make_mark("bob", item(3), "reject"))
    records = read_votes(tmp_path / "votes.jsonl").records
    assert len(votes_of(records)) == 2 and len(votes_of(records, "bob")) == 1
    assert set(kept(records)) == {item(2).key}


def test_lines_other_tools_wrote_are_skipped_not_fatal(tmp_path):
    path = tmp_path / "votes.jsonl"
    path.write_text('{"note": "hand-written"}\nnot json\n{"v": 1, "kind": "vote", "id": "x"}\n')
    VotesFile(path).append(make_vote("alice", item(1), item(2), "neither", vote_id="ok"))
    read = read_votes(path)
    assert [r.id for r in read.records] == ["ok"] and read.skipped == 3


def test_threads_in_one_process_append_everything(tmp_path):
    votes = VotesFile(tmp_path / "votes.jsonl")

    def write(tag):
        for i in range(40):
            votes.append(make_vote(tag, item(1), item(2), "left", vote_id=f"{tag}{i}"))

    threads = [threading.Thread(target=write, args=(t,)) for t in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(read_votes(tmp_path / "votes.jsonl").records) == 160
