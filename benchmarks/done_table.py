"""Issue 21's Done table: `bespoke review` on copies of the user's real folders, with and without --palette and
--training, every term per epoch, the score with its interval, the tied epochs and the pick; each term's spread.

    .venv/bin/python benchmarks/done_table.py [--shared ../shared] [--work DIR]

Each folder is copied under --work (bespoke writes its results beside the samples: never into ../shared) and
reviewed by the `bespoke` of this tree, once per variant:
- plain: no flags (a plain folder has no training set: composition, adherence and new are not measured);
- training: --training <shared>/bespoke_punks (the run's dataset: palette, images and captions);
- training+palette: --training and --palette <the same folder> (grid-palette snaps to the training colours);
- training+k16: --training and --palette k:16.
The last three must give the same scores, tied set and pick (the score never depends on --palette). The
caption-fix folder also once with its prompts as a `.txt` beside each image (the texts of the user's
VISUAL_QUALITY_AUDIT.md, as benchmarks/score_real.py reads them): adherence per prompt. Per run, each term's
spread: min-max over the samples, and min-max of the epoch means.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = next((p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()), ROOT / "shared")
FOLDERS = {"keep_tokens_3": "runs/keep_tokens_3", "caption_fix_eval_24px": "baseline/caption_fix_eval_24px",
           "samples": "samples"}
TERMS = ("composition", "clean_cells", "feature_contrast", "few_colours", "adherence", "pixel_art", "new", "varied")


def variants(shared: Path) -> dict[str, list[str]]:
    training = str(shared / "bespoke_punks")
    return {"plain": [], "training": ["--training", training],
            "training+palette": ["--training", training, "--palette", training],
            "training+k16": ["--training", training, "--palette", "k:16"]}


def write_prompts(copy: Path, shared: Path) -> None:
    """The caption-fix images' prompts as a .txt beside each (sd-scripts' caption convention)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from score_real import PROMPT_NAMES, audit_prompts

    texts = audit_prompts(shared / "seeds" / "user-notes" / "VISUAL_QUALITY_AUDIT.md")
    for image in copy.glob("*.png"):
        name = next((n for n in PROMPT_NAMES if image.stem.endswith(n)), None)
        if name is not None:
            image.with_suffix(".txt").write_text(texts[name] + "\n")


def review(source: Path, copy: Path, flags: list[str], shared: Path | None = None) -> dict:
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(source, copy, copy_function=shutil.copyfile)
    for folder in [copy, *(p for p in copy.rglob("*") if p.is_dir())]:  # ../shared is read-only; the copy not
        folder.chmod(0o755)
    if shared is not None:
        write_prompts(copy, shared)
    done = subprocess.run([sys.executable, "-m", "bespoke", "review", str(copy), *flags, "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"bespoke review {copy} {' '.join(flags)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return json.loads((copy / "bespoke_process" / "report" / "report.json").read_text())


def fmt(value: float | None) -> str:
    return "  -  " if value is None else f"{value:5.3f}"


def epoch_lines(report: dict) -> list[str]:
    lines = [f"{'epoch':>5} " + " ".join(f"{t[:7]:>7}" for t in TERMS) + f" {'score':>6} {'interval':>13}"]
    for row in report["epochs"]:
        score = row["score"]
        interval = score.get("interval")
        span = f"{interval[0]:.3f}-{interval[1]:.3f}" if interval else "      -      "
        terms = " ".join(f"{fmt(score['terms'].get(t)):>7}" for t in TERMS)
        lines.append(f"{str(row['epoch']):>5} {terms} {score['total']:6.3f} {span:>13}")
    best = report.get("best")
    if best:
        lines.append(f"highest {best['highest']}; tied {best['tied']}; pick {best['epoch']} "
                     f"(resolved {best['resolved']}); more seeds {best['more_seeds']}")
    else:
        lines.append("no pick (no epochs)")
    return lines


def spread_lines(report: dict) -> list[str]:
    lines = []
    for term in TERMS:
        per_sample = [s["scoring"]["terms"].get(term) for s in report["samples"] if s.get("degenerate") is None]
        values = [v for v in per_sample if v is not None]
        means = [r["score"]["terms"].get(term) for r in report["epochs"] if (r.get("degenerate_pct") or 0) < 100]
        means = [v for v in means if v is not None]
        if values:
            lines.append(f"  {term:<17} samples {min(values):.3f}-{max(values):.3f}"
                         + (f"   epoch means {min(means):.3f}-{max(means):.3f}" if means else ""))
    flagged = [s["name"] for s in report["samples"] if s.get("degenerate")]
    lines.append(f"  flagged (score 0): {flagged or 'none'}")
    return lines


def adherence_lines(report: dict) -> list[str]:
    """Per prompt, its tags and, per epoch, each tag's adherence (- where the training set cannot tell)."""
    lines = []
    for prompt in report.get("prompts") or []:
        names = [t["text"] for t in prompt["tags"]]
        lines.append(f"  prompt {prompt['prompt'][:70]}...: tags {names}")
        for row in report["epochs"]:
            values = (row.get("adherence") or {}).get(prompt["prompt"])
            if values is not None:
                lines.append(f"    e{row['epoch']}: " + " ".join(fmt(v) for v in values))
    return lines


def decision(report: dict) -> tuple:
    best = report.get("best") or {}
    scores = [(r["epoch"], r["score"]["total"]) for r in report["epochs"]]
    samples = sorted((s["name"], s["scoring"].get("score")) for s in report["samples"])
    return best.get("epoch"), best.get("tied"), scores, samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bespoke-done-table"))
    parser.add_argument("--folders", default=",".join(FOLDERS))
    args = parser.parse_args()
    if not args.shared.is_dir():
        print(f"{args.shared} is absent: nothing to measure")
        return 0
    for name in args.folders.split(","):
        results = {}
        for variant, flags in variants(args.shared).items():
            report = review(args.shared / FOLDERS[name], args.work / f"{name}-{variant}", flags)
            results[variant] = report
            print(f"\n== {name}  [{variant}] ==")
            print("\n".join(epoch_lines(report)))
            print("\n".join(spread_lines(report)))
        same = {v: decision(r) == decision(results["training"]) for v, r in results.items() if v != "plain"}
        print(f"\n{name}: same scores, tied set and pick with every --palette as with --training alone: {same}")
        if name == "caption_fix_eval_24px":
            flags = variants(args.shared)["training"]
            report = review(args.shared / FOLDERS[name], args.work / f"{name}-prompts", flags, args.shared)
            print(f"\n== {name}  [training, a .txt prompt beside each image] ==")
            print("\n".join(epoch_lines(report) + spread_lines(report)))
            print("\n".join(adherence_lines(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
