"""Captions as sd-scripts reads them: checks, the optional trigger phrase, and length statistics.

sd-scripts (`read_caption` in library/train_util.py) opens `<stem>.txt` as UTF-8, takes `lines[0].strip()`
and asserts the file is not empty. So bespoke keeps the user's bytes exactly, rejects what sd-scripts would
crash on (not UTF-8, empty), and warns about what it would silently drop (every line after the first).

Token counts are approximate: CLIP's pre-tokenizer splits text into letter runs, single digits and
punctuation runs; BPE may split rare words further, so real counts are a little higher, never lower.
One CLIP window holds 75 tokens; `max_token_length = 225` extends that to three windows.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Any

CLIP_WINDOW = 75
MAX_TOKEN_LENGTH = 225
BOM = "\ufeff"

# Letter runs, single digits, punctuation runs: the shape of CLIP's pre-tokenizer regex without \p{..}.
_TOKEN_RE = re.compile(r"[^\W\d_]+|\d|[^\s\w]+|_+")
_NEWLINE_RE = re.compile(r"\r\n|\r|\n")


class CaptionProblem(ValueError):
    """A caption sd-scripts cannot use; the message says what is wrong (without the file name)."""


@dataclass(frozen=True)
class Caption:
    """One caption file's content and what sd-scripts will see of it."""

    raw: bytes  # the bytes written to the prepared dataset (user's bytes, trigger prepended if asked)
    text: str  # what sd-scripts trains on: the first line, stripped
    extra_lines: int  # non-empty lines after the first (sd-scripts ignores them)
    has_bom: bool
    trigger_added: bool

    @property
    def chars(self) -> int:
        """Characters of the trained text."""
        return len(self.text)

    @property
    def tags(self) -> int:
        """Comma-separated tags of the trained text."""
        return count_tags(self.text)

    @property
    def tokens(self) -> int:
        """Approximate CLIP tokens of the trained text."""
        return approx_clip_tokens(self.text)


def count_tags(text: str) -> int:
    """Comma-separated, non-empty tags (what shuffle_caption / keep_tokens count)."""
    return sum(1 for part in text.split(",") if part.strip())


def _tags(text: str) -> list[str]:
    return [part.strip() for part in text.split(",")]


def approx_clip_tokens(text: str) -> int:
    """Approximate CLIP token count (a lower bound: BPE can split rare words into several tokens)."""
    return len(_TOKEN_RE.findall(text.lower()))


def check_trigger(trigger: str | None) -> str | None:
    """Normalise a trigger phrase (strip); reject an empty or multi-line one. Returns None for no trigger."""
    if trigger is None:
        return None
    cleaned = trigger.strip()
    if not cleaned:
        raise ValueError("the trigger phrase is empty; pass text such as --trigger \"bspk punk\" or leave it out")
    if "\n" in cleaned or "\r" in cleaned:
        raise ValueError("the trigger phrase has a line break; sd-scripts only reads a caption's first line")
    return cleaned


def parse_caption(raw: bytes, trigger: str | None = None) -> Caption:
    """Decode and check caption bytes; prepend `trigger + ", "` unless it is already the first tag.

    Raises CaptionProblem when sd-scripts could not use the caption (not UTF-8, empty first line).
    """
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaptionProblem(
            f"not UTF-8 (byte {exc.start}); sd-scripts reads captions as UTF-8, re-save the file as UTF-8"
        ) from exc
    has_bom = decoded.startswith(BOM)
    body = decoded[1:] if has_bom else decoded
    lines = _NEWLINE_RE.split(body)  # the universal newlines of Python's text mode, as sd-scripts reads
    first = lines[0].strip() if lines else ""
    if not first:
        what = "empty" if not body.strip() else "empty on its first line (sd-scripts reads only that line)"
        raise CaptionProblem(f"caption is {what}; write the caption on the first line")
    extra = sum(1 for line in lines[1:] if line.strip())
    added = False
    out = raw
    if trigger:
        wanted = _tags(trigger)
        if _tags(first)[:len(wanted)] != wanted:
            prefix = trigger + ", "
            # keep a BOM at the very start so the file stays a well-formed UTF-8-with-BOM file
            out = (BOM + prefix + body).encode("utf-8") if has_bom else prefix.encode("utf-8") + raw
            first = prefix + first
            added = True
    return Caption(raw=out, text=first, extra_lines=extra, has_bom=has_bom, trigger_added=added)


def _spread(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": min(values), "mean": round(statistics.fmean(values), 1), "max": max(values)}


def caption_stats(captions: list[Caption]) -> dict[str, Any]:
    """Count, min/mean/max of characters, tags and approximate CLIP tokens, and how many are long."""
    tokens = [c.tokens for c in captions]
    return {
        "count": len(captions),
        "chars": _spread([c.chars for c in captions]),
        "tags": _spread([c.tags for c in captions]),
        "tokens_approx": _spread(tokens),
        "over_75_tokens": sum(1 for t in tokens if t > CLIP_WINDOW),
        "over_225_tokens": sum(1 for t in tokens if t > MAX_TOKEN_LENGTH),
        "multi_line": sum(1 for c in captions if c.extra_lines),
        "with_bom": sum(1 for c in captions if c.has_bom),
        "trigger_added": sum(1 for c in captions if c.trigger_added),
    }


def caption_warnings(stats: dict[str, Any], names_multi_line: list[str], names_bom: list[str]) -> list[str]:
    """Human warnings derived from the stats (long captions hurt in the user's notes)."""
    warnings = []
    count = stats["count"] or 1
    if stats["over_75_tokens"]:
        warnings.append(
            f"{stats['over_75_tokens']}/{count} captions exceed one CLIP window of {CLIP_WINDOW} tokens (approx., "
            f"max {stats['tokens_approx']['max']}); the notes found verbose captions hurt: shorten them, or train with "
            f"max_token_length = {MAX_TOKEN_LENGTH}"
        )
    if stats["over_225_tokens"]:
        warnings.append(
            f"{stats['over_225_tokens']} captions exceed {MAX_TOKEN_LENGTH} tokens: sd-scripts truncates them even "
            f"with max_token_length = {MAX_TOKEN_LENGTH}"
        )
    if names_multi_line:
        warnings.append(
            f"{len(names_multi_line)} captions have more than one line; sd-scripts reads only the first "
            f"(e.g. {', '.join(names_multi_line[:3])})"
        )
    if names_bom:
        warnings.append(
            f"{len(names_bom)} captions start with a UTF-8 BOM, which sd-scripts keeps as part of the first tag "
            f"(e.g. {', '.join(names_bom[:3])}); re-save them as UTF-8 without BOM"
        )
    return warnings
