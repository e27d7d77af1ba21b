"""Wall time of `bespoke --help` against a bare `python -c pass`, in one run (median of N).

    .venv/bin/python benchmarks/bench_cli_startup.py [--repeat 15]

Also checks that the CLI process never imports torch, accelerate or numpy just to show help.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table


def wall(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    py = sys.executable
    bare = wall([py, "-c", "pass"], args.repeat)
    help_ = wall([py, "-m", "bespoke", "--help"], args.repeat)
    heavy = subprocess.run(
        [py, "-c", "import sys; import bespoke.cli; print(','.join(m for m in ('torch','accelerate','numpy') if m in sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    table = Table(title=f"bespoke --help startup (median of {args.repeat})")
    for col in ("command", "wall ms", "ratio to bare python"):
        table.add_column(col, justify="right" if col != "command" else "left")
    table.add_row("python -c pass", f"{bare * 1000:.0f}", "1.00")
    table.add_row("python -m bespoke --help", f"{help_ * 1000:.0f}", f"{help_ / bare:.2f}")
    Console().print(table)
    Console().print(f"heavy modules imported by the CLI: {heavy or 'none'}")


if __name__ == "__main__":
    main()
