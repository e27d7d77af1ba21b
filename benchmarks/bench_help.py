"""Wall time of `bespoke --help` against a bare `python -c pass`, measured side by side.

    .venv/bin/python benchmarks/bench_help.py [--repeat 21]

The two commands alternate (bare, help, bare, help, ...), so both see the same load on a shared box; the
figure that travels between machines is the ratio of each help run to the bare run beside it (median of the
pairs). Also lists the modules of what the commands need that the help path loaded (there should be none:
tests/cli/test_help_imports.py holds the list) and the slowest imports of `bespoke.cli` (python -X importtime).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "accelerate", "numpy", "PIL", "rich", "toml", "tomllib", "bespoke.settings",
         "bespoke.run.paths", "bespoke.kohya.config")


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def side_by_side(repeat: int) -> tuple[list[float], list[float]]:
    """(bare times, help times), taken in alternation after one warm-up of each."""
    bare_argv, help_argv = [sys.executable, "-c", "pass"], [sys.executable, "-m", "bespoke", "--help"]
    _wall(bare_argv), _wall(help_argv)
    bare, help_ = [], []
    for _ in range(repeat):
        bare.append(_wall(bare_argv))
        help_.append(_wall(help_argv))
    return bare, help_


def slowest_imports(count: int = 8) -> list[tuple[int, str]]:
    """The `count` bespoke modules with the largest cumulative import time (µs) under `import bespoke.cli`."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import bespoke.cli"], capture_output=True,
                          text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and parts[2].strip().startswith("bespoke."):
            rows.append((int(parts[1]), parts[2].strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    bare, help_ = side_by_side(args.repeat)
    ratios = [h / b for b, h in zip(bare, help_, strict=True)]
    loaded = json.loads(subprocess.run(
        [sys.executable, "-c", "import json, sys; import bespoke.cli; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True).stdout)
    print(f"bespoke --help startup, {args.repeat} pairs side by side (median)")
    print(f"  python -c pass            {statistics.median(bare) * 1000:7.0f} ms")
    print(f"  python -m bespoke --help  {statistics.median(help_) * 1000:7.0f} ms")
    print(f"  ratio help / bare         {statistics.median(ratios):7.2f}  (pairs: min {min(ratios):.2f}, "
          f"max {max(ratios):.2f})")
    print(f"  heavy modules loaded by the help path: {', '.join(m for m in HEAVY if m in loaded) or 'none'}")
    print("  slowest bespoke imports (cumulative µs): "
          + ", ".join(f"{name} {us}" for us, name in slowest_imports()))


if __name__ == "__main__":
    main()
