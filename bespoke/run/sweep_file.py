"""What a sweep runs: a resolution list, or a sweep TOML (`kohya_configs/sweep-*.toml`) of [[run]] tables,
and the command-line lists that pick GPUs and this machine's share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bespoke.dataset.layout import RESOLUTIONS
from bespoke.errors import ConfigError, UsageError, did_you_mean
from bespoke.kohya.tomlwriter import toml_value
from bespoke.tomlfile import read_toml

_RUN_KEYS = ("resolution", "preset", "overrides", "name")
_TOP_KEYS = ("description", "preset", "overrides", "run")


@dataclass(frozen=True)
class SweepEntry:
    """One run of a sweep: what `plan` gets."""

    resolution: int
    preset: str | None = None
    overrides: tuple[str, ...] = ()
    name: str | None = None


def parse_resolutions(text: str) -> tuple[int, ...]:
    """'512,256' -> (512, 256), with a clear error for anything else."""
    out = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        if not part.isdigit() or int(part) not in RESOLUTIONS:
            raise UsageError(f"-r {text}: {part!r} is not one of {', '.join(map(str, RESOLUTIONS))}")
        out.append(int(part))
    if not out:
        raise UsageError("-r: give at least one resolution, e.g. -r 512,256,128,64")
    return tuple(out)


def parse_gpus(text: str | None) -> tuple[str, ...]:
    """'0,1' -> ('0', '1'); duplicates and non-numbers are errors."""
    if not text:
        return ()
    ids = tuple(p.strip() for p in text.split(",") if p.strip())
    if not ids or any(not i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise UsageError(f"--gpus {text}: give distinct GPU indices like 0,1,2")
    return ids


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'2/4' -> (2, 4); i is 1-based and 1 <= i <= n."""
    if not text:
        return None
    i, sep, n = text.partition("/")
    if not sep or not i.strip().isdigit() or not n.strip().isdigit() or not 1 <= int(i) <= int(n):
        raise UsageError(f"--shard {text}: write i/n with 1 <= i <= n, e.g. --shard 2/4")
    return int(i), int(n)


def shard_items(items: list, shard: tuple[int, int] | None, key=lambda x: x) -> list:
    """This machine's share: sorted by `key`, the i-th of every n (round-robin, i 1-based)."""
    ordered = sorted(items, key=key)
    if shard is None:
        return ordered
    i, n = shard
    return ordered[i - 1::n]


def _override_text(key: str, value: object) -> str:
    return f"{key}={toml_value(value)}"


def _overrides(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        return tuple(_override_text(k, v) for k, v in value.items())
    if isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: overrides must be a table (key = value) or a list of \"key=value\" strings")


def load_sweep_file(path: Path) -> list[SweepEntry]:
    """Read a sweep TOML: optional top-level preset/overrides, then `[[run]]` tables (resolution required)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: sweep file not found (see kohya_configs/sweep-*.toml for examples)")
    data = read_toml(path, "sweep file")  # a syntax error names the file and line
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}{did_you_mean(key, _TOP_KEYS)}")
    runs = data.get("run")
    if not isinstance(runs, list) or not runs:
        raise ConfigError(f"{path}: no [[run]] tables; add at least one with resolution = 512")
    default_preset = data.get("preset")
    shared = _overrides(data.get("overrides"), f"{path}: overrides")
    entries = []
    for index, run in enumerate(runs, 1):
        where = f"{path}: [[run]] #{index}"
        if not isinstance(run, dict):
            raise ConfigError(f"{where}: each run is a [[run]] table with resolution = 512")
        for key in run:
            if key not in _RUN_KEYS:
                raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, _RUN_KEYS)}")
        resolution = run.get("resolution")
        if not isinstance(resolution, int) or isinstance(resolution, bool):
            raise ConfigError(f"{where}: resolution must be an integer like 512")
        if resolution not in RESOLUTIONS:
            raise ConfigError(f"{where}: resolution {resolution} is not one of {', '.join(map(str, RESOLUTIONS))}")
        preset = run.get("preset", default_preset)
        if preset is not None and not isinstance(preset, str):
            raise ConfigError(f"{where}: preset must be a preset name string")
        name = run.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError(f"{where}: name must be a non-empty string, e.g. name = \"dim4\"")
        entries.append(SweepEntry(resolution, preset, shared + _overrides(run.get("overrides"), where),
                                  name))
    return entries


def sweep_entries(resolutions: tuple[int, ...] | None, preset: str | None, overrides: tuple[str, ...],
                  sweep_file: Path | None) -> list[SweepEntry]:
    """The runs of a sweep: from the file (filtered by `resolutions` when given) or one per resolution.

    `preset` fills entries without their own; `overrides` (--set) are applied last, so they win.
    """
    if sweep_file is not None:
        entries = load_sweep_file(sweep_file)
        if resolutions:
            entries = [e for e in entries if e.resolution in resolutions]
            if not entries:
                raise UsageError(f"{sweep_file}: no run has a resolution in -r {','.join(map(str, resolutions))}")
        return [SweepEntry(e.resolution, e.preset or preset, e.overrides + tuple(overrides), e.name)
                for e in entries]
    return [SweepEntry(r, preset, tuple(overrides)) for r in (resolutions or (512, 256, 128, 64))]
