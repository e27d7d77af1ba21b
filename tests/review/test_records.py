"""report.json typed: what the writer writes the loader reads back, schemas 2 and 3 are upgraded, anything else is refused
with one line naming the file and the place in it (and nothing on disk is touched); the journal holds typed
records too."""

from __future__ import annotations

import json

import pytest
from review_fixtures import fake_process, simulated_run

from bespoke.errors import ProcessError
from bespoke.review.candidates import Outcome
from bespoke.review.journal import JOURNAL_FILE, Journal
from bespoke.review.process import is_current
from bespoke.review.records import REPORT_SCHEMA, V2_NOVELTY_TOLERANCE, ProcessReport
from bespoke.review.report import load_report, report_file
from bespoke.review.samples import find_samples
from bespoke.review.selection import ANALYSIS_VERSION
from bespoke.run.paths import RunPaths


@pytest.fixture
def run(tmp_path):
    run = simulated_run(tmp_path, "64-rec-11111111", resolution=64, prompts=2, epochs=2, process=False)
    fake_process(run)
    return run


def _rewrite(run, change) -> str:
    path = report_file(run)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path.read_text()


def test_what_is_written_is_read_back(run):
    path = report_file(run)
    on_disk = json.loads(path.read_text())
    report = load_report(run)
    assert report.to_json() == on_disk
    assert list(on_disk)[:2] == ["schema_version", "kind"] and on_disk["schema_version"] == REPORT_SCHEMA
    lines = path.read_text().splitlines()
    assert sum(line.startswith('  {"file": ') for line in lines) == len(report.samples)  # one sample a line
    assert ProcessReport.from_json(report.to_json()) == report


def _as_v3(data):
    """A report as schema 3 wrote it: --correct-cast recorded, none of the score's terms, margin or prompts."""
    data["schema_version"] = 3
    data["correct_cast"] = False
    for key in ("analysis_version", "weights", "prompts"):
        data.pop(key, None)
    for sample in data["samples"]:
        for key in ("terms", "tags", "score"):
            sample["scoring"].pop(key, None)
        sample.pop("label", None)
    for row in data["epochs"]:
        row.pop("adherence", None)
        row["score"].pop("interval", None), row["score"].pop("quality", None)
    if data["best"] is not None:
        for key in ("highest", "tied", "more_seeds", "resolved"):
            data["best"].pop(key, None)


def test_a_schema_3_report_is_upgraded_on_read_and_redone_by_process(run):
    written = load_report(run)
    _rewrite(run, _as_v3)
    upgraded = load_report(run)
    assert not hasattr(upgraded, "correct_cast")  # the option is gone; an old report's value is dropped
    assert upgraded.analysis_version == 0 != ANALYSIS_VERSION  # so process and review make it again
    assert [s.file for s in upgraded.samples] == [s.file for s in written.samples]
    assert upgraded.best is not None and upgraded.best.epoch == written.best.epoch and upgraded.best.tied == []
    assert not is_current(upgraded, run, find_samples(run))
    assert json.loads(report_file(run).read_text())["schema_version"] == 3  # reading never rewrites


def test_a_schema_2_report_is_upgraded_on_read(run):
    written = load_report(run)

    def as_v2(data):  # reports from before novelty_tolerance was recorded
        _as_v3(data)
        data["schema_version"] = 2
        del data["correct_cast"], data["novelty_tolerance"]

    _rewrite(run, as_v2)
    upgraded = load_report(run)
    assert upgraded.novelty_tolerance == V2_NOVELTY_TOLERANCE
    assert [s.file for s in upgraded.samples] == [s.file for s in written.samples]
    assert json.loads(report_file(run).read_text())["schema_version"] == 2  # reading never rewrites


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["samples"][1]["candidates"]["grid"].update(colour=3),
     "report.json: samples[1].candidates.grid: unknown key(s) colour; run `bespoke process"),
    (lambda d: d["epochs"][0]["score"].pop("total"), "report.json: epochs[0].score: missing key(s) total;"),
    (lambda d: d.update(errors={"file": "x"}), "report.json: errors: not a JSON array;"),
    (lambda d: d["samples"].__setitem__(0, "a.png"), "report.json: samples[0]: not a JSON object;"),
    (lambda d: d.update(best=None, extra=1), "report.json: unknown key(s) extra;"),
    (lambda d: d.update(kind="bespoke.export"), "report.json: not a bespoke process report (kind 'bespoke.export')"),
    (lambda d: d.update(schema_version=5), "report.json: schema_version 5; this bespoke reads process reports of "
                                           "schema 4 (and upgrades 2, 3)"),
])
def test_anything_else_is_one_line_naming_the_file_and_the_place(run, change, message):
    text = _rewrite(run, change)
    with pytest.raises(ProcessError) as error:
        load_report(run)
    assert message in str(error.value) and str(report_file(run)) in str(error.value)
    assert "\n" not in str(error.value)
    assert report_file(run).read_text() == text  # nothing on disk touched


def test_the_journal_keeps_typed_records_and_skips_a_torn_line(run):
    report = load_report(run)
    report_dir = RunPaths(run).report_dir
    options = {"methods": ["grid"]}
    journal = Journal.open(report_dir, options)
    first, second = report.samples[:2]
    design = bytes(range(256)) * 6 + bytes(192)  # 24 x 24 x 3
    journal.append(Outcome(first, design), run / first.file)
    journal.append(Outcome(second, design), run / second.file)
    with open(report_dir / JOURNAL_FILE, "a") as handle:
        handle.write('{"mtime_ns": 1, "size": 2, "sample": {"file": "torn')  # killed mid-write
    again = Journal.open(report_dir, options).reusable(run)
    assert set(again) == {first.file, second.file}
    assert again[first.file].entry == first and again[first.file].design == design
    assert Journal.open(report_dir, {"methods": ["nearest"]}).reusable(run) == {}  # other options: afresh
    header = json.loads((report_dir / JOURNAL_FILE).read_text().splitlines()[0])
    assert header == {"journal": 3, "options": {"methods": ["nearest"]}}
