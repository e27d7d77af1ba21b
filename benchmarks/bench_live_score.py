"""Does live scoring slow training? s/epoch of real 64 px runs with and without it, side by side.

Each pair is two `bespoke train -r 64` runs of the real kohya-ss sd-scripts (CPU, random weights, offline: the
BESPOKE_TEST_* variables of <harness>/env.sh), one with live scoring (`--live-score`: each epoch's samples
processed and scored by bespoke.pipeline.live while the next epoch trains) and one without
(`--no-live-score`), in alternating order so that a change of the machine's load hits both. Same dataset
(synthetic punks, a share held out for validation unless --validation-share 0), same seed, same prompts.
s/epoch is what bespoke recorded in run.json's epoch_log (`seconds`: from one epoch's end to the next's,
sampling and validation included); the first epoch is left out (it also paid for the model load). The ratio
is with / without.

Measured 2026-12-07 on the harness (2 CPUs shared, load 11-16), `--pairs 1 --epochs 2 --prompts 1 --punks 4
--validation-share 0 --sample-steps 2`: 291.8 s/epoch without, 266.1 s/epoch with (ratio 0.912), whole runs
732.7 s / 726.6 s, both epochs judged (random weights: "every sample is degenerate"): no slowdown that the
machine's load swings do not swamp; one pair and a trivial judging load, so not a bound on a busy judge.

Usage: source <harness>/env.sh; .venv/bin/python benchmarks/bench_live_score.py [--epochs 4] [--pairs 2]
       [--prompts 4] [--punks 8] [--validation-share 0.25] [--sample-steps 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NEEDED = ("BESPOKE_TEST_SD_SCRIPTS", "BESPOKE_TEST_SD_PYTHON", "BESPOKE_TEST_BASE_MODEL",
          "BESPOKE_TEST_TOKENIZER_CACHE")
PROMPT = "pixel art, 24x24, portrait of bespoke punk {kind} --w 64 --h 64 --d {seed} --s {steps}\n"


def cpu_overrides(epochs: int, share: float) -> list[str]:
    """Any preset on a small CPU box (as tests/real_trainer/conftest.py cpu_safe), for `epochs` epochs."""
    values = {"bucket_reso_steps": "64", "min_bucket_reso": "64", "persistent_data_loader_workers": "false",
              "max_data_loader_n_workers": "0", "mixed_precision": '"no"', "save_precision": '"float"',
              "max_train_epochs": str(epochs), "num_repeats": "1", "batch_size": "2",
              "gradient_checkpointing": "false", "network_dim": "4", "network_alpha": "2",
              "tokenizer_cache_dir": f'"{os.environ["BESPOKE_TEST_TOKENIZER_CACHE"]}"',
              "bespoke.validation_share": str(share), "sample_at_first": "false"}  # not an epoch's time
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def environment(project: Path) -> dict[str, str]:
    env = {**os.environ, "BESPOKE_PROJECT": str(project), "BESPOKE_SD_SCRIPTS": os.environ[NEEDED[0]],
           "BESPOKE_PYTHON": os.environ[NEEDED[1]], "BESPOKE_BASE_MODEL": os.environ[NEEDED[2]],
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(project / "hf_home"),
           "PYTHONUNBUFFERED": "1"}
    for name in ("BESPOKE_OUTPUTS", "BESPOKE_DATASETS", "BESPOKE_CACHE"):
        env.pop(name, None)
    return env


def train(project: Path, live: bool, args: argparse.Namespace) -> dict:
    """One run in a project of its own (the same plan: with and without live scoring are one run id); its
    run.json."""
    from bespoke.dataset.synthetic import write_dataset

    write_dataset(project / "datasets" / "bespoke_punks", count=args.punks, seed=5)
    (project / "prompts.txt").write_text("".join(PROMPT.format(kind=("lad", "lady")[i % 2], seed=i + 1,
                                                               steps=args.sample_steps)
                                                 for i in range(args.prompts)))
    argv = [sys.executable, "-m", "bespoke", "train", "-r", "64", "--prompts", "prompts.txt",
            "--no-process", "--stop-when", "off", "--live-score" if live else "--no-live-score",
            *cpu_overrides(args.epochs, args.validation_share)]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=project, env=environment(project), capture_output=True, text=True,
                          timeout=7200)
    wall = time.monotonic() - started
    if done.returncode != 0:
        tail = f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        raise SystemExit(f"{project.name}: exit {done.returncode}\n{tail}")
    [run_json] = [p for p in (project / "outputs").glob("64-*/run.json")]
    manifest = json.loads(run_json.read_text())
    manifest["_wall"] = wall
    return manifest


def row(manifest: dict) -> dict:
    log = sorted(manifest["epoch_log"], key=lambda r: r["epoch"])
    later = [r["seconds"] for r in log[1:]]
    return {"first": log[0]["seconds"], "later": later, "mean": statistics.mean(later),
            "wall": manifest["_wall"], "scores": [r.get("score") for r in log],
            "scored": sum(1 for r in log if r.get("score") is not None or r.get("score_error")),
            "validation": [r.get("validation_loss") for r in log]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--punks", type=int, default=8)
    parser.add_argument("--validation-share", type=float, default=0.25)
    parser.add_argument("--sample-steps", type=int, default=8)
    args = parser.parse_args()
    missing = [v for v in NEEDED if not os.environ.get(v)]
    if missing:
        raise SystemExit("needs " + ", ".join(missing) + ": source <harness>/env.sh first")
    sys.path.insert(0, str(REPO))
    results: dict[bool, list[dict]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="bespoke-bench-live-") as tmp:
        for pair in range(args.pairs):
            for live in ((True, False) if pair % 2 == 0 else (False, True)):
                name = f"{'live' if live else 'off'}{pair}"
                results[live].append(row(train(Path(tmp) / name, live, args)))
                print(f"  {name}: {results[live][-1]['mean']:.1f} s/epoch after the first", flush=True)
    print_table(results, args)


def print_table(results: dict[bool, list[dict]], args: argparse.Namespace) -> None:
    print(f"\n{args.pairs} pairs of real 64 px runs, {args.epochs} epochs, {args.punks} synthetic punks "
          f"({args.validation_share:g} held out), {args.prompts} prompts; {os.cpu_count()} CPUs "
          f"(load 1 min {os.getloadavg()[0]:.1f})")
    print(f"{'pair':<5} {'off s/epoch':>12} {'live s/epoch':>13} {'ratio':>7} {'off wall s':>11} "
          f"{'live wall s':>12} {'epochs scored':>14}")
    ratios = []
    for pair, (off, live) in enumerate(zip(results[False], results[True], strict=True)):
        ratios.append(live["mean"] / off["mean"])
        print(f"{pair:<5} {off['mean']:>12.1f} {live['mean']:>13.1f} {ratios[-1]:>7.3f} {off['wall']:>11.1f} "
              f"{live['wall']:>12.1f} {live['scored']:>11}/{args.epochs}")
    firsts = {live: [round(r["first"], 1) for r in results[live]] for live in (False, True)}
    every_off = [s for r in results[False] for s in r["later"]]
    every_live = [s for r in results[True] for s in r["later"]]
    print(f"{'all':<5} {statistics.mean(every_off):>12.1f} {statistics.mean(every_live):>13.1f} "
          f"{statistics.mean(every_live) / statistics.mean(every_off):>7.3f}   (median ratio of pairs "
          f"{statistics.median(ratios):.3f}; first epochs off {firsts[False]}, live {firsts[True]})")
    print("live scores per epoch:", [r["scores"] for r in results[True]])
    print("validation loss per epoch:", [r["validation"] for r in results[True]])


if __name__ == "__main__":
    main()
