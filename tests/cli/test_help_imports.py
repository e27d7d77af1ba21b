"""`bespoke --help` (and every command's --help) imports only click and the command modules: what a command
needs (settings, run folders, TOML parsers, did-you-mean) is imported when it runs. Not timed: it checks which
modules load (benchmarks/bench_help.py measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys

# modules the help path must not load (each was once on it: its import was the cost of `bespoke --help`)
NOT_ON_THE_HELP_PATH = ("bespoke.settings", "bespoke.run.paths", "bespoke.kohya.config", "bespoke.tomlfile",
                        "toml", "tomllib", "shlex", "torch", "numpy", "PIL", "rich")

_DRIVER = """
import json, sys
sys.argv = ["bespoke", *sys.argv[1:]]
from bespoke.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _loaded(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", _DRIVER, *args], capture_output=True, text=True, timeout=60)
    assert "Usage:" in done.stdout, done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_help_loads_none_of_what_the_commands_need():
    for args in (("--help",), ("plan", "--help")):
        loaded = _loaded(*args)
        assert not loaded & set(NOT_ON_THE_HELP_PATH), (args, sorted(loaded & set(NOT_ON_THE_HELP_PATH)))
