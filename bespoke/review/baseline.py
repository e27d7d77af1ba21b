"""The user's 512 px epoch-8 baseline: the recorded figures, its 7-prompt protocol on any run, and a comparison.

The recorded numbers (bespoke/data/baseline_recorded.json) are 7 unseeded images per epoch made with the
diffusers pipeline on MPS in fp16: they cannot be regenerated, only compared as one draw from a
distribution. So a run is evaluated with fixed seeds -- N per prompt -- and each seed gives one
"7-prompt epoch mean", the same statistic as the recorded one. The spread of those N means says whether
the recorded figure is what this run would produce (INSIDE_RULE).
"""

from __future__ import annotations

import copy
import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path

from PIL import Image

from bespoke.clock import now_iso
from bespoke.errors import RunError, UsageError
from bespoke.fsutil import atomic_write_json
from bespoke.kohya.naming import parse_sample_name
from bespoke.kohya.prompts import parse_prompt_file
from bespoke.pixels.metrics import colors_nearest, is_clean, nearest24, top10_coverage
from bespoke.run.generate import GenerateRequest, generate, run_checkpoints
from bespoke.run.manifest import load_manifest
from bespoke.run.paths import RunPaths, read_training

SCHEMA_VERSION = 1
VIAS = ("samples", "generate")
PROTOCOL_SAMPLER = "pndm"  # the diffusers SD 1.5 pipeline's default scheduler, which the recorded run used
EVAL_FILE = "baseline_eval.json"
INSIDE_RULE = ("inside when |recorded - mean| <= 2 x sd, where mean and sd (sample standard deviation) are over "
               "the per-seed 7-prompt epoch means (one per seed, the same statistic as the recorded figure); "
               "needs at least 2 seeds per prompt, otherwise undecided")
FOOTNOTE = ("recorded: 7 unseeded images per epoch (one per prompt), diffusers on MPS in fp16, PNDM, 30 steps, "
            "CFG 7.5, 512 px, Pillow NEAREST to 24 px; 0/7 clean at epoch 8 (0/70 overall) under the coded "
            "definition colors <= 50 and top-10 coverage >= 0.70 -- the '40 % clean' in the notes was an "
            "estimate, never measured.")


@lru_cache(maxsize=1)
def _load() -> dict:
    text = (resources.files("bespoke") / "data" / "baseline_recorded.json").read_text(encoding="utf-8")
    return json.loads(text)


def recorded_baseline() -> dict:
    """The recorded baseline (prompts, protocol, per-epoch per-prompt colors_nearest, coverage, provenance)."""
    return copy.deepcopy(_load())


def recorded_epochs() -> dict[int, dict]:
    """{epoch: {"mean", "colors_nearest", "top10_coverage", "clean", "n", "label"}} (epoch 10 = 'final')."""
    return {int(e["epoch"]): e for e in recorded_baseline()["epochs"]}


def _normalize(text: str) -> str:
    return " ".join(str(text).split()).lower()


# ---------------------------------------------------------------- statistics


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def _sd(values) -> float | None:
    values = list(values)
    if len(values) < 2:
        return None
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _r(value, digits: int = 1):
    return None if value is None else round(float(value), digits)


def summarize_epoch(images: list[dict], prompt_names: list[str], recorded: dict | None) -> dict:
    """Aggregate one epoch's images ({prompt, seed, colors_nearest, top10_coverage, clean}) per the protocol."""
    by_prompt: dict[str, list[dict]] = {name: [] for name in prompt_names}
    for image in images:
        by_prompt.setdefault(image["prompt"], []).append(image)
    present = [name for name in prompt_names if by_prompt.get(name)]
    # seed set k = the k-th seed (in seed order) of every prompt: one 7-prompt mean per set
    sets = min((len(by_prompt[name]) for name in present), default=0) if len(present) == len(prompt_names) else 0
    ordered = {name: sorted(by_prompt[name], key=lambda i: (i["seed"] is None, i["seed"] or 0, i["file"]))
               for name in present}
    # sets > 0 only when every prompt is present, so each set holds one image per prompt (never empty)
    set_colors = [[ordered[name][k]["colors_nearest"] for name in prompt_names] for k in range(sets)]
    set_means = [sum(values) / len(values) for values in set_colors]
    colors = [i["colors_nearest"] for i in images]
    mean = _mean(set_means) if set_means else _mean(colors)
    sd = _sd(set_means)
    rec_mean = recorded["mean"] if recorded else None
    inside = None
    if rec_mean is not None and sd is not None:
        inside = abs(rec_mean - mean) <= 2 * sd
    clean = sum(1 for i in images if i["clean"])
    per_prompt = {}
    for name in prompt_names + [n for n in by_prompt if n not in prompt_names]:
        values = [i["colors_nearest"] for i in by_prompt.get(name, [])]
        per_prompt[name] = {
            "n": len(values), "mean": _r(_mean(values)), "values": values,
            "seeds": [i["seed"] for i in by_prompt.get(name, [])],
            "top10_coverage_mean": _r(_mean(i["top10_coverage"] for i in by_prompt.get(name, [])), 3),
            "recorded": (recorded or {}).get("colors_nearest", {}).get(name),
        }
    return {
        "n": len(images),
        "prompts": len(present),
        "seeds_per_prompt": sets,
        "complete": len(present) == len(prompt_names),
        "mean": _r(mean),
        "mean_all_images": _r(_mean(colors)),
        "seed_means": [_r(m) for m in set_means],
        "sd": _r(sd),
        "min": _r(min(set_means)) if set_means else None,
        "max": _r(max(set_means)) if set_means else None,
        "image_min": min(colors) if colors else None,
        "image_max": max(colors) if colors else None,
        "clean": clean,
        "clean_pct": _r(100.0 * clean / len(images)) if images else None,
        "recorded_mean": rec_mean,
        "recorded_clean_pct": _r(100.0 * recorded["clean"] / recorded["n"]) if recorded else None,
        "difference": _r(mean - rec_mean) if rec_mean is not None and mean is not None else None,
        "inside": inside,
        "per_prompt": per_prompt,
        "images": images,
    }


# ---------------------------------------------------------------- measuring images


def measure(path: Path) -> dict:
    """colors_nearest, top10_coverage and clean of one image (bespoke.metrics, Pillow NEAREST to 24 px)."""
    with Image.open(path) as img:
        img.load()
        rgb = img.convert("RGB")
    colors = colors_nearest(rgb)
    coverage = top10_coverage(nearest24(rgb))
    return {"colors_nearest": colors, "top10_coverage": round(coverage, 4), "clean": is_clean(colors, coverage)}


def _baseline_prompt_map(prompts_file: Path) -> tuple[dict[int, str], list[str]]:
    """{prompt index in the run's prompts.txt: baseline name} by prompt text, and protocol deviations found."""
    data = recorded_baseline()
    proto = data["protocol"]
    by_text = {_normalize(p["prompt"]): p["name"] for p in data["prompts"]}
    mapping: dict[int, str] = {}
    deviations: list[str] = []
    for p in parse_prompt_file(prompts_file):
        name = by_text.get(_normalize(p.prompt))
        if name is None:
            continue
        mapping[p.index] = name
        checks = (("negative prompt", _normalize(p.negative or ""), _normalize(data["negative_prompt"])),
                  ("width", p.width or 512, proto["width"]), ("height", p.height or 512, proto["height"]),
                  ("steps", p.steps or 30, proto["steps"]), ("CFG scale", float(p.scale or 7.5),
                                                              float(proto["guidance_scale"])))
        for what, have, want in checks:
            if have != want:
                deviations.append(f"{name}: {what} {have!r} (protocol: {want!r})")
    return mapping, deviations


def _images_from_samples(run_dir: Path, training: dict) -> tuple[dict[int, list[dict]], list[str], dict]:
    paths = RunPaths(run_dir)
    if not paths.prompts_txt.is_file():
        raise RunError(f"{paths.prompts_txt}: missing; this run has no sample prompts to evaluate (use --via generate)")
    mapping, deviations = _baseline_prompt_map(paths.prompts_txt)
    if not mapping:
        raise RunError(f"{paths.prompts_txt}: none of its prompts is one of the 7 baseline prompts; plan the run with "
                       "--preset baseline-512, or evaluate with --via generate")
    sample_dir = paths.sample_dir
    by_epoch: dict[int, list[dict]] = {}
    skipped = {"step_samples": 0, "other_prompts": 0, "unreadable": 0}
    files = sorted(sample_dir.glob("*.png")) if sample_dir.is_dir() else []
    for path in files:
        info = parse_sample_name(path)
        if info.epoch is None:
            skipped["step_samples"] += 1
            continue
        name = mapping.get(info.prompt_index) if info.prompt_index is not None else None
        if name is None:
            skipped["other_prompts"] += 1
            continue
        try:
            metrics = measure(path)
        except OSError:
            skipped["unreadable"] += 1
            continue
        by_epoch.setdefault(info.epoch, []).append(
            {"file": str(path.relative_to(run_dir)), "prompt": name, "seed": info.seed, **metrics})
    if not by_epoch:
        raise RunError(f"{sample_dir}: no epoch samples of the baseline prompts yet; train the run "
                       "(sample_every_n_epochs) or evaluate with --via generate")
    return by_epoch, deviations, skipped


def _images_from_generate(settings, run_dir: Path, training: dict, seeds_per_prompt: int, force: bool,
                          quiet: bool) -> dict[int, list[dict]]:
    checkpoints = run_checkpoints(run_dir, training)
    if not checkpoints:
        raise RunError(f"{run_dir}: no checkpoints yet; train the run first (bespoke train)")
    seeds = tuple(range(1, seeds_per_prompt + 1))
    by_epoch: dict[int, list[dict]] = {}
    for epoch in checkpoints:
        request = GenerateRequest(epoch=epoch, seeds=seeds, sampler=PROTOCOL_SAMPLER, force=force)
        record = generate(settings, run_dir, request)
        outdir = Path(record["outdir"])
        by_epoch[epoch] = [{"file": str((outdir / i["file"]).relative_to(run_dir)), "prompt": i["prompt"],
                            "seed": i["seed"], **measure(outdir / i["file"])} for i in record["images"]]
    return by_epoch


def evaluate_run(settings, run_dir: Path, seeds_per_prompt: int = 4, via: str = "samples", *, force: bool = False,
                 quiet: bool = False) -> dict:
    """The 7-prompt baseline protocol on every epoch of a run; writes `<run>/report/baseline_eval.json`.

    via="samples": the samples sd-scripts drew during training (the baseline-512 preset's sample prompts are
    the 7 protocol prompts, one fixed seed each); via="generate": `seeds_per_prompt` fixed seeds (1..N) per
    prompt and epoch through gen_img.py. Per epoch: mean colors_nearest over prompts x seeds, sd/min/max of
    the per-seed 7-prompt means, % clean, per-prompt means, and whether the recorded figure is inside.
    """
    if via not in VIAS:
        raise UsageError(f"--via {via!r}: choose samples or generate")
    if seeds_per_prompt < 1:
        raise UsageError(f"--seeds-per-prompt {seeds_per_prompt}: must be at least 1")
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    training = read_training(RunPaths(run_dir))
    deviations: list[str] = []
    skipped: dict = {}
    if via == "samples":
        by_epoch, deviations, skipped = _images_from_samples(run_dir, training)
        sampler = str(training.get("sample_sampler") or "ddim")  # sd-scripts' default when unset
        if sampler != PROTOCOL_SAMPLER:
            deviations.append(f"samples drawn with sampler {sampler} (protocol: {PROTOCOL_SAMPLER})")
    else:
        by_epoch = _images_from_generate(settings, run_dir, training, seeds_per_prompt, force, quiet)
        sampler = PROTOCOL_SAMPLER
    data = recorded_baseline()
    names = [p["name"] for p in data["prompts"]]
    recorded = recorded_epochs()
    epochs = [{"epoch": epoch, **summarize_epoch(images, names, recorded.get(epoch))}
              for epoch, images in sorted(by_epoch.items())]
    notes = []
    seeds_seen = {e["seeds_per_prompt"] for e in epochs}
    if via == "samples" and max(seeds_seen, default=0) < 2:
        notes.append("training samples have 1 seed per prompt: each epoch mean is one draw, so there is no spread "
                     "and 'inside' is undecided; run `bespoke baseline evaluate RUN --via generate` for N seeds")
    if any(not e["complete"] for e in epochs):
        notes.append("some epochs lack some of the 7 prompts: their means are over the prompts present")
    result = {
        "schema_version": SCHEMA_VERSION,
        "kind": "bespoke-baseline-eval",
        "run": str(run_dir),
        "run_id": manifest.id,
        "created": now_iso(),
        "via": via,
        "seeds_per_prompt": seeds_per_prompt if via == "generate" else max(seeds_seen, default=0),
        "sampler": sampler,
        "inside_rule": INSIDE_RULE,
        "clean_rule": data["clean_definition"]["rule"],
        "protocol": data["protocol"],
        "deviations": deviations,
        "skipped": skipped,
        "notes": notes,
        "footnote": FOOTNOTE,
        "epochs": epochs,
    }
    atomic_write_json(RunPaths(run_dir).report_dir / EVAL_FILE, result)
    return result


def load_evaluation(run_dir: Path) -> dict | None:
    """The run's report/baseline_eval.json, or None when it has not been evaluated."""
    path = RunPaths(Path(run_dir)).report_dir / EVAL_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: unreadable ({exc}); re-run `bespoke baseline evaluate`") from exc
    if data.get("schema_version") != SCHEMA_VERSION:
        raise RunError(f"{path}: schema_version {data.get('schema_version')!r}, this bespoke reads {SCHEMA_VERSION}; "
                       "re-run `bespoke baseline evaluate`")
    return data


def compare_rows(evaluation: dict) -> list[dict]:
    """One row per epoch (recorded epochs 1-10 and the run's): recorded vs this run, difference, % clean, inside."""
    recorded = recorded_epochs()
    mine = {int(e["epoch"]): e for e in evaluation["epochs"]}
    rows = []
    for epoch in sorted(set(recorded) | set(mine)):
        rec, run = recorded.get(epoch), mine.get(epoch)
        rows.append({
            "epoch": epoch,
            "label": rec["label"] if rec else str(epoch),
            "recorded_mean": rec["mean"] if rec else None,
            "recorded_clean_pct": _r(100.0 * rec["clean"] / rec["n"]) if rec else None,
            "mean": run["mean"] if run else None,
            "sd": run["sd"] if run else None,
            "min": run["min"] if run else None,
            "max": run["max"] if run else None,
            "n": run["n"] if run else 0,
            "seeds_per_prompt": run["seeds_per_prompt"] if run else 0,
            "difference": run["difference"] if run else None,
            "clean_pct": run["clean_pct"] if run else None,
            "inside": run["inside"] if run else None,
        })
    return rows


def compare(run_dir: Path, settings=None) -> dict:
    """A run vs the recorded baseline: {"rows", "evaluation", "evaluated_now"}. Uses the run's
    baseline_eval.json; when it has none, evaluates the run's training samples first (and writes it)."""
    evaluation = load_evaluation(run_dir)
    evaluated_now = evaluation is None
    if evaluation is None:
        evaluation = evaluate_run(settings, run_dir, via="samples", quiet=True)
    return {"rows": compare_rows(evaluation), "evaluation": evaluation, "evaluated_now": evaluated_now}
