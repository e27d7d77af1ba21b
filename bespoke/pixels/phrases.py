"""Prompts and captions as phrases: comma-separated tags, their key words, and the hex colours they name.

A tag's key words are its words lower-cased, with spelling variants made one (grey/gray, blond/blonde), a
plural's final s dropped (earrings, reflections), and the words that name nothing visible dropped
(STOP_WORDS: "wearing", "with", "solid", ...). A training punk carries a prompt's tag when one of its caption
tags holds all the tag's key words, in any order ("blue solid background" is carried by "light blue
background"). Hex colours ("pink hair (#ff66cc)") are read out of the tag and the commas inside their
brackets do not split it. Options of sd-scripts' prompt syntax (" --n ...", " --w 512") are not the prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEX = re.compile(r"#([0-9a-fA-F]{6})(?![0-9a-fA-F])")
_WORD = re.compile(r"[a-z]+")
_OPTION = re.compile(r"\s--[a-z]\s")
STOP_WORDS = frozenset(
    "wearing with a an the and of in on it its is to solid style pixel art colored coloured color colour tone "
    "x th underneath that some very but for has have their his her very".split())
SPELLINGS = {"grey": "gray", "blond": "blonde", "colour": "color"}
COLOUR_WORDS = frozenset(
    "black white gray brown blonde red pink green blue yellow orange purple gold golden silver lime teal aqua "
    "violet lavender beige cream tan olive magenta cyan navy maroon rose peach mint turquoise".split())
NOUNS = ("background", "hair", "eye", "skin", "lip", "mouth", "hat", "cap", "beanie", "crown", "tiara", "bow",
         "sunglasse", "glasse", "shade", "earring", "necklace", "chain", "shirt", "top", "jacket", "hoodie",
         "suit", "beard", "stubble", "mustache", "expression", "smile")


def _stem(word: str) -> str:
    word = SPELLINGS.get(word, word)
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word


def split_tags(text: str) -> list[str]:
    """The comma-separated tags of a prompt or caption (commas inside brackets do not split), stripped; the
    first line only, and none of sd-scripts' prompt options."""
    line = text.splitlines()[0] if text.strip() else ""
    option = _OPTION.search(line + " ")
    line = line[:option.start()] if option else line
    tags: list[str] = []
    current: list[str] = []
    depth = 0
    for char in line:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth <= 0:
            tags.append("".join(current))
            current = []
        else:
            current.append(char)
    tags.append("".join(current))
    return [t.strip() for t in tags if t.strip()]


def key_words(tag: str) -> tuple[str, ...]:
    """The tag's key words in order (module docstring); hex colours and "24x24" are not words."""
    text = HEX.sub(" ", tag.lower()).replace("24x24", " ")
    words = (_stem(w) for w in _WORD.findall(text))
    return tuple(w for w in words if w not in STOP_WORDS)


def caption_tags(caption: str) -> tuple[frozenset[str], ...]:
    """The key words of each tag of a caption."""
    return tuple(frozenset(key_words(t)) for t in split_tags(caption))


@dataclass(frozen=True)
class Phrase:
    """One tag of a prompt: its text, key words, the hex colours it names (RGB) and its noun (or None)."""

    text: str
    words: tuple[str, ...]
    hexes: tuple[tuple[int, int, int], ...]
    noun: str | None

    @property
    def colours(self) -> tuple[str, ...]:
        """Its colour words, in order."""
        return tuple(w for w in self.words if w in COLOUR_WORDS)


def _rgb(code: str) -> tuple[int, int, int]:
    return int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16)


def phrases(prompt: str) -> list[Phrase]:
    """The prompt's tags as phrases, in order; tags without a key word or a hex colour are left out."""
    out = []
    for tag in split_tags(prompt):
        words = key_words(tag)
        hexes = tuple(_rgb(m.group(1)) for m in HEX.finditer(tag))
        if not words and not hexes:
            continue
        noun = next((w for w in words if w in NOUNS), None)
        out.append(Phrase(tag, words, hexes, noun))
    return out
