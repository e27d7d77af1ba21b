"""`bespoke vote`: the page served and announced (address, the exact ssh -L line), Ctrl-C stops it; --report
prints the ranking in words from the votes file."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request

import psutil
import pytest
from click.testing import CliRunner
from vote_fixtures import processed_run

from bespoke.cli import main
from bespoke.review.vote_pairs import build_pairs, parse_epochs
from bespoke.review.votes import VotesFile, make_vote, read_votes
from bespoke.review.voting import VoteRequest, load_sources, votes_path


def _vote_for_later_epochs(run, voter: str, rounds: int) -> None:
    """A voter who prefers the later epoch of every pair, every time."""
    pairs, _ = build_pairs(load_sources(VoteRequest((run,))), parse_epochs(None, 1))
    votes = VotesFile(votes_path((run,)))
    for _ in range(rounds):
        for pair in pairs:
            later = pair.b if pair.b.epoch > pair.a.epoch else pair.a
            votes.append(make_vote(voter, pair.a, pair.b, "left" if later == pair.a else "right"))


def test_report_prints_the_ranking_in_words(tmp_path):
    run = processed_run(tmp_path / "outputs")
    _vote_for_later_epochs(run, "alice", 2)
    _vote_for_later_epochs(run, "bob", 1)
    result = CliRunner().invoke(main, ["vote", str(run), "--report"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "votes in effect: alice 36, bob 18" in text
    assert re.search(r"epoch 4 over epoch 3: 100 % of 9 votes, 95 % interval 70 %–100 %", text), text
    assert "use epoch 4 (95 % confidence over every other one voted on)" in text
    alone = CliRunner().invoke(main, ["vote", str(run), "--report", "--voter", "bob"])
    assert "from bob's votes alone" in alone.output and "(18 votes)" in alone.output
    assert not (run / "report" / "index.html").exists()  # --report serves and builds nothing


def test_report_with_no_votes_yet(tmp_path):
    run = processed_run(tmp_path / "outputs")
    result = CliRunner().invoke(main, ["vote", str(run), "--report"])
    assert result.exit_code == 0 and "nobody yet" in result.output and "no votes yet" in result.output


@pytest.fixture
def vote_child():
    """Start `python -m bespoke vote ARGS…` (stdout and stderr piped, text) and make sure it is gone at the end
    on every path: a readline or a request that times out, a failed assertion, a child that ignores Ctrl-C
    (then it and every process it started are killed)."""
    children: list[subprocess.Popen] = []

    def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
        child = subprocess.Popen([sys.executable, "-m", "bespoke", "vote", *args], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
        children.append(child)
        return child

    yield start
    for child in children:
        _kill_tree(child)


def _kill_tree(child: subprocess.Popen) -> None:
    if child.poll() is not None:
        return
    try:
        tree = [psutil.Process(child.pid), *psutil.Process(child.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(tree, timeout=10)
    child.communicate()  # reap it and close its pipes


def _first_line(child: subprocess.Popen, timeout: float) -> str:
    """The child's first line of stdout, or "" when none comes within `timeout` s (readline alone would wait
    for ever on a child that hangs before printing)."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(child.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return line[0] if line else ""


def _stop(child: subprocess.Popen) -> str:
    """Ctrl-C the child and its stderr once it has stopped (a child still there after 30 s fails the test;
    the fixture kills it)."""
    child.send_signal(signal.SIGINT)
    try:
        return child.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        pytest.fail("bespoke vote did not stop within 30 s of Ctrl-C")


@pytest.mark.slow  # bespoke in a subprocess
def test_the_page_is_served_announced_and_stopped_by_ctrl_c(tmp_path, vote_child):
    run = processed_run(tmp_path / "outputs")
    env = {**os.environ, "SSH_CONNECTION": "203.0.113.7 50122 198.51.100.20 2222", "COLUMNS": "300"}
    child = vote_child([str(run), "--no-browser", "--voter", "eve"], env)
    first = _first_line(child, timeout=60)
    match = re.fullmatch(r"vote: (http://127\.0\.0\.1:(\d+)/)\n", first)
    assert match, f"first line {first!r}"
    url, port = match.group(1), match.group(2)
    page = urllib.request.urlopen(url, timeout=10).read().decode()
    secret = re.search(r'"secret": "([0-9a-f]{32})"', page).group(1)
    request = urllib.request.Request(url + "api/next?client=t", headers={"X-Bespoke-Secret": secret})
    token = json.loads(urllib.request.urlopen(request, timeout=10).read())["token"]
    body = json.dumps({"token": token, "answer": "same"}).encode()
    request = urllib.request.Request(url + "api/vote", data=body, method="POST",
                                     headers={"X-Bespoke-Secret": secret, "Content-Type": "application/json"})
    assert json.loads(urllib.request.urlopen(request, timeout=10).read())["written"]
    err = _stop(child)
    assert child.returncode == 0, err
    assert f"ssh -N -L {port}:127.0.0.1:{port} -p 2222 " in err and "@198.51.100.20" in err
    assert str(votes_path((run,))) in err and "18 pairs" in err
    [vote] = read_votes(votes_path((run,))).records
    assert vote.voter == "eve" and vote.answer == "same"
