"""Run folders: manifest, paths and argument resolution, planning, lock, the process runner, train, sweep."""
