"""The vote page driven by a real headless Chromium (selenium + Debian's chromedriver): keys for every answer,
undo, a mark, a reload halfway through, and the votes file checked against what was on show at each key.
Screenshots at 1400 and 400 px wide go to tests/artifacts/ for a human to look at.

selenium rather than our own DevTools-protocol client: the protocol needs a websocket client (not in the
standard library) and a dozen calls to send a key; selenium is the well-kept way, and Debian's chromedriver
matches Debian's chromium (no driver download: its path is given)."""

from __future__ import annotations

import pytest
from chrome import chrome
from locations import ARTIFACTS
from vote_fixtures import processed_run

from bespoke.review.vote_server import VoteServer
from bespoke.review.votes import Mark, Undo, Vote, in_effect, read_votes
from bespoke.review.voting import VoteRequest, open_session, votes_path

pytestmark = pytest.mark.browser


@pytest.fixture
def browser(tmp_path):
    with chrome(tmp_path / "profile") as driver:
        yield driver


@pytest.fixture
def served(tmp_path):
    run = processed_run(tmp_path / "outputs")
    session = open_session(VoteRequest((run,), voter="alice"), seed=11)
    server = VoteServer(session)
    server.start()
    yield server, run
    server.shutdown()
    server.server_close()


def _ready(driver, voted: int | None = None) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    def done(d):
        body = d.find_element("tag name", "body")
        return body.get_attribute("data-state") == "ready" and (
            voted is None or body.get_attribute("data-voted") == str(voted))

    WebDriverWait(driver, 20).until(done)


def _on_show(driver, session):
    """What the server shows this page now (the page itself knows only a token)."""
    client = driver.execute_script("return sessionStorage.getItem('bespoke-vote-client')")
    return session._shown[session._by_client[client]]


def _press(driver, key: str) -> None:
    driver.find_element("tag name", "body").send_keys(key)


def test_keys_undo_mark_and_a_reload_land_in_the_votes_file(browser, served):
    from selenium.webdriver.common.keys import Keys

    server, run = served
    session = server.session
    browser.get(server.url)
    _ready(browser, 0)
    sizes = browser.execute_script(
        "return [...document.querySelectorAll('img.cand')].map(i => [i.naturalWidth, i.width])")
    assert [s[0] for s in sizes] == [24, 24] and all(s[1] >= 300 for s in sizes)  # 24 px shown large
    assert browser.execute_script(
        "return getComputedStyle(document.querySelector('img.cand')).imageRendering") == "pixelated"
    expected: list[tuple] = []  # (kind, what was on show, answer)
    for voted, (key, answer) in enumerate([(Keys.ARROW_LEFT, "left"), (Keys.ARROW_RIGHT, "right"), ("3", "same"),
                                           ("n", "neither")], 1):
        shown = _on_show(browser, session)
        _press(browser, key)
        _ready(browser, voted)
        expected.append(("vote", shown, answer))
    undone = expected[-1][1]
    _press(browser, "u")
    _ready(browser, 3)
    assert _on_show(browser, session).pair_key == undone.pair_key  # the taken-back pair is asked again
    assert "took back your last vote" in browser.find_element("id", "status").text
    browser.refresh()  # halfway through: the page forgets nothing that matters
    _ready(browser)
    assert browser.find_element("id", "progress").text.startswith("3 of 18 pairs")
    shown = _on_show(browser, session)
    _press(browser, "q")  # keep the left candidate
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(lambda d: "marked keep" in d.find_element("id", "status").text)
    _press(browser, "2")
    _ready(browser, 1)  # the counter is this page's since the reload
    records = read_votes(votes_path((run,))).records
    assert [type(r) for r in records] == [Vote] * 4 + [Undo, Mark, Vote]
    votes = [r for r in records if isinstance(r, Vote)]
    for vote, (_, on_show, answer) in zip(votes, [*expected, ("vote", shown, "right")], strict=True):
        left, right = on_show.left, on_show.right
        assert (vote.a if vote.left == "a" else vote.b) == left  # which was shown left, as it was
        if answer in ("left", "right"):
            assert (vote.a if vote.answer == "a" else vote.b) == (left if answer == "left" else right)
        else:
            assert vote.answer == answer
    assert isinstance(records[4], Undo) and records[4].undoes == votes[3].id
    assert isinstance(records[5], Mark) and records[5].item == shown.left and records[5].mark == "keep"
    assert [r.id for r in in_effect(records) if isinstance(r, Vote)] == [v.id for v in votes[:3]] + [votes[4].id]


def test_two_tabs_vote_side_by_side(browser, served):
    server, run = served
    session = server.session
    browser.get(server.url)
    _ready(browser, 0)
    first_tab, first = browser.current_window_handle, _on_show(browser, session)
    browser.switch_to.new_window("tab")
    browser.get(server.url)
    _ready(browser, 0)
    second = _on_show(browser, session)
    assert second.client != first.client and second.pair_key != first.pair_key  # each tab its own pair
    _press(browser, "1")
    _ready(browser, 1)
    browser.switch_to.window(first_tab)
    _press(browser, "2")
    _ready(browser, 1)
    assert browser.find_element("id", "status").text == "right is better — saved"
    votes = [r for r in read_votes(votes_path((run,))).records if isinstance(r, Vote)]
    assert [v.id for v in votes] == [second.token, first.token]


def _look(driver, width: int, height: int, name: str) -> dict:
    driver.set_window_size(width, height)
    _ready(driver)
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / name))
    return driver.execute_script("""
        const box = e => e.getBoundingClientRect();
        const cands = [...document.querySelectorAll('img.cand')].map(box);
        const buttons = [...document.querySelectorAll('button')].map(box);
        return {inner: [innerWidth, innerHeight], scroll: document.documentElement.scrollWidth,
                cands: cands.map(b => [b.left, b.right, b.top, b.width]),
                bottom: Math.max(...buttons.map(b => b.bottom))};""")


def test_the_page_fits_a_desktop_and_a_phone(browser, served):
    server, _ = served
    browser.get(server.url)
    _ready(browser)
    wide = _look(browser, 1400, 900, "vote_1400.png")
    assert wide["scroll"] <= wide["inner"][0] and wide["bottom"] <= wide["inner"][1]  # no scrolling to vote
    (l_left, l_right, l_top, l_width), (r_left, _, r_top, _) = wide["cands"]
    assert l_width >= 400 and l_right < r_left and l_top == r_top  # side by side, large
    phone = _look(browser, 400, 860, "vote_400.png")
    assert phone["scroll"] <= phone["inner"][0]  # nothing wider than the phone
    (p_left, p_right, p_top, p_width), (q_left, q_right, q_top, _) = phone["cands"]
    assert p_width >= 160 and p_right < q_left and p_top == q_top and q_right <= 400
    assert phone["bottom"] <= phone["inner"][1]
    browser.find_element("tag name", "body").send_keys("v")  # the samples beside the candidates
    with_samples = _look(browser, 400, 860, "vote_400_samples.png")
    assert with_samples["scroll"] <= with_samples["inner"][0]
    shown = browser.execute_script(
        "return [...document.querySelectorAll('img.sample')].map(i => i.getBoundingClientRect().width)")
    assert all(w >= 160 for w in shown)
