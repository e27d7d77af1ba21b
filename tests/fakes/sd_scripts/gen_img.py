"""Stand-in for kohya-ss sd-scripts `gen_img.py` (FACTS.md §7): same arguments, same prompt-file syntax,
same output names and PNG text metadata, same failure modes for what bespoke relies on. No torch.

- Arguments: the real parser's options that matter for SD 1.5 + LoRA (`--network_*` are nargs="*" lists);
  an unknown option is an argparse error (exit 2) like the real one.
- Prompt file: `splitlines()`, blank lines and lines starting `#` skipped, options split on `" --"`,
  case-insensitive `w h s d l n f` (others accepted and ignored); `--d` takes comma-separated seeds.
- Names: `--f NAME` is used as given (the real one appends nothing, and adds `_1`, `_2` when the file
  exists); otherwise `im_{%Y%m%d%H%M%S}_{i:03d}_{seed}.png` with i the index inside the batch, or
  `im_{n:06d}.png` with `--sequential_file_name`. PNG tEXt: prompt, seed, sampler, steps, scale,
  negative-prompt, raw-prompt.
- Images: a synthetic punk chosen by the prompt text, drawn at W x H; a share of its pixels is noise that
  shrinks as the LoRA's `ss_epoch` (times `--network_mul`) grows, varied by the seed. Without a LoRA it is
  all noise. Deterministic in (prompt, seed, epoch, mul).
- Failures: offline (HF_HUB_OFFLINE) without `--tokenizer_cache_dir` or a HF_HOME cache of the CLIP tokenizer ->
  TypeError, exit 1, as the real one; an option the real gen_img.py lacks -> argparse error, exit 2;
  a missing `--network_weights` file or a non-safetensors one -> traceback, exit 1.
  FAKE_GEN_IMG_FAIL_AFTER=N -> traceback after N images; FAKE_GEN_IMG_HANG_AFTER=N -> sleeps after N images;
  FAKE_GEN_IMG_RECORD=path -> argv/env as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import struct
import sys
import time
from pathlib import Path

from library.network_trainer import NetworkTrainer

SAMPLERS = ["ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
            "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a"]


def log(message: str) -> None:
    # the real script logs through rich to stderr
    print(f"INFO     {message}", file=sys.stderr, flush=True)


def setup_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--console_log_level", type=str, default=None)
    parser.add_argument("--console_log_file", type=str, default=None)
    parser.add_argument("--console_log_simple", action="store_true")
    for flag in ("--sdxl", "--v1", "--v2", "--v_parameterization", "--interactive", "--no_preview",
                 "--sequential_file_name", "--use_original_file_name", "--no_half_vae", "--iter_same_seed",
                 "--shuffle_prompts", "--fp16", "--bf16", "--xformers", "--sdpa", "--diffusers_xformers",
                 "--opt_channels_last", "--network_show_meta", "--network_merge", "--network_pre_calc"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("--prompt", type=str, default=None)
    parser.add_argument("--from_file", type=str, default=None)
    parser.add_argument("--from_module", type=str, default=None)
    parser.add_argument("--image_path", type=str, default=None)
    parser.add_argument("--mask_path", type=str, default=None)
    parser.add_argument("--strength", type=float, default=None)
    parser.add_argument("--images_per_prompt", type=int, default=1)
    parser.add_argument("--outdir", type=str, default="outputs")
    parser.add_argument("--n_iter", type=int, default=1)
    parser.add_argument("--H", type=int, default=None)
    parser.add_argument("--W", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--vae_batch_size", type=float, default=None)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--sampler", type=str, default="ddim", choices=SAMPLERS)
    parser.add_argument("--scale", type=float, default=7.5)
    parser.add_argument("--ckpt", type=str, default=None)
    parser.add_argument("--vae", type=str, default=None)
    parser.add_argument("--tokenizer_cache_dir", type=str, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--network_module", type=str, default=None, nargs="*")
    parser.add_argument("--network_weights", type=str, default=None, nargs="*")
    parser.add_argument("--network_mul", type=float, default=None, nargs="*")
    parser.add_argument("--network_args", type=str, default=None, nargs="*")
    parser.add_argument("--clip_skip", type=int, default=None)
    parser.add_argument("--max_embeddings_multiples", type=int, default=None)
    parser.add_argument("--negative_scale", type=float, default=None)
    return parser


def read_safetensors_metadata(path: str) -> dict:
    """What `safetensors.safe_open` would do first: parse the header, raise on anything else."""
    with open(path, "rb") as handle:  # FileNotFoundError for a missing file, like the real loader
        head = handle.read(8)
        if len(head) < 8:
            raise ValueError(f"Error while deserializing header: HeaderTooSmall ({path})")
        (length,) = struct.unpack("<Q", head)
        if length > 100_000_000:
            raise ValueError(f"Error while deserializing header: HeaderTooLarge ({path})")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"Error while deserializing header: InvalidHeaderDeserialization ({path})") from exc
    return header.get("__metadata__") or {}


def parse_line(raw: str, args) -> dict:
    parts = raw.strip().split(" --")
    entry = {"prompt": parts[0], "width": args.W or 512, "height": args.H or 512, "steps": args.steps,
             "scale": args.scale, "seeds": None, "negative": "", "filename": None, "raw": raw}
    for part in parts[1:]:
        for pattern, key, cast in ((r"w (\d+)", "width", int), (r"h (\d+)", "height", int),
                                   (r"s (\d+)", "steps", lambda v: max(1, min(1000, int(v)))),
                                   (r"d ([\d,]+)", "seeds", lambda v: [int(d) for d in v.split(",") if d]),
                                   (r"l ([\d\.]+)", "scale", float), (r"n (.+)", "negative", str),
                                   (r"f (.+)", "filename", str)):
            match = re.match(pattern, part, re.IGNORECASE)
            if match:
                entry[key] = cast(match.group(1))
                log(f"{key}: {entry[key]}")
                break
    return entry


def first_available_filename(folder: str, filename: str) -> str:
    if not os.path.exists(os.path.join(folder, filename)):
        return filename
    stem, ext = os.path.splitext(filename)
    n = 1
    while os.path.exists(os.path.join(folder, f"{stem}_{n}{ext}")):
        n += 1
    return f"{stem}_{n}{ext}"


def draw(prompt: str, seed: int, epoch: float, size: tuple[int, int]):
    import numpy as np
    from PIL import Image

    from bespoke.dataset.synthetic import make_punk

    punk_seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 100_000
    base = make_punk(punk_seed).image().resize(size, Image.NEAREST)
    rng = np.random.default_rng(seed * 7919 + punk_seed)
    # share of noisy pixels: all of them without a LoRA, none from "epoch 8" on; the seed moves it a little
    share = float(np.clip(1.0 - epoch / 8.0 + rng.normal(0.0, 0.05), 0.0, 1.0))
    pixels = np.asarray(base, dtype=np.int16).copy()
    mask = rng.random(pixels.shape[:2]) < share
    noise = rng.integers(-40, 41, size=pixels.shape, dtype=np.int16)
    pixels[mask] += noise[mask]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def main() -> int:
    args = setup_parser().parse_args()
    record = os.environ.get("FAKE_GEN_IMG_RECORD")
    if record:
        Path(record).write_text(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": {
            k: v for k, v in os.environ.items() if k.startswith(("CUDA_", "PYTHON", "ACCELERATE_"))}}))
    if args.ckpt is None:
        raise ValueError("ckpt is required / --ckpt が必要です")
    if args.ckpt.endswith((".safetensors", ".ckpt")) and not os.path.exists(args.ckpt):
        raise FileNotFoundError(f"model not found: {args.ckpt}")
    log(f"load StableDiffusion checkpoint: {args.ckpt}")
    # the real one loads the CLIP tokenizer like train_network.py: tokenizer_cache_dir, else the hub (offline: the
    # HF_HOME cache), else TypeError (FACTS §9)
    NetworkTrainer().get_tokenize_strategy(args)

    epoch = 0.0
    for index, weights in enumerate(args.network_weights or []):
        module = (args.network_module or ["networks.lora"])[min(index, len(args.network_module or [""]) - 1)]
        mul = (args.network_mul or [1.0])[min(index, len(args.network_mul or [1.0]) - 1)]
        log(f"import network module: {module}")
        log(f"load network weights from: {weights}")
        meta = read_safetensors_metadata(weights)
        epoch += float(meta.get("ss_epoch", "0") or 0) * mul
        log(f"create LoRA network from weights: epoch {meta.get('ss_epoch')}, multiplier {mul}")

    if args.from_file:
        log(f"reading prompts from {args.from_file}")
        with open(args.from_file, encoding="utf-8") as handle:
            lines = [d for d in handle.read().splitlines() if len(d.strip()) > 0 and d[0] != "#"]
    elif args.prompt:
        lines = [args.prompt]
    else:
        raise ValueError("interactive mode is not supported by the fake")

    os.makedirs(args.outdir, exist_ok=True)
    seed_random = random.Random(args.seed) if args.seed is not None else random.Random()
    fail_after = int(os.environ.get("FAKE_GEN_IMG_FAIL_AFTER", "0") or 0)
    hang_after = int(os.environ.get("FAKE_GEN_IMG_HANG_AFTER", "0") or 0)
    made = 0
    from PIL.PngImagePlugin import PngInfo

    for number, line in enumerate(lines):
        log(f"prompt {number + 1}/{len(lines)}: {line.strip().split(' --')[0]}")
        entry = parse_line(line, args)
        seeds = list(entry["seeds"] or [])
        for repeat in range(args.images_per_prompt):
            seed = seeds.pop(0) if seeds else seed_random.randint(0, 2**32 - 1)
            if fail_after and made >= fail_after:
                raise RuntimeError(f"fake failure after {made} images (FAKE_GEN_IMG_FAIL_AFTER)")
            if hang_after and made >= hang_after:
                time.sleep(600)
            started = time.time()
            for step in range(1, entry["steps"] + 1):
                if step == entry["steps"] or step % 10 == 0:
                    elapsed = time.time() - started
                    sys.stderr.write(f"\r{int(100 * step / entry['steps']):3d}%|{'#' * (step * 10 // entry['steps'])}"
                                     f"{' ' * (10 - step * 10 // entry['steps'])}| {step}/{entry['steps']} "
                                     f"[00:00<00:00, {step / max(elapsed, 1e-3):.2f}it/s]")
            sys.stderr.write("\n")
            image = draw(entry["prompt"], seed, epoch, (entry["width"] // 8 * 8, entry["height"] // 8 * 8))
            info = PngInfo()
            info.add_text("prompt", entry["prompt"])
            info.add_text("seed", str(seed))
            info.add_text("sampler", args.sampler)
            info.add_text("steps", str(entry["steps"]))
            info.add_text("scale", str(entry["scale"]))
            info.add_text("negative-prompt", entry["negative"])
            info.add_text("raw-prompt", entry["raw"])
            filename = entry["filename"]
            if filename is not None and args.images_per_prompt > 1:
                stem, ext = os.path.splitext(filename)
                filename = f"{stem}_{repeat}{ext}"
            if filename is not None:
                name = first_available_filename(args.outdir, filename)
            elif args.sequential_file_name:
                name = f"im_{made + 1:06d}.png"
            else:
                name = f"im_{time.strftime('%Y%m%d%H%M%S')}_{0:03d}_{seed}.png"
            image.save(os.path.join(args.outdir, name), pnginfo=info)
            made += 1
    log("done!")
    return 0


if __name__ == "__main__":
    sys.exit(main())
