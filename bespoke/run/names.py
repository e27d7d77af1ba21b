"""Run names: the user's label for a run (`--name`, a sweep entry's `name`), shown beside the run id (which
stays the config hash). Where several runs share a name, each is told apart by the settings that differ
between them, e.g. `dim · network_dim 4` and `dim · network_dim 8` ("network_dim 4 vs 8")."""

from __future__ import annotations

from pathlib import Path

from bespoke.errors import BespokeError
from bespoke.run.manifest import RunManifest
from bespoke.run.paths import RunPaths, read_training


def _overrides(manifest: RunManifest) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for text in manifest.overrides:
        key, _, value = text.partition("=")
        chosen[key.strip().split(".")[-1]] = value.strip().strip('"')
    return chosen


def _config_values(run_dir: Path | None) -> dict:
    if run_dir is None:
        return {}
    try:
        return read_training(RunPaths(Path(run_dir)))
    except BespokeError:
        return {}


def differences(manifests: list[RunManifest], folders: dict[str, Path] | None = None) -> dict[str, dict[str, str]]:
    """For runs sharing a name: run id -> the settings whose values differ among them. The candidates are the
    resolution, the preset and every key any of them overrides; a key one run leaves alone shows the value
    its training config has (or "unset")."""
    folders = folders or {}
    overrides = {m.id: _overrides(m) for m in manifests}
    keys = sorted({k for chosen in overrides.values() for k in chosen})
    table: dict[str, dict[str, str]] = {}
    for m in manifests:
        config = _config_values(folders.get(m.id)) if any(k not in overrides[m.id] for k in keys) else {}
        values = {"resolution": str(m.resolution), "preset": m.preset or "default"}
        for key in keys:
            found = overrides[m.id].get(key)
            if found is None:
                found = str(config[key]).lower() if isinstance(config.get(key), bool) else str(config.get(key, "unset"))
            values[key] = found
        table[m.id] = values
    varying = [k for k in ("resolution", "preset", *keys) if len({v[k] for v in table.values()}) > 1]
    return {run_id: {k: values[k] for k in varying} for run_id, values in table.items()}


def name_labels(manifests: list[RunManifest], folders: dict[str, Path] | None = None) -> dict[str, str]:
    """run id -> the name to show: the name alone, or with the differing settings when it is shared."""
    groups: dict[str, list[RunManifest]] = {}
    for manifest in manifests:
        if manifest.name:
            groups.setdefault(manifest.name, []).append(manifest)
    labels: dict[str, str] = {}
    for name, group in groups.items():
        if len(group) == 1:
            labels[group[0].id] = name
            continue
        for run_id, diff in differences(group, folders).items():
            detail = ", ".join(f"{k} {v}" for k, v in diff.items())
            labels[run_id] = f"{name} · {detail}" if detail else name
    return labels


def shared_name_notes(manifests: list[RunManifest], folders: dict[str, Path] | None = None) -> list[str]:
    """One line per name shared by several runs: `name "dim": network_dim 4 vs 8`."""
    groups: dict[str, list[RunManifest]] = {}
    for manifest in manifests:
        if manifest.name:
            groups.setdefault(manifest.name, []).append(manifest)
    notes = []
    for name, group in sorted(groups.items()):
        if len(group) < 2:
            continue
        diff = differences(group, folders)
        keys = list(next(iter(diff.values())))
        parts = [f"{k} {' vs '.join(dict.fromkeys(values[k] for values in diff.values()))}" for k in keys]
        notes.append(f"name {name!r} is shared by {len(group)} runs: " + ("; ".join(parts) or "same settings"))
    return notes
