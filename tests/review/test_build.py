"""`bespoke review`: the HTML page (every image referenced and on disk), tables, CLI, staleness, bad input."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner
from manifest_helpers import change_manifest
from review_fixtures import fake_process, make_planned_run, simulated_run

from bespoke.cli import main
from bespoke.review import build as review
from bespoke.review.process import Processed
from bespoke.run.manifest import load_manifest
from bespoke.run.paths import RunPaths


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.hrefs, self.polylines, self.refs = [], [], [], []
        self.chart = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and attrs.get("src"):
            self.srcs.append(attrs["src"])
        if tag == "a" and attrs.get("href") and not attrs["href"].startswith("#"):
            self.hrefs.append(attrs["href"])
        if tag == "svg" and attrs.get("data-chart") is not None:
            self.chart = attrs["data-chart"]
        if tag == "polyline":
            self.polylines.append({**attrs, "chart": self.chart})
        if tag == "line" and attrs.get("class") == "ref":
            self.refs.append(attrs)


def parse(html_path: Path) -> _Refs:
    refs = _Refs()
    refs.feed(html_path.read_text(encoding="utf-8"))
    return refs


def assert_every_image_on_disk(html_path: Path, reports: list[tuple[Path, dict]]):
    """Every image URL is relative, inside the page's folder and on disk; every sample has its thumbnail
    and its shown candidate (a copy of the candidate file, byte for byte)."""
    refs = parse(html_path)
    local = [u for u in refs.srcs + refs.hrefs if not u.startswith("data:")]
    assert local
    folder = html_path.parent.resolve()
    for url in local:
        target = (html_path.parent / unquote(url)).resolve()
        assert target.is_file(), url
        assert target.is_relative_to(folder), url  # nothing outside the review folder
    thumbs = [u for u in refs.srcs if "/s/" in u]
    cands = {(html_path.parent / unquote(u)).read_bytes() for u in refs.srcs if "/c/" in u}
    assert len(thumbs) == sum(len(r["samples"]) for _, r in reports)
    for run, report in reports:
        method = report["best"]["method"] if report.get("best") else report["methods"][0]
        for sample in report["samples"]:
            assert (run / sample["candidates"][method]["file"]).read_bytes() in cands  # report.json as on disk


@pytest.fixture
def two_runs(tmp_path):
    outputs = tmp_path / "outputs"
    a = simulated_run(outputs, "64-a-11111111", resolution=64, prompts=3, epochs=3)
    b = simulated_run(outputs, "128-a-22222222", resolution=128, prompts=2, epochs=4)
    return outputs, a, b


def test_single_run_review_writes_html_and_sheets(two_runs):
    _, run, _ = two_runs
    result = review.review_runs([run])
    assert result.html == RunPaths(run).report_dir / "index.html"
    assert result.processed == []  # the report was fresh
    report = json.loads((RunPaths(run).report_dir / "report.json").read_text())
    assert_every_image_on_disk(result.html, [(run, report)])
    text = result.html.read_text()
    assert "SIMULATED — not real training" in text and 'data-simulated="true"' in text
    assert report["best"]["rule"] in text
    assert "accelerate launch train_network.py" in text  # the argv
    assert all(p.is_file() for p in result.sheets["64-a-11111111"])
    assert "<script src" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")


def test_sweep_review_shares_axes_and_draws_the_baseline(two_runs):
    outputs, a, b = two_runs
    result = review.review_runs([a, b], outputs_dir=outputs)
    assert result.html.parent.parent == outputs and result.html.parent.name.startswith("review-")
    reports = [(r, json.loads((RunPaths(r).report_dir / "report.json").read_text())) for r in (a, b)]
    assert_every_image_on_disk(result.html, reports)
    refs = parse(result.html)
    colour_lines = {p["data-series"]: p for p in refs.polylines if p["chart"] == "colours"}
    # the recorded baseline is a 512 px run: not drawn beside 64 and 128 px runs
    assert set(colour_lines) == {"64 px (simulated)", "128 px (simulated)"}
    last_x = {name: float(p["points"].split()[-1].split(",")[0]) for name, p in colour_lines.items()}
    first_x = {name: float(p["points"].split()[0].split(",")[0]) for name, p in colour_lines.items()}
    # shared x axis: both runs start at epoch 1 at the same x; the 3-epoch run ends left of the 4-epoch one
    assert first_x["64 px (simulated)"] == first_x["128 px (simulated)"]
    assert last_x["64 px (simulated)"] < last_x["128 px (simulated)"]
    assert {p["chart"] for p in refs.polylines} == {"colours", "clean", "loss", "score"}
    assert not refs.refs
    text = result.html.read_text()
    assert "vs recorded 512 px baseline 216.6" in text and "n/a" in text  # the column says it does not apply
    assert (result.html.parent / "sheets" / "64-a-11111111").is_dir()  # the sheets live in the review folder
    # same order -> same folder; the review never lands inside a run
    again = review.review_runs([b, a], outputs_dir=outputs)
    assert again.html == result.html


def test_non_simulated_run_has_no_banner(tmp_path):
    run = simulated_run(tmp_path, "64-real-33333333", resolution=64, prompts=2, epochs=2, process=False)
    change_manifest(run, simulated=False)
    fake_process(run)
    result = review.review_runs([run])
    text = result.html.read_text()
    assert "SIMULATED" not in text and 'data-simulated="false"' in text


def test_stale_or_missing_report_is_processed_first(tmp_path, monkeypatch):
    calls = []

    def fake(run_dir, **kwargs):
        calls.append((Path(run_dir).name, kwargs))
        return Processed(fake_process(run_dir))

    from bespoke.review import process as process_module

    monkeypatch.setattr(process_module, "process_run", fake)  # what current_report runs on a stale report
    run = simulated_run(tmp_path, "64-stale-44444444", resolution=64, prompts=2, epochs=2, process=False)
    review.review_runs([run])
    assert [c[0] for c in calls] == ["64-stale-44444444"]
    from manifest_helpers import change_manifest

    from bespoke.review.request import default_palette

    # process_run takes the run's training palette when its run.json names a prepared dataset; this one does not
    assert "palette" not in calls[0][1] and default_palette(run) is None
    change_manifest(run, dataset={"prepared_dir": str(tmp_path / "prepared")})
    assert default_palette(run) is None  # named, but not on this machine: no palette rather than an error
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared" / "prepare.json").write_text('{"schema_version": 1, "palette": ["#000000"]}')
    assert default_palette(run) == "dataset"
    review.review_runs([run])
    assert len(calls) == 1  # fresh report: not processed again
    sample = next(RunPaths(run).sample_dir.glob("*.png"))
    import os
    import time

    later = time.time() + 5
    os.utime(sample, (later, later))
    review.review_runs([run])
    assert len(calls) == 2
    review.review_runs([run], process=False)
    assert len(calls) == 2


def test_review_runs_the_real_process_when_no_report(tmp_path):
    run = simulated_run(tmp_path, "64-real-process", resolution=64, prompts=2, epochs=2, process=False)
    result = review.review_runs([run])
    assert result.processed == ["64-real-process"]
    report = json.loads((RunPaths(run).report_dir / "report.json").read_text())
    assert report["kind"] == "bespoke.process" and len(report["samples"]) == 4
    assert_every_image_on_disk(result.html, [(run, report)])


def test_cli_review_one_and_two_runs(two_runs):
    outputs, a, b = two_runs
    runner = CliRunner()
    one = runner.invoke(main, ["review", str(a)])
    assert one.exit_code == 0, one.output
    assert (RunPaths(a).report_dir / "index.html").is_file()
    assert "64-a-11111111" in one.output and "mean colours" in one.output and "SIMULATED" in one.output

    two = runner.invoke(main, ["--outputs", str(outputs), "review", "64-a-11111111", "128-a-22222222", "--json",
                               "--quiet", "--out", str(outputs.parent / "sweep")])
    assert two.exit_code == 0, two.output
    data = json.loads(two.stdout)
    assert data["html"] == str(outputs.parent / "sweep" / "index.html")
    assert [r["run_id"] for r in data["runs"]] == ["64-a-11111111", "128-a-22222222"]
    assert all(r["simulated"] and r["best"]["epoch"] for r in data["runs"])
    assert Path(data["html"]).is_file()


def test_cli_open_uses_a_file_url(two_runs, monkeypatch):
    _, a, _ = two_runs
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    result = CliRunner().invoke(main, ["review", str(a), "--open", "--quiet"])
    assert result.exit_code == 0, result.output
    assert opened == [(RunPaths(a).report_dir / "index.html").resolve().as_uri()]
    assert "no web browser" not in result.stderr


def test_cli_open_on_a_headless_box_says_where_the_report_is(two_runs, monkeypatch):
    _, a, _ = two_runs
    monkeypatch.setattr("webbrowser.open", lambda url: False)  # what webbrowser does without a browser
    result = CliRunner().invoke(main, ["review", str(a), "--open", "--quiet"])
    assert result.exit_code == 0, result.output
    report = RunPaths(a).report_dir
    assert f"no web browser here: copy {report} to a machine with one and open index.html" in result.stderr
    assert result.stdout.strip() == f"report: {report / 'index.html'}"  # the result alone on stdout


def test_piped_output_is_never_wrapped_or_cut(two_runs, tmp_path):
    import subprocess
    import sys

    _, a, _ = two_runs
    deep = tmp_path / ("a-very-long-folder-name-that-would-wrap-at-eighty-columns-" * 3) / "sweep"
    done = subprocess.run([sys.executable, "-m", "bespoke", "review", str(a), "--out", str(deep)],
                          capture_output=True, text=True, timeout=120, env={**__import__("os").environ,
                                                                             "COLUMNS": "80"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"report: {deep / 'index.html'}" in done.stdout.splitlines()  # one line, whole
    assert "…" not in done.stdout and "\x1b[" not in done.stdout  # no truncated cells, no colour codes


def test_a_folder_of_images_that_cannot_be_read(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "x.png").write_bytes(b"")
    result = CliRunner().invoke(main, ["review", str(folder)])
    assert result.exit_code == 6
    assert "none of 1 samples could be processed" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["x.png"]  # nothing written


def test_review_of_a_plain_folder_of_samples(two_runs, tmp_path):
    _, run, _ = two_runs
    folder = tmp_path / "my samples"
    shutil.copytree(RunPaths(run).sample_dir, folder)
    result = CliRunner().invoke(main, ["review", str(folder)])
    assert result.exit_code == 0, result.output
    page = folder / "bespoke_process" / "report" / "index.html"
    assert page.is_file() and f"report: {page}" in result.stdout
    report = json.loads((folder / "bespoke_process" / "report" / "report.json").read_text())
    assert_every_image_on_disk(page, [(folder, report)])
    assert "Run settings" not in page.read_text()  # no run: no run.json facts to show
    again = CliRunner().invoke(main, ["review", str(folder / "bespoke_process"), "--no-process"])
    assert again.exit_code == 0, again.output
    assert f"report: {page}" in again.stdout


def test_unknown_run_id_suggests_a_close_one(two_runs):
    outputs, _, _ = two_runs
    result = CliRunner().invoke(main, ["--outputs", str(outputs), "review", "64-a-11111112"])
    assert result.exit_code == 4
    assert 'did you mean "64-a-11111111"' in result.output


def test_run_without_samples(tmp_path):
    run = make_planned_run(tmp_path, "64-empty-55555555", resolution=64, prompts=2, epochs=2)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    result = CliRunner().invoke(main, ["review", str(run)])
    assert result.exit_code == 4
    assert "no samples" in result.output and "status 'planned'" in result.output
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


def test_unknown_method_is_a_usage_error(two_runs):
    _, a, _ = two_runs
    result = CliRunner().invoke(main, ["review", str(a), "--method", "gird"])
    assert result.exit_code == 2
    assert 'did you mean "grid"' in result.output


def test_unreadable_report(two_runs):
    _, a, _ = two_runs
    path = RunPaths(a).report_dir / "report.json"
    path.write_text("{ nope")
    result = CliRunner().invoke(main, ["review", str(a), "--no-process"])
    assert result.exit_code == 6
    assert "unreadable report" in result.output
    assert path.read_text() == "{ nope"


def test_loss_history_falls_back_to_the_train_log(tmp_path):
    run = make_planned_run(tmp_path, "64-log", resolution=64)
    log = RunPaths(run).train_log
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        "epoch 1/2\n"
        "steps:  25%|##5       | 1/4 [00:01<00:03, 1.0it/s, avr_loss=0.2]\r"
        "steps:  50%|#####     | 2/4 [00:02<00:02, 1.0it/s, avr_loss=0.15]\n"
        "epoch 2/2\n"
        "steps:  75%|#######5  | 3/4 [00:03<00:01, 1.0it/s, avr_loss=0.125]\n"
        "steps: 100%|##########| 4/4 [00:04<00:00, 1.0it/s, avr_loss=0.1]\n"
    )
    manifest = load_manifest(run)
    assert review.loss_history(run, manifest) == [
        {"epoch": 1, "step": 1, "loss": 0.2}, {"epoch": 1, "step": 2, "loss": 0.15},
        {"epoch": 2, "step": 3, "loss": 0.125}, {"epoch": 2, "step": 4, "loss": 0.1},
    ]
    # per epoch: the running average at each epoch's last step (what sd-scripts logs as loss/epoch_average)
    assert review.epoch_loss(run, manifest) == ({1: 0.15, 2: 0.1}, "the trainer log's avr_loss at the last step "
                                                "of each epoch")
    recorded = [{"step": 1, "epoch": 1, "loss": 0.3}, {"step": 2, "epoch": 1, "loss": 0.1}]
    manifest.loss_history = recorded  # a simulated run's curve wins over any log
    assert review.loss_history(run, manifest) == recorded
    assert review.epoch_loss(run, manifest)[0] == {1: pytest.approx(0.2)}  # per-step losses: their mean
    shutil.copytree(Path(__file__).parent / "data" / "tensorboard", RunPaths(run).tensorboard_dir)
    losses, source = review.epoch_loss(run, manifest)  # the trainer's own event files win
    assert {e: round(v, 3) for e, v in losses.items()} == {1: 0.13, 2: 0.11, 3: 0.09} and "TensorBoard" in source


def test_report_of_another_kind_is_refused(two_runs):
    _, a, _ = two_runs
    path = RunPaths(a).report_dir / "report.json"
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["review", str(a), "--no-process"])
    assert result.exit_code == 6
    assert "report.json: schema_version 99; this bespoke reads process reports of schema 4 (and upgrades 2, 3)" in \
        result.output
    assert json.loads(path.read_text())["schema_version"] == 99
    assert not (RunPaths(a).report_dir / "index.html").exists()


def test_non_square_samples_are_listed_with_why(two_runs, tmp_path):
    from PIL import Image

    _, run, _ = two_runs
    folder = tmp_path / "mixed"
    shutil.copytree(RunPaths(run).sample_dir, folder)
    Image.new("RGB", (96, 64), (200, 10, 10)).save(folder / "wide.png")
    result = CliRunner().invoke(main, ["review", str(folder)])
    assert result.exit_code == 0, result.output
    text = (folder / "bespoke_process" / "report" / "index.html").read_text()
    assert "<code>wide.png</code>: not square (96x64)" in text and "crop these to the square art" in text


_OPENED: list[str] | None = None  # file names opened for reading while a test listens (audit hook below)


def _listen(event: str, args: tuple) -> None:
    if _OPENED is None or event != "open" or not isinstance(args[0], (str, bytes, Path)):
        return
    mode, flags = args[1], args[2] or 0
    reading = ("r" in mode and "+" not in mode) if isinstance(mode, str) else (flags & 3) == os.O_RDONLY
    if reading:
        _OPENED.append(os.path.basename(os.fsdecode(args[0])))


def test_a_review_of_a_stale_run_reads_each_file_once(tmp_path):
    """run.json, report.json and the prepared dataset's prepare.json are read once each, processing included."""
    global _OPENED
    run = simulated_run(tmp_path, "64-once-66666666", resolution=64, prompts=2, epochs=2)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "prepare.json").write_text(json.dumps({"schema_version": 1, "palette": ["#000000", "#ffffff"]}))
    change_manifest(run, dataset={"prepared_dir": str(prepared)})
    later = time.time() + 5
    for sample in RunPaths(run).sample_dir.glob("*.png"):  # every sample newer than the report: stale
        os.utime(sample, (later, later))
    sys.addaudithook(_listen)
    _OPENED = []
    try:
        result = review.review_runs([run])
    finally:
        opened, _OPENED = _OPENED, None
    assert result.processed == ["64-once-66666666"]  # stale: processed again, with the dataset's palette
    palette = result.views[0].report.palette
    assert palette is not None and (palette["mode"], palette["size"]) == ("dataset", 2)
    counts = {name: opened.count(name) for name in ("run.json", "report.json", "prepare.json")}
    assert counts == {"run.json": 1, "report.json": 1, "prepare.json": 1}, opened
