"""bespoke process end to end: run folders, plain folders, bad input, report schema, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bespoke.dataset.layout import layout_for
from bespoke.dataset.synthetic import make_punk
from bespoke.demo.degrade import degrade
from bespoke.errors import DatasetError, ProcessError, UsageError
from bespoke.pixels.merge import TOLERANCE
from bespoke.pixels.novelty import NEAR_COPY
from bespoke.review.process import process_path
from bespoke.review.records import REPORT_KIND, REPORT_SCHEMA
from bespoke.review.report import load_report
from bespoke.review.request import ProcessOptions as Options

METHODS = ("nearest", "grid")  # the default; Pillow's other resamplers only when asked for


def _make_run(root, epochs=(1, 2), prompts=2, palette=True):
    sample = root / "model" / "sample"
    sample.mkdir(parents=True)
    (root / "config").mkdir()
    (root / "config" / "prompts.txt").write_text("a punk --d 1\nanother punk --d 2\n")
    prepared = root.parent / f"{root.name}-prepared"
    prepared.mkdir()
    punks = [make_punk(i).pixels for i in range(prompts)]
    colors = np.unique(np.concatenate([p.reshape(-1, 3) for p in punks]), axis=0)
    if palette:
        palette = ["#" + bytes(int(v) for v in c).hex() for c in colors]
        (prepared / "prepare.json").write_text(json.dumps({"schema_version": 1, "palette": palette}))
    manifest = {"schema_version": 1, "id": "run-512", "status": "finished", "simulated": True,
                "dataset": {"prepared_dir": str(prepared), "layout": layout_for("stretch", 512).to_json()}}
    (root / "run.json").write_text(json.dumps(manifest))
    for epoch in epochs:
        for p, truth in enumerate(punks):
            level = "nearest" if epoch == epochs[-1] else "shifted"
            image, _ = degrade(truth, level, seed=epoch * 10 + p)
            image.save(sample / f"lora_e{epoch:06d}_{p:02d}_20261122023155_{p + 1}.png")
    return sample


def test_run_folder_report_and_candidates(tmp_path):
    run = tmp_path / "run"
    sample = _make_run(run)
    (sample / "notes.txt").write_text("ignored: not an image suffix")
    (sample / "broken.png").write_bytes(b"this is not a png")
    good = sample / "lora_e000001_00_20261122023155_1.png"
    (sample / "truncated.png").write_bytes(good.read_bytes()[:2000])
    Image.new("RGB", (16, 16)).save(sample / "tiny.png")
    Image.new("RGB", (64, 48)).save(sample / "wide.png")
    before = sorted(p.name for p in sample.iterdir())

    report = process_path(run, Options(palette="dataset", workers=2)).report

    assert sorted(p.name for p in sample.iterdir()) == before  # nothing written among the samples
    on_disk = json.loads((run / "report" / "report.json").read_text())
    assert on_disk["kind"] == REPORT_KIND == "bespoke.process" and on_disk["schema_version"] == REPORT_SCHEMA == 4
    assert on_disk == report.to_json()  # what was returned is what was written
    assert report.tolerance == TOLERANCE and report.near_copy_threshold == NEAR_COPY
    assert report.run_id == "run-512" and report.simulated is True
    assert report.methods == [*METHODS, "grid-palette"]
    assert report.palette is not None and report.palette["mode"] == "dataset"
    assert report.layout_hint is not None and report.layout_hint["name"] == "stretch"
    errors = {e.file.split("/")[-1]: e.error for e in report.errors}
    assert "not an image" in errors["broken.png"]
    assert "truncated" in errors["truncated.png"]
    assert "too small" in errors["tiny.png"] and "not square" in errors["wide.png"]
    assert len(report.samples) == 4
    s = report.samples[0]
    assert (s.epoch, s.prompt_index, s.seed, s.prompt) == (1, 0, 1, "a punk")
    assert s.grid.source == "detected" and set(s.candidates) == {*METHODS, "grid-palette"}
    for name, c in s.candidates.items():
        with Image.open(run / c.file) as img:
            assert img.size == (24, 24) and img.mode == "RGB"
        assert set(on_disk["samples"][0]["candidates"][name]) == {
            "file", "colors", "top10_coverage", "clean", "off_palette", "grid_error", "background_uniform",
            "delta_e_max", "delta_e_mean", "moved_beyond", "novelty"}
    for method in ("grid", "grid-palette"):  # faithful by construction
        assert all(x.candidates[method].moved_beyond == 0 for x in report.samples)
        assert all(x.candidates[method].delta_e_max <= TOLERANCE for x in report.samples)
    assert s.candidates["nearest"].moved_beyond > 0  # measured for every method
    assert s.degenerate is None and s.scoring.novelty is None  # no training images in this fixture
    assert s.candidates["grid"].colors < s.candidates["nearest"].colors / 5
    assert load_report(run).samples == report.samples
    csv_lines = (run / "report" / "report.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 4 * (len(METHODS) + 1)  # a row per sample and method
    assert [e.epoch for e in report.epochs] == [1, 2]
    # epoch 2 is an exact stretch (pixel art, few colours): the score says so, and says why
    best = report.best
    assert best is not None and best.epoch == 2 and best.method == "grid-palette" and best.rule
    assert set(best.terms) == {"pixel_art", "few_colours", "clean_cells", "feature_contrast"}  # no training set
    assert best.highest == 2 and report.epochs[1].score.interval is not None
    assert not best.resolved and best.tied == [1, 2]  # 2 samples an epoch cannot tell epochs apart
    assert report.epochs[1].score.total > report.epochs[0].score.total
    assert not (run / "report" / "partial.jsonl").exists()  # the journal is gone once the report is written
    # the same answer whatever options process ran with
    plain = process_path(run, Options(methods="nearest,box,bilinear,lanczos,grid", workers=1)).report
    assert plain.methods == ["nearest", "box", "bilinear", "lanczos", "grid"]
    assert {c.file.split("/")[-2] for c in plain.samples[0].candidates.values()} == set(plain.methods)
    assert all((run / c.file).is_file() for s in plain.samples for c in s.candidates.values())
    assert plain.best is not None and (plain.best.epoch, plain.best.score, plain.best.method) == (2, best.score, "grid")
    assert [e.score for e in plain.epochs] == [e.score for e in report.epochs]
    nearest = process_path(run, Options(methods="nearest", workers=1)).report
    assert nearest.best is not None and nearest.best.score == best.score


def test_plain_folder_writes_beside_not_among(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        degrade(make_punk(i).pixels, "soft", seed=i)[0].save(folder / f"p{i}.png")
    report = process_path(folder, Options(methods="nearest,grid", palette="k:8", workers=1)).report
    assert sorted(p.name for p in folder.iterdir()) == ["bespoke_process", "p0.png", "p1.png"]
    assert report.run_id is None and report.epochs[0].epoch is None and report.best is None
    assert (folder / "bespoke_process" / "candidates" / "grid-palette" / "p0.png").is_file()
    assert report.samples[0].candidates["grid-palette"].colors <= 8


def test_all_bad_raises_and_writes_no_report(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"nope")
    with pytest.raises(ProcessError, match="none of 1 samples could be processed.*not an image"):
        process_path(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]  # no empty output folders left behind


def test_usage_errors(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (48, 48)).save(folder / "a.png")
    with pytest.raises(UsageError, match="needs a run folder"):
        process_path(folder, Options(palette="dataset"))
    with pytest.raises(UsageError, match='did you mean "grid"'):
        process_path(folder, Options(methods="gird"))
    with pytest.raises(UsageError, match="needs --palette"):
        process_path(folder, Options(methods="grid-palette"))
    with pytest.raises(UsageError, match="--tolerance -1: must be 0"):
        process_path(folder, Options(tolerance=-1))
    with pytest.raises(UsageError, match="--training .*nowhere: not a folder"):
        process_path(folder, Options(training=str(tmp_path / "nowhere")))
    with pytest.raises(UsageError, match="--training .*imgs: no readable 24x24 images"):
        process_path(folder, Options(training=str(folder)))  # 48 px images are no training punks
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]  # nothing written for a bad request
    run = tmp_path / "run"
    _make_run(run, epochs=(1,), prompts=1, palette=False)
    with pytest.raises(DatasetError, match="not a prepared dataset \\(no prepare.json\\)"):
        process_path(run, Options(palette="dataset"))


def test_cli_json_and_table(tmp_path):
    from bespoke.cli import main

    run = tmp_path / "run"
    _make_run(run, epochs=(1, 2), prompts=1)
    result = CliRunner().invoke(main, ["process", str(run), "--methods", "nearest,grid", "--json", "--workers", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["methods"] == ["nearest", "grid"]
    result = CliRunner().invoke(main, ["process", str(run), "--palette", "dataset", "--quiet"])
    assert result.exit_code == 0
    result = CliRunner().invoke(main, ["process", str(tmp_path / "missing")])
    assert result.exit_code == 4 and "no such run folder nor a run id" in result.output


def test_shared_samples(shared_dir, tmp_path):
    import shutil

    source = shared_dir / "samples"
    if not source.is_dir():
        pytest.skip("shared samples absent")
    folder = tmp_path / "s"
    folder.mkdir()
    for path in sorted(source.glob("*.png")):
        shutil.copy(path, folder / path.name)
    report = process_path(folder, Options(workers=2)).report
    assert not report.errors and len(report.samples) == len(list(source.glob("*.png")))
    for s in report.samples:
        assert s.grid.source == "detected"
        assert abs(s.grid.cell_w - 512 / 24) < 0.5
        grid, nearest = s.candidates["grid"], s.candidates["nearest"]
        assert grid.colors < nearest.colors / 3
    assert sum(s.candidates["grid"].clean for s in report.samples) >= len(report.samples) - 2


def test_big_folder_palette_is_faithful(tmp_path):
    # a "dataset" whose union palette has thousands of colours, near-duplicates everywhere (like the
    # user's 203 punks: 4019 colours): the punks' own colours plus 20 random neighbours of each
    punks = [make_punk(i).pixels for i in range(3)]
    base = np.unique(np.concatenate([p.reshape(-1, 3) for p in punks]), axis=0).astype(int)
    rng = np.random.default_rng(0)
    near = (base[:, None, :] + rng.integers(-6, 7, size=(len(base), 20, 3))).reshape(-1, 3)
    colors = np.unique(np.clip(np.concatenate([base, near]), 0, 255).astype(np.uint8), axis=0)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    padded = np.concatenate([colors, np.repeat(colors[:1], -len(colors) % 576, axis=0)])
    for i, chunk in enumerate(padded.reshape(-1, 24, 24, 3)):
        Image.fromarray(chunk, "RGB").save(dataset / f"tile{i}.png")
    folder = tmp_path / "samples"
    folder.mkdir()
    for i, truth in enumerate(punks):
        degrade(truth, "shifted", seed=i)[0].save(folder / f"s{i}.png")
    report = process_path(folder, Options(methods="grid", palette=str(dataset), training=str(dataset),
                                          workers=1)).report
    assert report.palette is not None and len(colors) > 1000
    assert {k: report.palette[k] for k in ("mode", "size")} == {"mode": "folder", "size": len(colors)}
    assert report.training is not None and report.training.images == len(padded) // 576
    for s in report.samples:
        grid, snapped = s.candidates["grid"], s.candidates["grid-palette"]
        assert snapped.moved_beyond == grid.moved_beyond == 0
        assert snapped.off_palette is not None and grid.off_palette is not None
        assert snapped.off_palette <= grid.off_palette
        assert snapped.novelty is not None and not snapped.novelty.near_copy  # tiles of colours are no punk


def test_rerun_reuses_an_up_to_date_report_without_rewriting(tmp_path):
    import os

    run = tmp_path / "run"
    sample = _make_run(run)
    dataset = Options(palette="dataset", workers=1)
    first = process_path(run, dataset)
    assert not first.reused
    report = run / "report" / "report.json"
    candidate = next((run / "candidates" / "grid").glob("*.png"))
    stamps = (report.stat().st_mtime_ns, candidate.stat().st_mtime_ns)

    again = process_path(run, dataset)
    assert again.reused is True and again.report.best == first.report.best
    assert (report.stat().st_mtime_ns, candidate.stat().st_mtime_ns) == stamps  # nothing rewritten

    # other options, a newer sample, or --force: processed again
    assert not process_path(run, Options(methods="nearest,box,grid", palette="dataset", workers=1)).reused
    assert not process_path(run, dataset).reused
    assert process_path(run, dataset).reused is True
    newest_sample = max(p.stat().st_mtime for p in sample.glob("*.png"))
    os.utime(report, (newest_sample - 10, newest_sample - 10))  # a sample newer than the report
    assert not process_path(run, dataset).reused
    assert not process_path(run, Options(palette="dataset", workers=1, force=True)).reused

    result = CliRunner().invoke(__import__("bespoke.cli", fromlist=["main"]).main, ["process", str(run), "--palette",
                                                                                   "dataset"])
    assert result.exit_code == 0 and "up to date, nothing rewritten" in result.output


def test_workers_fit_the_cpus_and_none_is_forked_from_this_process(tmp_path, monkeypatch):
    """The pool is as big as the CPUs this process may use (bespoke.cpus), and its workers are started by a
    fresh interpreter (the fork server, or spawn), never forked from this process, whose threads (the progress
    display's) a fork would copy mid-lock."""
    import threading
    import time

    import psutil

    from bespoke.review import process

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(24):
        degrade(make_punk(i % 6).pixels, "soft", seed=i)[0].save(folder / f"s{i:02d}.png")
    monkeypatch.setattr(process, "available_cpus", lambda: 2)
    me = psutil.Process()
    seen: dict[int, tuple[int, str]] = {}  # pid -> (parent, command line as last seen)
    done = threading.Event()

    def watch():  # a live thread in this process while the pool starts
        while not done.is_set():
            for child in me.children(recursive=True):
                try:  # the latest: a child caught between fork and exec still shows its parent's command
                    seen[child.pid] = (child.ppid(), " ".join(child.cmdline()))
                except psutil.Error:
                    pass
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        report = process_path(folder, Options(methods="nearest,grid")).report
    finally:
        done.set()
        watcher.join()
    assert len(report.samples) == 24
    mine = " ".join(me.cmdline())
    assert seen and all(cmdline != mine for _, cmdline in seen.values()), seen  # nothing forked from here
    servers = {pid for pid, (ppid, cmdline) in seen.items() if ppid == me.pid and "forkserver" in cmdline}
    workers = [pid for pid, (ppid, cmdline) in seen.items() if ppid in servers or "spawn_main" in cmdline]
    assert len(workers) == 2, seen


def test_reprocessing_rewrites_each_candidate_whole(tmp_path):
    run = tmp_path / "run"
    _make_run(run, palette=False)
    every_colour = process_path(run, Options(methods="grid", tolerance=0, workers=1)).report
    merged = process_path(run, Options(methods="grid", workers=1, force=True)).report
    for before, after in zip(every_colour.samples, merged.samples, strict=True):
        old, new = before.candidates["grid"], after.candidates["grid"]
        assert old.file == new.file and new.colors <= old.colors  # the same file, now a smaller picture
        data = (run / new.file).read_bytes()
        assert data.index(b"IEND") + 8 == len(data)  # nothing of the bigger PNG left after the new one's end
        with Image.open(run / new.file) as img:
            assert len(img.getcolors(24 * 24)) == new.colors
    assert any(a.candidates["grid"].colors < b.candidates["grid"].colors
               for a, b in zip(merged.samples, every_colour.samples, strict=True))
