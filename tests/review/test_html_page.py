"""The page answers "which epoch, which run": score terms, run names and what differs, marks for near-copies
and degenerate samples, the compare view's nearest training image, unbroken prompt headers."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from PIL import Image
from review_fixtures import fake_process, simulated_run

from bespoke.review import html
from bespoke.review.html_grid import header_label
from bespoke.review.records import Best, Novelty, ProcessReport, Score
from bespoke.review.report import load_report
from bespoke.run.manifest import load_manifest


def _enrich(run: Path, train_dir: Path) -> ProcessReport:
    """The report with the fields the faithful-candidates work adds (score, novelty, degenerate)."""
    report = fake_process(run)
    train_dir.mkdir(exist_ok=True)
    Image.new("RGB", (24, 24), (10, 200, 30)).save(train_dir / "lad_007.png")
    for i, sample in enumerate(report.samples):
        cand = sample.candidates["grid"]
        cand.delta_e_max, cand.delta_e_mean, cand.moved_beyond = 4.2, 1.1, 0
        cand.novelty = Novelty(nearest="lad_007.png", share=0.97 if i == 0 else 0.4, near_copy=i == 0,
                               shift=[1, -2] if i == 0 else [0, 0])
        sample.degenerate = "nan-black" if i == 1 else None
    for row in report.epochs:
        row.score = Score(total=0.5 + 0.1 * (row.epoch or 0), terms={"grid fit": 0.9, "novelty": 0.7})
        row.near_copy_pct, row.diversity = 12.5, 0.8
    report.best = Best(epoch=2, method="grid", rule="highest score", score=0.7,
                       terms={"grid fit": 0.91, "faithful": 0.88, "novelty": 0.75})
    return report


def _view(run, report, train_dir, **manifest):
    values = {"resolution": 64, "dataset": {"source": str(train_dir)}, **manifest}
    return html.RunView(run_dir=run, run_id=run.name, report=report, method="grid",
                        run=replace(load_manifest(run), **values))


def test_score_terms_marks_and_compare(tmp_path):
    run = simulated_run(tmp_path, "64-page-11111111", resolution=64, prompts=2, epochs=2, process=False)
    report = _enrich(run, tmp_path / "train")
    page = html.build_html([_view(run, report, tmp_path / "train")], tmp_path / "out" / "index.html")
    text = page.read_text()
    assert "Best epoch: <b>2</b>" in text
    for term in ("grid fit: <b>0.91</b>", "faithful: <b>0.88</b>", "novelty: <b>0.75</b>"):
        assert term in text
    assert text.count('class="cell near-copy"') == 1 and text.count('class="cell degenerate"') == 1
    assert "NaN black" in text and "near-copy" in text
    assert 'data-t="img/train/lad_007.png"' in text and (page.parent / "img/train/lad_007.png").is_file()
    assert ("nearest training punk: lad_007.png · the candidate reproduces 97 % of its figure, shifted +1 rows, "
            "-2 columns · NEAR-COPY") in text
    assert text.count('data-shift="1 -2"') == 1  # the compare view draws the training figure where the copy is
    assert "<th>score</th>" in text and "<th>near-copies</th>" in text and "interval</th>" in text and 'data-chart="score"' in text
    assert "image-rendering:pixelated" in text and "button.cmp img{width:120px;height:120px" in text


def test_runs_that_share_a_name_show_what_differs(tmp_path):
    a = simulated_run(tmp_path, "64-a-11111111", resolution=64, prompts=1, epochs=1)
    b = simulated_run(tmp_path, "64-b-22222222", resolution=64, prompts=1, epochs=1)
    views = [_view(a, load_report(a), tmp_path, name="dim test", overrides=["network_dim=8", "max_train_epochs=1"]),
             _view(b, load_report(b), tmp_path, name="dim test", overrides=["network_dim=32", "max_train_epochs=1"])]
    text = html.build_html(views, tmp_path / "out" / "index.html").read_text()
    assert "dim test · network_dim 8" in text and "dim test · network_dim 32" in text
    assert "max_train_epochs" not in re.sub(r"<details.*?</details>", "", text, flags=re.S)  # same in both


def test_prompt_headers_end_at_a_word():
    text = "lady, red hair, blue eyes, pale green skin tone, bright green background, wearing blue jacket, wearing " \
           "golden earrings, freckles"
    label = header_label(text, 60)
    assert label.endswith("…") and text.startswith(label[:-1]) and text[len(label) - 1] in " ,"
    assert header_label("short", 60) == "short"


def test_images_are_reused_and_stale_ones_removed(tmp_path):
    run = simulated_run(tmp_path, "64-cache-11111111", resolution=64, prompts=1, epochs=1)
    report = load_report(run)
    page = tmp_path / "out" / "index.html"
    html.build_html([_view(run, report, tmp_path)], page)
    thumbs = sorted((page.parent / "img").rglob("*.webp"))
    assert len(thumbs) == len(report.samples)
    with Image.open(thumbs[0]) as img:
        assert max(img.size) <= 288
    before = {p: p.stat().st_mtime_ns for p in thumbs}
    stale = page.parent / "img" / "old-run" / "s" / "x.webp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    html.build_html([_view(run, report, tmp_path)], page)
    assert {p: p.stat().st_mtime_ns for p in thumbs} == before  # up to date: not rewritten
    assert not stale.exists()  # a copied folder carries only what the page shows


def test_the_loop_of_a_run_on_its_page_validation_loss_cost_early_stop_held_out_designs(tmp_path):
    from bespoke.run.manifest import EarlyStop, EpochRecord

    run = simulated_run(tmp_path, "64-loop-22222222", resolution=64, prompts=2, epochs=3, process=False)
    report = fake_process(run)
    held = {"share": 0.1, "seed": 42, "images": 3, "designs": [["lad_102_bunya", "lad_102_bunya2"], ["lad_7_x"]]}
    view = _view(run, report, tmp_path / "train", status="stopped-early", cost_usd=0.42, gpu_price_per_hour=1.89,
                 early_stop=EarlyStop("peaked:2", "peaked: no epoch scored above epoch 1's score", 3, 1),
                 epoch_log=[EpochRecord(e, cost_usd=0.14) for e in (1, 2, 3)],
                 dataset={"source": str(tmp_path / "train"), "validation": held})
    view.loss, view.validation_loss = {1: 0.2, 2: 0.15, 3: 0.12}, {1: 0.25, 2: 0.22, 3: 0.24}
    text = html.build_html([view], tmp_path / "out" / "index.html").read_text()
    assert "Training and validation loss per epoch" in text and "dashed: validation" in text
    assert 'stroke-dasharray="4 3"' in text  # the validation line, beside the solid training one
    assert "after epoch 3 (peaked:2): peaked: no epoch scored above epoch 1" in text
    assert "$0.42 at $1.89 per GPU-hour, $0.14 an epoch" in text
    assert "3 pictures in 2 designs (share 0.1, seed 42): lad_102_bunya, lad_102_bunya2; lad_7_x" in text
