"""`report/partial.jsonl`: the samples a `process` run has finished, so that an interrupted run resumes.

First line {"journal": JOURNAL_SCHEMA, "options": ...}; then one {"mtime_ns", "size", ...} per sample with its
`Outcome` (bespoke.review.candidates): {"sample": a records.Sample, "design": hex} or {"error": a
records.SampleError}. A journal made with other options or by another schema is started afresh; a torn or
malformed line (killed mid-write) is ignored; the journal is removed once report.json is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bespoke.review.candidates import Outcome
from bespoke.review.records import ReportFormatError, Sample

JOURNAL_FILE = "partial.jsonl"
JOURNAL_SCHEMA = 3  # follows records.REPORT_SCHEMA: a journal of other records is not reused


class Journal:
    """The finished samples of an interrupted `process` run, for the next run with the same options."""

    def __init__(self, path: Path, entries: dict[str, tuple[int, int, Outcome]]) -> None:
        self.path = path
        self._entries = entries  # sample file -> (mtime_ns, size, outcome)

    @classmethod
    def open(cls, report_dir: Path, options: dict[str, Any], *, fresh: bool = False) -> Journal:
        """The journal of `report_dir` for `options` (emptied when `fresh` or made with other options)."""
        path = Path(report_dir) / JOURNAL_FILE
        lines = [] if fresh or not path.is_file() else path.read_text(encoding="utf-8").splitlines()
        header = _json_line(lines[0]) if lines else None
        entries: dict[str, tuple[int, int, Outcome]] = {}
        if header == {"journal": JOURNAL_SCHEMA, "options": options}:
            for number, line in enumerate(lines[1:], start=2):
                entry = _entry(line, f"{path.name} line {number}")
                if entry is not None:
                    entries[entry[2].file] = entry
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"journal": JOURNAL_SCHEMA, "options": options}) + "\n", encoding="utf-8")
        return cls(path, entries)

    def reusable(self, base: Path) -> dict[str, Outcome]:
        """{sample file: outcome} of the journal's samples that are unchanged and whose candidates exist."""
        out = {}
        for file, (mtime_ns, size, outcome) in self._entries.items():
            try:
                stat = (Path(base) / file).stat()
            except OSError:
                continue
            candidates = outcome.entry.candidates if isinstance(outcome.entry, Sample) else {}
            same = stat.st_mtime_ns == mtime_ns and stat.st_size == size
            if same and all((Path(base) / c.file).is_file() for c in candidates.values()):
                out[file] = outcome
        return out

    def append(self, outcome: Outcome, sample: Path) -> None:
        """Record one finished sample (flushed at once: the next Ctrl-C may come any time)."""
        stat = Path(sample).stat()
        line = json.dumps({"mtime_ns": stat.st_mtime_ns, "size": stat.st_size, **outcome.to_json()})
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def remove(self) -> None:
        """The report is written: the journal has done its job."""
        self.path.unlink(missing_ok=True)


def _json_line(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _entry(line: str, where: str) -> tuple[int, int, Outcome] | None:
    """(mtime_ns, size, outcome) of one journal line; None for a torn or malformed one."""
    data = _json_line(line)
    if data is None or not isinstance(data.get("mtime_ns"), int) or not isinstance(data.get("size"), int):
        return None
    mtime_ns, size = data.pop("mtime_ns"), data.pop("size")
    try:
        return mtime_ns, size, Outcome.from_json(data, where)
    except ReportFormatError:
        return None
