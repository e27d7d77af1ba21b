"""Time of `plan` per resolution: first plan (prepare + render + validate + write) vs re-plan of the same
config (cached prepare, existing run folder found, nothing written), on a generated punk dataset.

    .venv/bin/python benchmarks/bench_plan.py [--punks 203] [--repeat 3]

Everything happens in a temporary folder; prints one table with the ratio first/re-plan measured in this run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bespoke.dataset.synthetic import write_dataset  # noqa: E402
from bespoke.kohya.validate import validate_dataset_toml, validate_training_toml  # noqa: E402
from bespoke.run.plan import PlanRequest, plan_run  # noqa: E402
from bespoke.settings import load_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--punks", type=int, default=203)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = root / "datasets" / "punks"
        write_dataset(dataset, count=args.punks, seed=7)
        settings = load_settings(root, env={})
        print(f"{args.punks} punks, median of {args.repeat} re-plans")
        print(f"{'resolution':>10} {'first plan s':>13} {'re-plan s':>10} {'ratio':>7} {'validate files ms':>18}")
        for resolution in (512, 256, 128, 64):
            request = PlanRequest(resolution=resolution, dataset=dataset)
            started = time.perf_counter()
            plan = plan_run(settings, request)
            first = time.perf_counter() - started
            again = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                assert not plan_run(settings, request).created
                again.append(time.perf_counter() - started)
            started = time.perf_counter()
            validate_training_toml(plan.paths.training_toml)
            validate_dataset_toml(plan.paths.dataset_toml)
            check = (time.perf_counter() - started) * 1000
            replan = statistics.median(again)
            print(f"{resolution:>10} {first:>13.3f} {replan:>10.3f} {first / replan:>7.1f} {check:>18.2f}")


if __name__ == "__main__":
    main()
