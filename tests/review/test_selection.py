"""The best-epoch rule on runs built to fool the old one: NaN-black samples, near copies of training images,
and an over-trained simulated run; plus `process` resuming after Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from locations import REPO
from manifest_helpers import write_run_json
from PIL import Image

from bespoke.dataset.layout import layout_for
from bespoke.dataset.report import SCHEMA_VERSION
from bespoke.dataset.synthetic import make_punk
from bespoke.demo.degrade import degrade
from bespoke.errors import Interrupted
from bespoke.review import candidates, process
from bespoke.review.process import process_path
from bespoke.review.request import ProcessOptions as Options

TRAIN = [make_punk(i).pixels for i in range(8)]


def _prepared(root, resolution=512):
    """A prepared dataset as `bespoke prepare` leaves it: R px images, their names, layout and palette."""
    prepared = root / "prepared"
    prepared.mkdir(parents=True)
    layout = layout_for("stretch", resolution)
    for i, punk in enumerate(TRAIN):
        Image.fromarray(punk).resize((resolution, resolution), Image.NEAREST).save(prepared / f"train_{i}.png")
    colors = np.unique(np.concatenate([p.reshape(-1, 3) for p in TRAIN]), axis=0)
    (prepared / "prepare.json").write_text(json.dumps({
        "schema_version": SCHEMA_VERSION, "palette": ["#" + bytes(int(v) for v in c).hex() for c in colors],
        "images": [{"name": f"train_{i}"} for i in range(len(TRAIN))], "layout": layout.to_json()}))
    return prepared, layout


def _run(tmp_path, epochs: dict[int, list]):
    """A finished run whose epoch e holds the given 512 px images."""
    run = tmp_path / "run"
    prepared, layout = _prepared(tmp_path)
    write_run_json(run, id="run-512", status="finished", resolution=512,
                   dataset={"prepared_dir": str(prepared), "layout": layout.to_json()})
    sample = run / "model" / "sample"
    sample.mkdir(parents=True)
    for epoch, images in epochs.items():
        for p, image in enumerate(images):
            image.save(sample / f"lora_e{epoch:06d}_{p:02d}_20261122023155_{p + 1}.png")
    return run


def _new(seed):
    return degrade(make_punk(1000 + seed).pixels, "soft", seed=seed)[0]


def test_nan_black_samples_are_degenerate_and_never_best(tmp_path):
    black = Image.new("RGB", (512, 512))
    run = _run(tmp_path, {0: [_new(0), _new(1)], 1: [_new(2), _new(3)], 2: [black, black], 3: [_new(4), black]})
    report = process_path(run, Options(workers=1)).report
    blacks = [s for s in report.samples if s.epoch == 2]
    assert all(s.degenerate == "nan-black" and not s.clean for s in blacks)
    assert all(not c.clean for s in blacks for c in s.candidates.values())
    rows = {r.epoch: r for r in report.epochs}
    assert rows[2].score.total == 0.0 and rows[2].degenerate_pct == 100
    assert rows[3].score.total < rows[1].score.total  # half black: half the score
    assert report.best is not None and report.best.epoch == 1


def test_near_copies_of_training_images_lose_to_new_designs(tmp_path):
    copies = [degrade(TRAIN[i], "soft", seed=i)[0] for i in range(3)]
    run = _run(tmp_path, {1: [_new(i) for i in range(3)], 2: copies})
    report = process_path(run, Options(palette="dataset", workers=1)).report
    for s in report.samples:
        novelty = s.candidates["grid-palette"].novelty
        assert novelty is not None
        if s.epoch == 2:
            assert novelty.near_copy and novelty.nearest == f"train_{s.prompt_index}"
        else:
            assert not novelty.near_copy
    rows = {r.epoch: r for r in report.epochs}
    assert rows[2].near_copy_pct == 100 and rows[1].near_copy_pct == 0
    assert rows[2].score.terms["new"] < 0.01 and rows[1].score.terms["new"] > 0.99
    assert report.best is not None and report.best.epoch == 1
    assert report.training is not None and report.training.images == len(TRAIN)


def test_one_design_drawn_many_times_is_not_varied(tmp_path):
    same = [degrade(make_punk(2000).pixels, "soft", seed=s)[0] for s in range(3)]
    run = _run(tmp_path, {1: same, 2: [_new(i) for i in range(3)]})
    rows = {r.epoch: r for r in process_path(run, Options(workers=1)).report.epochs}
    assert rows[1].diversity == pytest.approx(1 / 3, abs=0.01) and rows[2].diversity == 1


def test_interrupted_process_resumes_with_the_finished_samples(tmp_path, monkeypatch):
    run = _run(tmp_path, {1: [_new(i) for i in range(3)], 2: [_new(3 + i) for i in range(3)]})
    calls = []
    real = candidates.process_sample

    def flaky(item):
        calls.append(item[0])
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(item)

    monkeypatch.setattr(process, "process_sample", flaky)
    with pytest.raises(Interrupted) as info:
        process_path(run, Options(workers=1))
    assert "3 of 6 samples done and kept in" in str(info.value) and "run the same command again" in str(info.value)
    assert not (run / "report" / "report.json").exists()
    calls.clear()
    report = process_path(run, Options(workers=1)).report
    assert len(calls) == 3 and len(report.samples) == 6  # only the 3 unfinished ones were processed
    assert not (run / "report" / "partial.jsonl").exists()
    monkeypatch.undo()
    fresh = process_path(run, Options(workers=1, force=True)).report
    assert [s.scoring for s in fresh.samples] == [s.scoring for s in report.samples]
    assert fresh.epochs == report.epochs  # the journal's designs score diversity as the fresh run does


def _lines(path) -> int:
    try:
        return len(path.read_text().splitlines())
    except OSError:
        return 0


def _default_sigint() -> None:
    """A child started from a shell that ignores SIGINT (background jobs) would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_during_process_is_one_line_and_resumable(tmp_path):
    COUNT = 120
    folder = tmp_path / "many"
    folder.mkdir()
    # enough samples that the rest cannot all be done between seeing the 4th journal line and the Ctrl-C
    # (a 512 px sample takes ~10 ms of a worker: 40 left too small a margin once process got faster)
    for i in range(COUNT):
        _new(i % 6).save(folder / f"s{i:02d}.png")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"}
    cmd = [sys.executable, "-c", "from bespoke.cli import main; main()", "process", str(folder), "--workers", "2"]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, preexec_fn=_default_sigint)
    try:
        journal = folder / "bespoke_process" / "report" / "partial.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None and _lines(journal) < 4:
            time.sleep(0.02)
        assert child.poll() is None, "process finished before it could be interrupted"
        os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        try:
            out, err = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGABRT)  # faulthandler prints where every thread of it waits
            pytest.fail(f"process still running 60 s after Ctrl-C:\n{child.communicate(timeout=30)[1][-4000:]}")
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)  # never leave it, its fork server or its workers behind
            child.wait()
    assert child.returncode == 130, (out, err)
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    message = [line for line in (out + err).splitlines() if "interrupted" in line]
    assert len(message) == 1 and "run the same command again" in message[0]
    kept = _lines(journal) - 1
    again = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert len(json.loads(again.stdout)["samples"]) == COUNT and kept >= 3


def test_ctrl_c_while_the_report_is_written_is_one_line_and_the_next_call_writes_it(tmp_path, monkeypatch):
    folder = tmp_path / "few"
    folder.mkdir()
    for i in range(3):
        _new(i).save(folder / f"s{i}.png")
    build = process._report

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(process, "_report", interrupted)
    with pytest.raises(Interrupted, match="while writing its report: all 3 samples are done") as caught:
        process_path(folder, Options(workers=1))
    assert caught.value.exit_code == 130
    journal = folder / "bespoke_process" / "report" / "partial.jsonl"
    assert _lines(journal) == 4 and not (folder / "bespoke_process" / "report" / "report.json").exists()
    monkeypatch.setattr(process, "_report", build)
    monkeypatch.setattr(process, "process_sample", None)  # a sample processed again would fail: none is
    report = process_path(folder, Options(workers=1)).report
    assert len(report.samples) == 3 and not journal.exists()
