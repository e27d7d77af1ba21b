"""The user's blind A/B votes and keep/reject marks: one append-only JSON-lines file, `votes.jsonl`, in the
review folder of the runs voted on (`<run>/report/` for one run, the `review-<hash>/` folder for several).

Every line is one record, self-contained, UTF-8 JSON (other tools read it with any JSON-lines reader):

- `{"v": 1, "kind": "vote", "id", "time", "voter", "a": ITEM, "b": ITEM, "left": "a"|"b",
  "answer": "a"|"b"|"same"|"neither"}`: two candidates of the same prompt and seed were shown side by side
  (`left` says which was on the left; the page never said which was which) and the voter preferred `a`, `b`,
  saw no difference (`same`) or found neither usable (`neither`). `a` is the earlier of the two (run id,
  epoch), so one pair is always written in the same order.
- `{"v": 1, "kind": "mark", "id", "time", "voter", "item": ITEM, "mark": "keep"|"reject"}`: a single
  candidate marked for export (`bespoke export RUN --kept`) or against it.
- `{"v": 1, "kind": "undo", "id", "time", "voter", "undoes": ID}`: the voter took back record ID (a vote
  or mark); nothing is ever rewritten or removed.

ITEM is `{"run": run id (a plain folder: its name), "epoch", "sample": the sample file, "candidate": the
candidate file shown (both relative to the run folder), "method", "prompt_index", "seed"}`. `id` is unique
per record (a second record with an id already in the file is not written: a retried request or a second
browser never duplicates a vote), `time` is local ISO time with its offset, `voter` the --voter name.

Writing: under an OS lock on `votes.jsonl.lock` (filelock: two browsers, two `bespoke vote` processes on the
same folder), the file is re-read for the id, then the line is appended with one O_APPEND write and fsync'd.
A crash mid-write leaves at most one torn last line: readers skip a line that is not a whole record, and the
next writer starts on a fresh line. Votes of several voters in one file are merged by reading it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from bespoke.clock import now_iso
from bespoke.errors import UsageError

VOTES_FILE = "votes.jsonl"
RECORD_VERSION = 1
ANSWERS = ("a", "b", "same", "neither")
MARKS = ("keep", "reject")
ITEM_KEYS = ("run", "epoch", "sample", "candidate", "method", "prompt_index", "seed")
LOCK_TIMEOUT = 30.0


@dataclass(frozen=True, order=True)
class Item:
    """One candidate as a vote names it: run, epoch and files (relative to the run folder)."""

    run: str
    epoch: int
    sample: str
    candidate: str
    method: str
    prompt_index: int | None = None
    seed: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the candidate: its run and candidate file."""
        return (self.run, self.candidate)

    @property
    def player(self) -> tuple[str, int]:
        """What a ranking ranks: the run's epoch."""
        return (self.run, self.epoch)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in ITEM_KEYS}

    @classmethod
    def from_json(cls, data: object) -> Item:
        if not isinstance(data, dict) or set(data) != set(ITEM_KEYS):
            raise ValueError(f"an item has the keys {', '.join(ITEM_KEYS)}")
        if not all(isinstance(data[k], str) for k in ("run", "sample", "candidate", "method")):
            raise ValueError("an item's run, sample, candidate and method are strings")
        if not _is_int(data["epoch"]):
            raise ValueError("an item's epoch is an integer")
        if not all(data[k] is None or _is_int(data[k]) for k in ("prompt_index", "seed")):
            raise ValueError("an item's prompt_index and seed are integers or null")
        return cls(**data)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Vote:
    """One A/B answer (see the module doc)."""

    id: str
    time: str
    voter: str
    a: Item
    b: Item
    left: str
    answer: str

    @property
    def pair(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """The unordered pair of candidates voted on."""
        return (self.a.key, self.b.key)


@dataclass(frozen=True)
class Mark:
    """One keep/reject mark on a single candidate."""

    id: str
    time: str
    voter: str
    item: Item
    mark: str


@dataclass(frozen=True)
class Undo:
    """The voter took back record `undoes`."""

    id: str
    time: str
    voter: str
    undoes: str


Record = Vote | Mark | Undo


def new_id() -> str:
    """A fresh record id (random, 32 hex digits)."""
    return uuid.uuid4().hex


def ordered(first: Item, second: Item) -> tuple[Item, Item]:
    """The two items of a pair in file order: the earlier (run, epoch, candidate) is `a`."""
    return (first, second) if first <= second else (second, first)


def make_vote(voter: str, left: Item, right: Item, pressed: str, vote_id: str | None = None) -> Vote:
    """The vote for `pressed` ("left", "right", "same" or "neither") on `left` | `right` as they were shown."""
    if pressed not in ("left", "right", "same", "neither"):
        raise UsageError(f"answer {pressed!r}: one of left, right, same, neither")
    a, b = ordered(left, right)
    left_side = "a" if left == a else "b"
    answer = {"left": left_side, "right": "b" if left_side == "a" else "a"}.get(pressed, pressed)
    return Vote(vote_id or new_id(), now_iso(), voter, a, b, left_side, answer)


def make_mark(voter: str, item: Item, mark: str, mark_id: str | None = None) -> Mark:
    if mark not in MARKS:
        raise UsageError(f"mark {mark!r}: one of {', '.join(MARKS)}")
    return Mark(mark_id or new_id(), now_iso(), voter, item, mark)


def encode(record: Record) -> bytes:
    """The record's line in the file: compact UTF-8 JSON and its newline."""
    return (json.dumps(to_json(record), ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def to_json(record: Record) -> dict:
    """The record as its line in the file."""
    head = {"v": RECORD_VERSION, "kind": _KIND[type(record)], "id": record.id, "time": record.time,
            "voter": record.voter}
    if isinstance(record, Vote):
        return {**head, "a": record.a.to_json(), "b": record.b.to_json(), "left": record.left,
                "answer": record.answer}
    if isinstance(record, Mark):
        return {**head, "item": record.item.to_json(), "mark": record.mark}
    return {**head, "undoes": record.undoes}


_KIND: dict[type, str] = {Vote: "vote", Mark: "mark", Undo: "undo"}


def from_json(data: object) -> Record:
    """The record of one line's JSON; ValueError when it is not a whole record of this version."""
    if not isinstance(data, dict) or data.get("v") != RECORD_VERSION:
        raise ValueError(f"not a version-{RECORD_VERSION} votes record")
    head: dict[str, str] = {}
    for key in ("id", "time", "voter"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise ValueError("a record has a non-empty id, time and voter")
        head[key] = value
    kind = data.get("kind")
    if kind == "vote" and data.get("left") in ("a", "b") and data.get("answer") in ANSWERS:
        return Vote(**head, a=Item.from_json(data.get("a")), b=Item.from_json(data.get("b")),
                    left=data["left"], answer=data["answer"])
    if kind == "mark" and data.get("mark") in MARKS:
        return Mark(**head, item=Item.from_json(data.get("item")), mark=data["mark"])
    if kind == "undo" and isinstance(data.get("undoes"), str):
        return Undo(**head, undoes=data["undoes"])
    raise ValueError(f"kind {kind!r}: not a whole vote, mark or undo record")


@dataclass
class Read:
    """What a votes file holds: its records in file order (each id once) and how many lines were skipped
    (a torn last line after a crash, or a line some other tool wrote that is not a record)."""

    records: list[Record] = field(default_factory=list)
    skipped: int = 0

    @property
    def ids(self) -> set[str]:
        return {r.id for r in self.records}


def read_votes(path: Path) -> Read:
    """Every whole record of `path` (none when it does not exist yet)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return Read()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the votes file ({exc.strerror})") from exc
    out = Read()
    seen: set[str] = set()
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = from_json(json.loads(line.decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            out.skipped += 1
            continue
        if record.id not in seen:
            seen.add(record.id)
            out.records.append(record)
    return out


def merged(reads: Iterable[Read]) -> Read:
    """Several votes files read as one: each id once, records in time order (a file's own order kept for
    records of the same second)."""
    out = Read()
    seen: set[str] = set()
    for read in reads:
        out.skipped += read.skipped
        for record in read.records:
            if record.id not in seen:
                seen.add(record.id)
                out.records.append(record)
    out.records.sort(key=lambda r: r.time)
    return out


def _append_line(path: Path, line: bytes) -> None:
    """One O_APPEND write of `line`, after a newline when a crash left the file without its last one; fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


class VotesFile:
    """The votes file of one review folder, written safely by any number of threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT)

    def read(self) -> Read:
        return read_votes(self.path)

    def append(self, record: Record) -> bool:
        """Append `record` unless a record with its id is already there; True when it was written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if record.id in self.read().ids:
                return False
            _append_line(self.path, encode(record))
        return True

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            with self._lock:
                yield
        except Timeout as exc:
            raise UsageError(f"{self._lock.lock_file}: another process has held the votes file's lock for "
                             f"{LOCK_TIMEOUT:.0f} s; stop it or try again") from exc

    def undo_last(self, voter: str, undo_id: str | None = None) -> Record | None:
        """Take back `voter`'s latest record still in effect (a vote or mark); the record undone, or None when
        there is nothing to undo. A repeated `undo_id` undoes nothing more."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            read = self.read()
            if undo_id is not None and undo_id in read.ids:
                return None
            mine = [r for r in in_effect(read.records) if r.voter == voter]
            if not mine:
                return None
            target = mine[-1]
            undo = Undo(undo_id or new_id(), now_iso(), voter, target.id)
            _append_line(self.path, encode(undo))
        return target


def in_effect(records: Iterable[Record]) -> list[Vote | Mark]:
    """The votes and marks not taken back, in file order (an undo takes back a record of its own voter)."""
    records = list(records)
    voters = {r.id: r.voter for r in records}
    undone = {r.undoes for r in records if isinstance(r, Undo) and voters.get(r.undoes) == r.voter}
    return [r for r in records if not isinstance(r, Undo) and r.id not in undone]


def votes_of(records: Iterable[Record], voter: str | None = None) -> list[Vote]:
    """The votes in effect (of one voter, or of everyone: several voters' votes are merged)."""
    return [r for r in in_effect(records) if isinstance(r, Vote) and (voter is None or r.voter == voter)]


def kept(records: Iterable[Record]) -> dict[tuple[str, str], Mark]:
    """Per candidate (run, candidate file), its latest mark in effect whatever the voter; only `keep` ones."""
    latest: dict[tuple[str, str], Mark] = {}
    for record in in_effect(records):
        if isinstance(record, Mark):
            latest[record.item.key] = record
    return {key: mark for key, mark in latest.items() if mark.mark == "keep"}
