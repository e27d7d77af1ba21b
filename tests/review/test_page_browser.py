"""The review page driven by a real headless Chromium (selenium + Debian's chromedriver): a click on a candidate
opens the compare view with three loaded images (sample, candidate, nearest training punk) for a run and for a
folder reviewed with --training; at 400 px wide nothing sticks out of the page. Screenshots at 1400 and 400 px go
to tests/artifacts/ for a human to look at.

selenium rather than our own DevTools-protocol client: the protocol needs a websocket client (not in the standard
library) and a dozen calls to click; Debian's chromedriver matches Debian's chromium (no driver download)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from chrome import chrome
from locations import ARTIFACTS

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chrome(tmp_path_factory.mktemp("profile"), "--hide-scrollbars") as driver:
        yield driver


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Two small simulated runs (64 and 128 px, 3 epochs of 8 prompts), really processed against their own
    training punks."""
    from bespoke.demo.demo import run_demo
    from bespoke.settings import load_settings

    root = tmp_path_factory.mktemp("page")
    settings = load_settings().with_overrides(outputs_dir=root / "outputs", datasets_dir=root / "datasets",
                                              cache_dir=root / "cache")
    return run_demo(settings, root / "demo", epochs=3, prompts=8, resolutions=(64, 128))


@pytest.fixture(scope="module")
def folder_page(demo, tmp_path_factory):
    """A plain folder of samples (one run's, copied) reviewed with --training (the demo's punks)."""
    from bespoke.review.build import Inputs, review_runs
    from bespoke.run.paths import RunPaths

    folder = tmp_path_factory.mktemp("folder") / "my samples"
    shutil.copytree(RunPaths(demo.runs[0].run_dir).sample_dir, folder)
    return review_runs([folder], inputs=Inputs(training=str(demo.dataset))).html


def _open(driver, page: Path, width: int = 1400) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(width, 900)
    driver.get(page.as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.find_element("tag name", "body").get_attribute("data-chart"))


def _compare_shows_three_images(driver) -> list[str]:
    """Click the first candidate; return the src of the compare view's three panes, each loaded and shown."""
    from selenium.webdriver.support.ui import WebDriverWait

    next(b for b in driver.find_elements("css selector", "button.cmp") if b.is_displayed()).click()
    WebDriverWait(driver, 10).until(lambda d: d.find_element("id", "compare").is_displayed())
    panes = {}
    for pane in ("cmp-s", "cmp-c", "cmp-t"):
        img = driver.find_element("id", pane)
        WebDriverWait(driver, 10).until(lambda d, i=img: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", i))
        assert img.is_displayed(), pane
        assert img.size["width"] >= 100, (pane, img.size)
        panes[pane] = img.get_attribute("src")
    assert "nearest training punk" in driver.find_element("id", "cmp-tc").text
    return [panes["cmp-s"], panes["cmp-c"], panes["cmp-t"]]


def _shot(driver, name: str, whole: bool = True) -> None:
    """A screenshot in tests/artifacts/: the whole page (up to 6000 px), or the window as it is."""
    ARTIFACTS.mkdir(exist_ok=True)
    if whole:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        width = driver.execute_script("return window.innerWidth")
        driver.set_window_size(width, min(height, 6000))
    driver.save_screenshot(str(ARTIFACTS / name))


def test_a_click_on_a_run_candidate_compares_three_images(browser, demo):
    _open(browser, demo.html)
    sample, candidate, training = _compare_shows_three_images(browser)
    assert "/img/train/" in training and training.endswith(".png")
    assert "/c/" in candidate and "/s/" in sample
    _shot(browser, "page_compare_run_1400.png", whole=False)


def test_a_click_on_a_folder_candidate_reviewed_with_training_compares_three_images(browser, folder_page):
    _open(browser, folder_page)
    _, _, training = _compare_shows_three_images(browser)
    assert "/img/train/" in training


OUTSIDE = """var w=document.documentElement.clientWidth,out=[];
  document.querySelectorAll('main *').forEach(function(e){
    if(e.closest('.scroll,.grid-wrap')||!e.getClientRects().length) return;
    var r=e.getBoundingClientRect(); if(r.right>w+1||r.left<-1) out.push(e.tagName+'.'+e.className+' '+Math.round(r.right));});
  return out;"""


def test_at_1400_px_every_prompt_column_fits_and_the_page_is_short(browser, demo):
    _open(browser, demo.html)
    grids = browser.execute_script(
        "return [...document.querySelectorAll('.grid-wrap')].filter(g => g.offsetParent).map("
        "g => [g.scrollWidth, g.clientWidth, g.querySelectorAll('tr:first-child th').length - 1])")
    assert grids and all(columns == 8 for _, _, columns in grids)
    assert all(scroll <= client + 1 for scroll, client, _ in grids), grids  # all 8 prompts side by side
    assert browser.execute_script("return document.querySelectorAll('details.run-samples:not([open])').length") == 1
    assert browser.execute_script("return document.documentElement.scrollHeight") < 5000
    _shot(browser, "page_demo_1400.png")
    visible = "return [...document.querySelectorAll('details[open] img.thumb')].filter(i => i.offsetParent).length"
    assert browser.execute_script(visible) == 0  # candidates alone, until asked for the samples beside them
    next(b for b in browser.find_elements("css selector", "input.show-samples") if b.is_displayed()).click()
    assert browser.execute_script(visible) == 4 * 8


def test_at_400_px_nothing_is_cut_or_sticks_out(browser, demo, folder_page):
    for page, name in ((demo.html, "page_demo_400.png"), (folder_page, "page_folder_400.png")):
        _open(browser, page, width=400)
        width = browser.execute_script("return document.documentElement.clientWidth")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        assert browser.execute_script(OUTSIDE) == []
        boxes = browser.execute_script(  # what scrolls, scrolls within itself, inside the page
            "return [...document.querySelectorAll('.scroll,.grid-wrap,svg.chart')].filter(e => e.offsetParent)"
            ".map(e => e.getBoundingClientRect().right)")
        assert boxes and max(boxes) <= width + 1
        shown = browser.execute_script(  # the summary reflows: each run's score and best epoch on screen
            "return [...document.querySelectorAll('table.summary td')].filter(td => ['score', 'best epoch']"
            ".includes(td.dataset.label)).map(td => td.getBoundingClientRect().right)")
        assert shown and max(shown) <= width, shown
        _shot(browser, name)
    _open(browser, demo.html, width=400)
    _compare_shows_three_images(browser)
    for pane in ("cmp-s", "cmp-c", "cmp-t"):  # the three side by side inside the screen
        rect = browser.execute_script("return arguments[0].getBoundingClientRect().toJSON()",
                                      browser.find_element("id", pane))
        assert rect["right"] <= width + 1 and rect["bottom"] <= 900, (pane, rect)
    _shot(browser, "page_compare_400.png", whole=False)
