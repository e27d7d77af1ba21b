"""run.json in tests: read as plain data, write and change through the typed manifest (bespoke.run.manifest)."""

from __future__ import annotations

from pathlib import Path

from bespoke.run.manifest import RunManifest, load_manifest, save_manifest


def manifest_of(run_dir: Path) -> dict:
    """The run's run.json as bespoke reads it (schema 2 form, attempt nested)."""
    return load_manifest(run_dir).to_json()


def write_run_json(run_dir: Path, **fields) -> RunManifest:
    """A run.json with these fields (everything else at its default)."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return save_manifest(run_dir, RunManifest(**fields))


def change_manifest(run_dir: Path, **changes) -> RunManifest:
    """Set typed fields of an existing run.json (unknown names are an error, as in bespoke)."""
    manifest = load_manifest(run_dir)
    for key, value in changes.items():
        if not hasattr(manifest, key):
            raise AttributeError(key)
        setattr(manifest, key, value)
    return save_manifest(run_dir, manifest)
