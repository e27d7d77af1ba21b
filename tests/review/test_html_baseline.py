"""The review page's recorded baseline comes from bespoke.review.baseline only: no second copy, no fallback."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from review_fixtures import fake_process, simulated_run

from bespoke.review import html, html_data
from bespoke.review.baseline import recorded_baseline
from bespoke.run.manifest import load_manifest


def test_load_baseline_is_the_recorded_baseline():
    data = recorded_baseline()
    baseline = html.load_baseline()
    assert baseline["epoch"] == data["headline"]["epoch"] == 8
    assert baseline["mean_colors_nearest"] == data["headline"]["mean_colors_nearest"] == 216.6
    assert baseline["resolution"] == data["protocol"]["width"] == 512
    assert baseline["per_epoch"] == {e["epoch"]: e["mean"] for e in data["epochs"]}
    assert baseline["per_epoch"][8] == 216.6 and sorted(baseline["per_epoch"]) == list(range(1, 11))


def test_source_is_words_for_people_not_a_file_path():
    source = html.load_baseline()["source"]
    assert source == "recorded CAPTION_FIX evaluation (512 px, epoch 8)"
    assert "/" not in source and ".json" not in source


@pytest.mark.parametrize("broken", [FileNotFoundError("baseline_recorded.json"), ValueError("bad JSON")])
def test_a_missing_or_broken_data_file_raises(monkeypatch, broken):
    def fail():
        raise broken

    monkeypatch.setattr(html_data, "recorded_baseline", fail)
    with pytest.raises(type(broken)):
        html.load_baseline()


def test_incomplete_data_raises_instead_of_using_other_numbers(monkeypatch):
    monkeypatch.setattr(html_data, "recorded_baseline", lambda: {"protocol": {"width": 512}, "epochs": []})
    with pytest.raises(KeyError):
        html.load_baseline()


def test_page_draws_and_names_the_recorded_baseline_for_512_px_runs_only(tmp_path):
    run = simulated_run(tmp_path, "512-page-1", resolution=64, prompts=2, epochs=2, process=False)
    report = fake_process(run)
    view = html.RunView(run_dir=run, run_id="512-page-1", run=replace(load_manifest(run), resolution=512),
                        report=report, method="grid")
    text = html.build_html([view], tmp_path / "page" / "index.html").read_text(encoding="utf-8")
    assert "The recorded baseline (recorded CAPTION_FIX evaluation (512 px, epoch 8)) applies to 512 px runs" in text
    assert "recorded baseline, 512 px epoch 8: 216.6" in text and "vs recorded 512 px baseline 216.6" in text
    assert "baseline_recorded.json" not in text and "shared/baseline" not in text  # no internal paths

    small = html.RunView(run_dir=run, run_id="64-page-1", run=replace(load_manifest(run), resolution=64),
                         report=report, method="grid")
    text = html.build_html([small], tmp_path / "page64" / "index.html").read_text(encoding="utf-8")
    assert "recorded baseline, 512 px" not in text and "recorded 512 px run" not in text
    assert re.search(r'<td class="" data-label="vs recorded 512 px baseline 216.6 \(fewer is better\)">'
                     r'<span class="muted">n/a</span></td>', text)
