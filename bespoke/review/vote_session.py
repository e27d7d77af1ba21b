"""One voter's session on the vote page: which pair each open page shows, on which side, and the answers.

The page only ever sees opaque tokens: a presentation token per pair shown (it becomes the vote's id, so a
retried answer is written once) and image addresses made of it. Which candidate is on the left is drawn at
random for every presentation and kept here; the page never learns a run, an epoch or a file name.
Each open page (a `client`, a random id the page keeps in its tab's session storage: a reload keeps it,
another tab or browser has its own) has at most one pair on show; asking again (a reload) replaces it. Several pages, and several `bespoke vote` processes on the same
folder, share the votes file (bespoke.review.votes), which is re-read on every question.
"""

from __future__ import annotations

import io
import random
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bespoke.errors import UsageError
from bespoke.review.vote_pairs import Pair, PairChooser, Source
from bespoke.review.votes import Item, Mark, Vote, VotesFile, in_effect, make_mark, make_vote, votes_of

SIDES = ("left", "right")
PICTURES = ("candidate", "sample")


@dataclass(frozen=True)
class Shown:
    """One pair on show: its token, the items as placed, and the page it is on."""

    token: str
    left: Item
    right: Item
    client: str

    @property
    def pair_key(self) -> tuple:
        return Pair(*sorted((self.left, self.right))).key

    def side(self, name: str) -> Item:
        return self.left if name == "left" else self.right


class SessionError(ValueError):
    """A request the session cannot honour (an unknown token, a bad answer): the page shows the message."""


class VoteSession:
    """The state behind one `bespoke vote` server (thread-safe: the server answers pages in threads)."""

    def __init__(self, sources: list[Source], chooser: PairChooser, votes: VotesFile, voter: str,
                 seed: int | None = None) -> None:
        self.sources = {s.run_id: s for s in sources}
        self.chooser = chooser
        self.votes = votes
        self.voter = voter
        self._shown: dict[str, Shown] = {}
        self._by_client: dict[str, str] = {}
        self._again: dict[str, Pair] = {}
        self._lock = threading.Lock()
        self._images: dict[Path, bytes] = {}
        self._coin = secrets.SystemRandom() if seed is None else random.Random(seed)

    def _place(self, pair: Pair, client: str) -> Shown:
        left, right = (pair.a, pair.b) if self._coin.random() < 0.5 else (pair.b, pair.a)
        return Shown(secrets.token_hex(16), left, right, client)

    def next(self, client: str) -> dict:
        """The pair for `client`'s page now (a new one, with sides drawn afresh) and the progress line."""
        records = self.votes.read().records
        votes = votes_of(records)
        with self._lock:
            old = self._by_client.pop(client, None)
            if old:
                self._shown.pop(old, None)
            reserved = [s.pair_key for s in self._shown.values()]
            pair = self._again.pop(client, None) or self.chooser.next(votes, self.voter, reserved)
            shown = self._place(pair, client)
            self._shown[shown.token] = shown
            self._by_client[client] = shown.token
        return self._describe(shown, records)

    def _describe(self, shown: Shown, records) -> dict:
        marks = {r.item.key: r.mark for r in in_effect(records) if isinstance(r, Mark) and r.voter == self.voter}
        return {"token": shown.token, "voter": self.voter,
                "progress": self.chooser.progress(votes_of(records), self.voter),
                **{side: {"candidate": f"/img/{shown.token}/{side}/candidate",
                          "sample": f"/img/{shown.token}/{side}/sample",
                          "mark": marks.get(shown.side(side).key)} for side in SIDES}}

    def _take(self, token: str) -> Shown:
        with self._lock:
            shown = self._shown.get(token)
        if shown is None:
            raise SessionError("that pair is no longer on show (the page was open elsewhere or the server "
                               "restarted); here is the next one")
        return shown

    def answer(self, token: str, pressed: str) -> bool:
        """Record the answer to the pair on show as `token`; True when written (False: already recorded)."""
        shown = self._take(token)
        if pressed not in ("left", "right", "same", "neither"):
            raise SessionError(f"answer {pressed!r}: left, right, same or neither")
        written = self.votes.append(make_vote(self.voter, shown.left, shown.right, pressed, vote_id=token))
        with self._lock:
            self._shown.pop(token, None)
            if self._by_client.get(shown.client) == token:
                del self._by_client[shown.client]
        return written

    def mark(self, token: str, side: str, mark: str, mark_id: str) -> None:
        """Mark the candidate shown on `side` of `token` keep or reject (the pair stays on show)."""
        if side not in SIDES:
            raise SessionError(f"side {side!r}: left or right")
        item = self._take(token).side(side)
        try:
            self.votes.append(make_mark(self.voter, item, mark, mark_id=mark_id))
        except UsageError as exc:
            raise SessionError(str(exc)) from exc

    def undo(self, client: str, undo_id: str) -> str | None:
        """Take back this voter's latest vote or mark; a taken-back vote's pair is shown next on `client`'s
        page. Returns "vote", "mark" or None (nothing to undo)."""
        record = self.votes.undo_last(self.voter, undo_id)
        if isinstance(record, Vote):
            with self._lock:
                self._again[client] = Pair(record.a, record.b)
            return "vote"
        return None if record is None else "mark"

    def image(self, token: str, side: str, picture: str) -> bytes:
        """The PNG of one side's candidate or sample, re-encoded (no text chunks: nothing names the file)."""
        if side not in SIDES or picture not in PICTURES:
            raise SessionError("no such picture")
        item = self._take(token).side(side)
        path = self.sources[item.run].folder / (item.candidate if picture == "candidate" else item.sample)
        if path not in self._images:
            with Image.open(path) as img:
                buffer = io.BytesIO()
                img.convert("RGB").save(buffer, format="PNG")
            self._images[path] = buffer.getvalue()
        return self._images[path]
