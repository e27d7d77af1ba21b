"""The review page in a real browser (headless Chromium): every image loads, the charts render, and a
screenshot is saved to tests/artifacts/ for a human to look at."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from locations import ARTIFACTS

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    return subprocess.run([CHROMIUM, *flags, *extra, url], capture_output=True, text=True, timeout=120)


def _body_attrs(dom: str) -> dict:
    match = re.search(r"<body([^>]*)>", dom)
    assert match, dom[:500]
    return dict(re.findall(r'(data-[\w-]+)="([^"]*)"', match.group(1)))


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.count = 0
        self.in_lightbox = False

    def handle_starttag(self, tag, attrs):
        if dict(attrs).get("id") == "lightbox":
            self.in_lightbox = True
        if tag == "img" and not self.in_lightbox:
            self.count += 1


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The demo's sweep, small: four real planned runs, simulated samples, real process, one review."""
    from bespoke.demo.demo import run_demo
    from bespoke.settings import load_settings

    root = tmp_path_factory.mktemp("browser")
    settings = load_settings().with_overrides(outputs_dir=root / "outputs", datasets_dir=root / "datasets",
                                              cache_dir=root / "cache")
    return run_demo(settings, root / "demo", epochs=4, prompts=3)


def _copy_alone(sweep, dest: Path) -> Path:
    """The review folder copied by itself (no run folders beside it), as a user copies it home."""
    shutil.copytree(sweep.html.parent, dest)
    return dest / sweep.html.name


def test_review_folder_copied_alone_renders_every_image_and_chart(sweep, tmp_path):
    html = _copy_alone(sweep, tmp_path / "copied" / "review")
    text = html.read_text(encoding="utf-8")
    assert "../" not in text and "file:" not in text  # relative links inside the folder only
    parser = _Images()
    parser.feed(text)
    assert parser.count == 4 * (4 + 1) * 3 * 2  # runs x (e0 + 4 epochs) x prompts x (sample + candidate)

    dom = _chromium(html.as_uri(), tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    attrs = _body_attrs(dom.stdout)
    assert attrs.get("data-images-failed") == "0", attrs
    assert attrs.get("data-images-loaded") == str(parser.count), attrs
    assert attrs.get("data-chart") == "ok", attrs
    assert int(attrs["data-charts"]) == 4  # colours, % clean, loss, best-epoch score
    assert attrs.get("data-simulated") == "true"

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "review_sweep.png"
    shot.unlink(missing_ok=True)
    result = _chromium(html.as_uri(), tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1400,2000",
                       "--hide-scrollbars")
    assert result.returncode == 0, result.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1400, 2000)
        top = img.convert("RGB").getpixel((700, 8))
        assert top[0] > 150 and top[1] < 80  # the red SIMULATED banner across the top


def test_single_file_page_renders_alone(sweep, tmp_path):
    from bespoke.review.build import review_runs

    result = review_runs([r.run_dir for r in sweep.runs], out_dir=tmp_path / "built", process=False,
                         single_file=True)
    assert result.single_file == result.html.with_name("review.html")
    alone = tmp_path / "mail" / "review.html"
    alone.parent.mkdir()
    shutil.copyfile(result.single_file, alone)
    text = alone.read_text(encoding="utf-8")
    assert 'src="img/' not in text and 'href="sheets/' not in text
    dom = _chromium(alone.as_uri(), tmp_path / "profile", "--dump-dom")
    attrs = _body_attrs(dom.stdout)
    assert attrs.get("data-images-failed") == "0" and int(attrs["data-images-loaded"]) == 4 * 5 * 3 * 2, attrs
    assert attrs.get("data-chart") == "ok", attrs


def test_the_browser_check_catches_a_missing_image(sweep, tmp_path):
    html = _copy_alone(sweep, tmp_path / "copied")
    victim = next((html.parent / "img").rglob("*.webp"))
    victim.unlink()
    dom = _chromium(html.as_uri(), tmp_path / "profile", "--dump-dom")
    attrs = _body_attrs(dom.stdout)
    assert attrs.get("data-images-failed") == "1", attrs
