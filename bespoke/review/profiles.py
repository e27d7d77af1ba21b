"""Score profiles: named weights for the best-epoch score's terms, kept in the project beside bespoke.toml.

`score_profiles.toml` in the project root holds one table per profile, written by `bespoke vote --calibrate`
(and editable by hand):

    [profiles.alice]
    made = "2026-12-07T10:31:02+00:00"     # when it was fitted
    votes = 270                             # the votes it was fitted to
    sources = ["outputs/512-…/report/votes.jsonl"]
    agreement_default = 0.65                # the default weights' agreement with those votes
    agreement_calibrated = 0.71             # these weights' agreement, measured on held-out votes
    [profiles.alice.weights]
    pixel_art = 0.4
    few_colours = 2.1

`weights` is the only key the score reads: each a term of the score (bespoke.review.selection.WEIGHTS) and a
number >= 0, at least one above 0; a term a profile does not name keeps its default weight. The score uses a
profile when asked (`--profile NAME`, or `score_profile = "NAME"` in bespoke.toml) and its report says which.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from bespoke.errors import ConfigError, UsageError, did_you_mean
from bespoke.fsutil import atomic_write_text
from bespoke.kohya.tomlwriter import toml_value
from bespoke.review.selection import WEIGHTS
from bespoke.tomlfile import read_toml

PROFILES_FILE = "score_profiles.toml"
DEFAULT_PROFILE = "default"
NAME = re.compile(r"[A-Za-z0-9_-]+")
_KEYS = ("made", "votes", "sources", "agreement_default", "agreement_calibrated", "weights")
HEADER = ("# bespoke's score profiles: weights of the best-epoch score's terms, fitted to votes by\n"
          "# `bespoke vote --calibrate` (README: Voting). Use one with --profile NAME or score_profile = \"NAME\"\n"
          "# in bespoke.toml. Only [profiles.NAME.weights] is read by the score: terms of the score, numbers >= 0.\n")


@dataclass(frozen=True)
class Profile:
    """One named set of weights and where it came from."""

    name: str
    weights: dict[str, float]
    made: str = ""
    votes: int = 0
    sources: tuple[str, ...] = ()
    agreement_default: float | None = None
    agreement_calibrated: float | None = None

    def score_weights(self) -> dict[str, float]:
        """The weights the score uses: the defaults, with this profile's in their place."""
        return {**WEIGHTS, **self.weights}


def profiles_path(root: Path) -> Path:
    return Path(root) / PROFILES_FILE


def _weights(path: Path, name: str, raw: object) -> dict[str, float]:
    where = f"{path}: [profiles.{name}.weights]"
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where} must be a table of term = weight (terms: {', '.join(WEIGHTS)})")
    out = {}
    for term, value in raw.items():
        if term not in WEIGHTS:
            raise ConfigError(f"{where}: {term!r} is not a term of the score{did_you_mean(term, list(WEIGHTS))} "
                              f"(terms: {', '.join(WEIGHTS)}); calibrate again or edit the file")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{where}: {term} = {value!r}: a weight is a number >= 0")
        out[term] = float(value)
    if not any(out.values()):
        raise ConfigError(f"{where}: every weight is 0; give at least one term a weight above 0")
    return out


def _profile(path: Path, name: str, raw: object) -> Profile:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [profiles.{name}] must be a table")
    unknown = [k for k in raw if k not in _KEYS]
    if unknown:
        raise ConfigError(f"{path}: [profiles.{name}]: unknown key {unknown[0]!r}"
                          f"{did_you_mean(unknown[0], list(_KEYS))}")
    return Profile(name, _weights(path, name, raw.get("weights")), str(raw.get("made", "")),
                   int(raw.get("votes", 0)), tuple(str(s) for s in raw.get("sources", ())),
                   raw.get("agreement_default"), raw.get("agreement_calibrated"))


def load_profiles(root: Path) -> dict[str, Profile]:
    """Every profile of the project (none when the file does not exist)."""
    path = profiles_path(root)
    if not path.is_file():
        return {}
    data = read_toml(path, "score profiles file")
    unknown = [k for k in data if k != "profiles"]
    if unknown or not isinstance(data.get("profiles", {}), dict):
        raise ConfigError(f"{path}: only [profiles.NAME] tables belong here (found {unknown[0] if unknown else 'profiles'!r})")
    return {name: _profile(path, name, raw) for name, raw in data.get("profiles", {}).items()}


def load_profile(root: Path, name: str) -> Profile:
    """The profile `name` ("default": the stated weights, whatever the file holds)."""
    if name == DEFAULT_PROFILE:
        return Profile(DEFAULT_PROFILE, dict(WEIGHTS))
    found = load_profiles(root)
    if name not in found:
        known = ", ".join(found) or "none yet"
        raise UsageError(f"score profile {name!r}: not in {profiles_path(root)} (profiles: {known})"
                         f"{did_you_mean(name, list(found))}; make one with `bespoke vote RUN --calibrate "
                         f"--profile {name}`")
    return found[name]


def check_name(name: str) -> str:
    """A profile name: letters, digits, - and _ (it goes on command lines and into TOML keys)."""
    if not NAME.fullmatch(name):
        raise UsageError(f"--profile {name!r}: use letters, digits, - and _ only")
    return name


def _render(profile: Profile) -> str:
    lines = [f"[profiles.{profile.name}]"]
    for key in ("made", "votes", "sources", "agreement_default", "agreement_calibrated"):
        value = getattr(profile, key)
        if value is not None and value != "":
            lines.append(f"{key} = {toml_value(list(value) if isinstance(value, tuple) else value)}")
    lines.append(f"[profiles.{profile.name}.weights]")
    lines += [f"{term} = {toml_value(float(w))}" for term, w in profile.weights.items()]
    return "\n".join(lines) + "\n"


def save_profile(root: Path, profile: Profile) -> Profile | None:
    """Write `profile` into the project's profiles file (atomically, under a lock), replacing one of the same
    name; the profile it replaced, or None."""
    check_name(profile.name)
    if profile.name == DEFAULT_PROFILE:
        raise UsageError(f"--profile {DEFAULT_PROFILE}: that name is the stated weights; choose another")
    path = profiles_path(root)
    with FileLock(str(path) + ".lock", timeout=30):
        found = load_profiles(root)
        previous = found.get(profile.name)
        found[profile.name] = profile
        atomic_write_text(path, HEADER + "".join("\n" + _render(p) for p in found.values()))
    return previous
