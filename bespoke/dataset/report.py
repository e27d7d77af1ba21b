"""`prepare.json`: what preparation did to every image and caption, and the training palette.

The key order of the dicts built here is the order of `prepare.json` on disk: keep it when editing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bespoke.dataset.cache import PREPARE_VERSION
from bespoke.dataset.captions import caption_stats, caption_warnings
from bespoke.dataset.colours import RGB, hex_colour, packed_to_hex, rgb_from_hex
from bespoke.dataset.layout import Layout
from bespoke.dataset.options import AUTO_BACKGROUND
from bespoke.dataset.render import ALPHA_THRESHOLD
from bespoke.dataset.sources import SourceImage
from bespoke.errors import DatasetError

SCHEMA_VERSION = 1
REPORT_FILE = "prepare.json"
ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")


@dataclass(frozen=True)
class Recipe:
    """How a prepared folder is made: the source folder, the layout at its resolution, the background and trigger
    options, and the content hash of all of it with every source file (the cache key)."""

    source: Path
    geometry: Layout
    background: str
    trigger: str | None
    key: str


def image_entry(image: SourceImage, info: dict[str, Any], colours: set[int], border: RGB) -> dict[str, Any]:
    """The report entry of one prepared image (`info` is what compositing did)."""
    return {
        "name": image.name,
        "mode": image.mode,
        "size": list(image.size),
        "colors": len(colours),
        **info,
        "border_color": hex_colour(border),
        "caption_chars": image.caption.chars,
        "caption_tags": image.caption.tags,
        "caption_tokens": image.caption.tokens,
        "trigger_added": image.caption.trigger_added,
        "source_sha256": image.image_sha256,
        "caption_sha256": image.caption_sha256,
    }


def _alpha_warnings(entries: list[dict[str, Any]]) -> list[str]:
    warnings = []
    semi = [e["name"] for e in entries if e["semi_transparent_pixels"]]
    if semi:
        warnings.append(
            f"{len(semi)} images have semi-transparent pixels (e.g. {', '.join(semi[:3])}): alpha >= "
            f"{ALPHA_THRESHOLD} kept the pixel's colour, lower became the background (no blended colours)"
        )
    fallback = [e["name"] for e in entries if e["background_source"] == "fallback-white"]
    if fallback:
        warnings.append(f"{len(fallback)} images have a mostly transparent border and were composited on white "
                        f"(e.g. {', '.join(fallback[:3])}); pass --background to choose the colour")
    return warnings


def _summary(images: list[SourceImage], entries: list[dict[str, Any]], palette: set[int]) -> dict[str, Any]:
    colours = sorted(e["colors"] for e in entries)
    alpha_images = [e for e, image in zip(entries, images, strict=True) if image.mode in ALPHA_MODES
                    or image.transparent_pixels or image.semi_transparent_pixels]
    return {
        "images": len(entries),
        "modes": dict(sorted(Counter(e["mode"] for e in entries).items())),
        "with_alpha": len(alpha_images),
        "alpha_all_opaque": sum(1 for e in alpha_images if not e["transparent_pixels"]
                                and not e["semi_transparent_pixels"]),
        "composited": sum(1 for e in entries if e["composited"]),
        "transparent_pixels": sum(e["transparent_pixels"] for e in entries),
        "semi_transparent_pixels": sum(e["semi_transparent_pixels"] for e in entries),
        "colors": {"min": colours[0], "median": float(np.median(colours)), "max": colours[-1]},
        "palette_size": len(palette),
    }


def _background_policy(background: str) -> str:
    policy = ("per image: most common opaque border colour, else white" if background == AUTO_BACKGROUND
              else f"every transparent pixel becomes {background}")
    return policy + f"; alpha >= {ALPHA_THRESHOLD} keeps the pixel's colour"


def build_report(recipe: Recipe, images: list[SourceImage], entries: list[dict[str, Any]], palette: set[int],
                 notes: list[str]) -> dict[str, Any]:
    """The `prepare.json` content of `recipe` (without `created_at` / `elapsed_seconds`, which the caller adds)."""
    stats = caption_stats([image.caption for image in images])
    multi = [image.name for image in images if image.caption.extra_lines]
    bom = [image.name for image in images if image.caption.has_bom]
    warnings = caption_warnings(stats, multi, bom) + _alpha_warnings(entries)
    return {
        "schema_version": SCHEMA_VERSION,
        "prepare_version": PREPARE_VERSION,
        "sha256": recipe.key,
        "source": str(recipe.source),
        "resolution": recipe.geometry.resolution,
        "layout": recipe.geometry.to_json(),
        "layout_description": recipe.geometry.describe(),
        "background": recipe.background,
        "background_policy": _background_policy(recipe.background),
        "trigger": recipe.trigger,
        "summary": _summary(images, entries, palette),
        "images": entries,
        "palette": [packed_to_hex(c) for c in sorted(palette)],
        "caption_stats": stats,
        "warnings": warnings,
        "notes": notes,
    }


def load_prepare_report(prepared_dir: Path) -> dict[str, Any]:
    """The `prepare.json` of a prepared folder."""
    path = Path(prepared_dir) / REPORT_FILE
    if not path.is_file():
        raise DatasetError(f"{prepared_dir}: not a prepared dataset (no {REPORT_FILE}); run `bespoke prepare` first")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable ({exc}); delete {prepared_dir} and run `bespoke prepare` again") from exc
    if not isinstance(report, dict) or report.get("schema_version") != SCHEMA_VERSION:
        raise DatasetError(f"{path}: unknown schema; delete {prepared_dir} and run `bespoke prepare` again")
    return report


def load_palette(prepared_dir: Path) -> list[RGB]:
    """The training palette (union of source colours) of a prepared folder, as RGB tuples."""
    return [rgb_from_hex(c) for c in load_prepare_report(prepared_dir)["palette"]]
