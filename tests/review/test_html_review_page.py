"""What a new user read wrong on the review page (issue 20): the best run unmarked, a baseline delta without a
direction, identical % clean lines hiding each other, per-prompt detail unfolded, a folder's score missing
from the top table, "off-palette 98.5 %" beside "clean 100 %", jargon without words, a simulator that ignores
prompts without saying so."""

from __future__ import annotations

import re
from dataclasses import replace

from review_fixtures import fake_process, simulated_run

from bespoke.review import html
from bespoke.review.records import Best, ProcessReport, PromptTags, Score, TagInfo
from bespoke.run.manifest import load_manifest


def _view(run, report: ProcessReport, **manifest) -> html.RunView:
    values = {"resolution": 64, **manifest}
    return html.RunView(run_dir=run, run_id=run.name, report=report, method="grid",
                        run=replace(load_manifest(run), **values))


def _scored(run, best_score: float, clean: float = 50.0) -> ProcessReport:
    report = fake_process(run)
    for row in report.epochs:
        row.score = Score(total=best_score - 0.1 * (2 - (row.epoch or 0)), terms={"pixel_art": 0.9},
                          interval=[best_score - 0.2, best_score + 0.05])
        row.methods["grid"].clean_pct = clean
        row.methods["grid"].off_palette_mean = 0.985
        row.methods["grid"].grid_error_mean = 3.56
    report.best = Best(epoch=2, method="grid", rule="highest score", score=best_score, terms={"pixel_art": 0.9})
    return report


def _summary(text: str) -> str:
    return re.search(r'<table class="summary">.*?</table>', text, re.S).group(0)


def _rows(table: str) -> list[str]:
    return re.findall(r"<tr.*?</tr>", table, re.S)


def test_the_best_of_several_runs_is_marked(tmp_path):
    runs = [simulated_run(tmp_path, f"64-r{i}-1111111{i}", prompts=1, epochs=2, process=False) for i in range(3)]
    views = [_view(r, _scored(r, s), name=f"run {i}") for i, (r, s) in enumerate(zip(runs, (0.61, 0.74, 0.52), strict=True))]
    text = html.build_html(views, tmp_path / "out" / "index.html").read_text()
    rows = _rows(_summary(text))[1:]
    marked = [row for row in rows if 'class="best"' in row]
    assert len(marked) == 1 and "run 1" in marked[0] and "★ best run" in marked[0]
    assert "run 0" in rows[0] and "★ best run" not in rows[0] + rows[2]
    assert "within the best run&#x27;s interval" in rows[0]  # 0.61 inside 0.54-0.79: not told apart


def test_the_baseline_delta_says_which_way_is_better(tmp_path):
    run = simulated_run(tmp_path, "512-b-11111111", prompts=1, epochs=2, process=False)
    report = _scored(run, 0.7)
    for row in report.epochs:
        row.colors_nearest_mean = 207.4
    text = html.build_html([_view(run, report, resolution=512)], tmp_path / "out" / "index.html").read_text()
    summary = _summary(text)
    assert "fewer is better" in summary
    assert "−9.2 (fewer: better)" in summary


def test_identical_clean_lines_stay_visible(tmp_path):
    runs = [simulated_run(tmp_path, f"64-c{i}-2222222{i}", prompts=1, epochs=2, process=False) for i in range(3)]
    views = [_view(r, _scored(r, 0.6 + i / 10, clean=75.0), name=f"run {i}") for i, r in enumerate(runs)]
    text = html.build_html(views, tmp_path / "out" / "index.html").read_text()
    chart = re.search(r'<figure class="chart-box"><svg[^>]*data-chart="clean".*?</figure>', text, re.S).group(0)
    widths = [float(w) for name, w in re.findall(
        r'data-series="(run \d \(simulated\) grid)"[^>]*stroke-width="([\d.]+)"', chart)]
    assert len(widths) == 3 and widths[0] > widths[1] > widths[2]  # drawn as nested stripes, each colour seen
    assert "Identical lines, drawn as nested stripes: run 0 (simulated) grid, run 1 (simulated) grid, run 2 (simulated) grid" in chart


def test_per_prompt_detail_is_folded(tmp_path):
    run = simulated_run(tmp_path, "64-f-33333333", prompts=2, epochs=2, process=False)
    report = _scored(run, 0.7)
    prompt = report.samples[0].prompt
    report.prompts = [PromptTags(prompt=prompt, tags=[TagInfo(text="brown hair", measure="hair colour", why=None)])]
    for row in report.epochs:
        row.adherence = {prompt: [0.5]}
    text = html.build_html([_view(run, report)], tmp_path / "out" / "index.html").read_text()
    folded = re.findall(r"<details[^>]*>.*?</details>", text, re.S)
    assert any("Prompt adherence per tag" in d and "brown hair" in d for d in folded)
    assert any("The score's terms per epoch" in d for d in folded)
    assert not any(re.match(r"<details[^>]*\bopen\b", d) for d in folded if "adherence" in d)


def test_a_folder_review_shows_its_score_in_the_top_table(tmp_path):
    run = simulated_run(tmp_path, "64-p-44444444", prompts=2, epochs=1, process=False)
    report = fake_process(run)
    for sample in report.samples:
        sample.epoch = None
    row = report.epochs[0]
    row.epoch, row.score = None, Score(total=0.869, terms={"pixel_art": 0.8}, interval=[0.8, 0.9])
    report.epochs, report.best = [row], None
    view = html.RunView(run_dir=run, run_id="my samples", report=report, method="grid", plain=True)
    text = html.build_html([view], tmp_path / "out" / "index.html").read_text()
    top = _rows(_summary(text))[1]
    assert "0.869" in top and "one set" in top and "—</b>" not in top
    assert "One set: <b>score 0.869</b>" in text and "No best epoch" not in text


def test_numbers_in_words_with_the_figure_one_click_away(tmp_path):
    run = simulated_run(tmp_path, "64-w-55555555", prompts=1, epochs=2, process=False)
    report = _scored(run, 0.7, clean=100.0)
    for sample in report.samples:
        cand = sample.candidates["grid"]
        cand.delta_e_max, cand.off_palette, cand.grid_error = 4.2, 0.985, 3.56
    text = html.build_html([_view(run, report)], tmp_path / "out" / "index.html").read_text()
    visible = re.sub(r'title="[^"]*"', "", text)
    for jargon in ("off-palette", "ΔE max", "grid error"):
        assert jargon not in re.sub(r"<(style|script)>.*?</\1>|<details.*?</details>", "", visible, flags=re.S), \
            jargon
    assert "in the training colours" in text and "1.5 %" in text  # 1 - off_palette, said the positive way
    assert "close match" in text and 'title="largest colour change ΔE 4.2' in text
    assert "grid error 3.56" in text and "slightly soft blocks" in text
    assert "few colours" in text


def test_the_demo_page_says_the_simulator_ignores_prompts(tmp_path):
    run = simulated_run(tmp_path, "64-s-66666666", prompts=1, epochs=1)
    view = _view(run, fake_process(run), simulated=True)
    text = html.build_html([view], tmp_path / "out" / "index.html").read_text()
    banner = re.search(r'<div class="sim-banner">.*?</div>', text, re.S).group(0)
    assert "ignores the prompts" in banner

