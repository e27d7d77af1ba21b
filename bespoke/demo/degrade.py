"""Degraded R px versions of a 24 px punk: what a diffusion model's samples look like, made on purpose.

Shared by the accuracy harness (benchmarks/accuracy.py), the tests and the demo's sample simulator.
Three levels, each a superset of the previous one's damage:

- `nearest`: Pillow NEAREST stretch 24 -> R (exactly what training saw; cells of 21/22 px at 512).
- `soft`: bicubic upscale, Gaussian blur, a global colour cast, per-cell colour jitter and pixel noise
  (the blurry, noisy, slightly off-colour grids SD draws).
- `shifted`: `soft`, then the whole grid moved by 3-7 px on each axis (crop one side, replicate the
  edge on the other) and a JPEG q85 round trip.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

LEVELS = ("nearest", "soft", "shifted")


def stretch_nearest(pixels: np.ndarray, size: int = 512) -> Image.Image:
    """Pillow NEAREST upscale of a 24x24 RGB array to size x size."""
    return Image.fromarray(np.ascontiguousarray(pixels), "RGB").resize((size, size), Image.Resampling.NEAREST)


def soften(pixels: np.ndarray, rng: np.random.Generator, size: int = 512, *, blur: float = 1.5,
           noise: float = 8.0, cast: float = 4.0, cell_jitter: float = 2.0) -> Image.Image:
    """Bicubic upscale + blur + colour cast (per channel, up to +-cast) + per-cell jitter + Gaussian noise."""
    grid = pixels.astype(np.float32)
    grid = grid + rng.uniform(-cast, cast, size=(1, 1, 3)).astype(np.float32)
    grid = grid + rng.normal(0.0, cell_jitter, size=grid.shape).astype(np.float32)
    small = Image.fromarray(np.clip(np.rint(grid), 0, 255).astype(np.uint8), "RGB")
    big = small.resize((size, size), Image.Resampling.BICUBIC)
    if blur > 0:
        big = big.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(big, dtype=np.float32)
    arr = arr + rng.normal(0.0, noise, size=arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def shift(image: Image.Image, dx: int, dy: int) -> Image.Image:
    """Move the content by (dx, dy) px: what leaves the frame is cropped, the uncovered side repeats the edge."""
    arr = np.asarray(image)
    h, w = arr.shape[:2]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    return Image.fromarray(np.ascontiguousarray(arr[ys][:, xs]), "RGB")


def jpeg(image: Image.Image, quality: int = 85) -> Image.Image:
    """A JPEG round trip at `quality` (Pillow defaults: 4:2:0 chroma subsampling)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def degrade(pixels: np.ndarray, level: str, seed: int = 0, size: int = 512) -> tuple[Image.Image, tuple[int, int]]:
    """The `level` degradation of a 24x24 punk; returns (image, (dx, dy) grid shift in px)."""
    if level not in LEVELS:
        raise ValueError(f"unknown degradation {level!r}: choose one of {', '.join(LEVELS)}")
    rng = np.random.default_rng(seed)
    if level == "nearest":
        return stretch_nearest(pixels, size), (0, 0)
    image = soften(pixels, rng, size, blur=1.5 * size / 512)  # the same blur in cell units at every size
    if level == "soft":
        return image, (0, 0)
    scale = size / 512
    dx, dy = (int(round(rng.integers(3, 8) * scale)) * int(rng.choice([-1, 1])) for _ in range(2))
    return jpeg(shift(image, dx, dy)), (dx, dy)
