"""Dataset preparation: validated 24x24 punks -> exact R px training images + captions, cached by content hash.

Flow: list the folder and read every source's bytes (cheap) -> hash them with the options -> a finished cache
folder for that hash is returned as is -> otherwise decode and validate everything, build the images in a temp
folder inside the cache and rename it into place. A crash leaves at most a `.tmp-*` folder, never a final one.

Alpha policy (reported per image):
- a pixel with alpha >= 128 keeps its own RGB (semi-transparent pixels are snapped, not blended: blending
  would invent colours the artist never drew); alpha < 128 becomes the background colour.
- background `auto` (the default) is, per image, the most common opaque colour on the 1 px border when
  opaque pixels cover at least half of that border (the punk's own painted background continues into
  the hole: no colour the artist did not use), else white (a sprite on a transparent background).
  `--background COLOR` sets one colour for every image instead.
- images whose alpha is 255 everywhere are not composited at all (10 of the user's 203 are RGBA like that).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bespoke.dataset.captions import (
    Caption,
    CaptionProblem,
    caption_stats,
    caption_warnings,
    check_trigger,
    parse_caption,
)
from bespoke.errors import DatasetError, UsageError, did_you_mean
from bespoke.fsutil import sha256_bytes
from bespoke.dataset.layout import GRID, RESOLUTIONS, Layout, layout_for

PREPARE_VERSION = 1  # bump when the produced bytes change: it is part of the cache key
SCHEMA_VERSION = 1
REPORT_FILE = "prepare.json"
PREPARED_SUBDIR = "prepared"
AUTO_BACKGROUND = "auto"
FALLBACK_BACKGROUND = (255, 255, 255)
ALPHA_THRESHOLD = 128
MIN_RESOLUTION, MAX_RESOLUTION = 64, 2048
SUPPORTED_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa")
OTHER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic")
STALE_TMP_SECONDS = 3600


class PrepareInvariantError(RuntimeError):
    """A prepared image is not what the layout says or has a colour the source did not have (a bespoke bug)."""


@dataclass(frozen=True)
class SourceFile:
    """A source image and its caption as found on disk (read, hashed, not decoded)."""

    name: str
    image_path: Path
    caption_path: Path
    image_bytes: bytes = field(repr=False)
    caption_bytes: bytes = field(repr=False)

    @property
    def image_sha256(self) -> str:
        return sha256_bytes(self.image_bytes)

    @property
    def caption_sha256(self) -> str:
        return sha256_bytes(self.caption_bytes)


@dataclass(frozen=True)
class SourceImage:
    """A validated source: 24x24 pixels as RGBA (uint8, HxWx4), its original mode and its caption."""

    name: str
    image_path: Path
    caption_path: Path
    mode: str
    size: tuple[int, int]
    image_sha256: str
    caption_sha256: str
    caption: Caption
    rgba: np.ndarray = field(repr=False, compare=False)

    @property
    def transparent_pixels(self) -> int:
        return int((self.rgba[..., 3] == 0).sum())

    @property
    def semi_transparent_pixels(self) -> int:
        alpha = self.rgba[..., 3]
        return int(((alpha > 0) & (alpha < 255)).sum())


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared image_dir at one resolution (the thing `plan` points sd-scripts at)."""

    source: Path
    resolution: int
    layout: Layout
    dir: Path
    sha256: str
    palette: list[str]
    report: dict
    cached: bool


# ---------------------------------------------------------------------------------------------- options


def parse_background(spec: str | None) -> str:
    """Normalise --background: 'auto' or '#rrggbb' (accepts #rgb, #rrggbb and CSS colour names)."""
    if spec is None or spec.strip().lower() == AUTO_BACKGROUND:
        return AUTO_BACKGROUND
    from PIL import ImageColor

    text = spec.strip()
    try:
        rgb = ImageColor.getrgb(text)
    except ValueError:
        hint = did_you_mean(text.lower(), list(ImageColor.colormap) + [AUTO_BACKGROUND])
        raise UsageError(
            f"--background {spec!r} is not a colour{hint}; use auto, #rrggbb or a name like white"
        ) from None
    if len(rgb) == 4 and rgb[3] != 255:
        raise UsageError(f"--background {spec!r} is not opaque; training images have no alpha, give an opaque colour")
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


def check_resolution(resolution: int) -> int:
    """SD 1.5 works on latents of 1/8 the size: the resolution must be a multiple of 8 in a sane range."""
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise UsageError(f"resolution must be an integer, got {resolution!r}")
    if resolution % 8 or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise UsageError(
            f"resolution {resolution} is not usable: pick a multiple of 8 from {MIN_RESOLUTION} to {MAX_RESOLUTION} "
            f"(bespoke's presets: {', '.join(map(str, RESOLUTIONS))})"
        )
    return resolution


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


# ---------------------------------------------------------------------------------------------- scanning


class _Problems:
    """Collects every problem so the user sees them all at once; raises one DatasetError."""

    def __init__(self, source: Path):
        self.source = source
        self.items: list[tuple[str, str]] = []

    def add(self, path: Path, message: str) -> None:
        self.items.append((Path(path).name, f"{path}: {message}"))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        lines = [line for _name, line in sorted(self.items)]  # in file order, whatever check found them
        first = lines[0]
        more = len(lines) - 1
        message = first if not more else f"{first} (+{more} more problem{'s' if more > 1 else ''} in {self.source})"
        error = DatasetError(message)
        error.problems = lines
        raise error


def _list_sources(source: Path, problems: _Problems) -> tuple[list[SourceFile], list[str]]:
    """Find `<stem>.png` + `<stem>.txt` pairs (non-recursive) and read their bytes. Returns (files, notes)."""
    if not source.exists():
        raise DatasetError(f"{source}: dataset folder not found; pass a folder of 24x24 PNG images with .txt captions")
    if not source.is_dir():
        raise DatasetError(f"{source}: is a file, not a folder; pass the folder that holds the PNG + .txt pairs")
    try:
        listing = sorted(source.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise DatasetError(f"{source}: cannot be listed ({exc.strerror}); check its permissions") from None
    images: list[Path] = []
    captions: dict[str, Path] = {}
    notes: list[str] = []
    for entry in listing:
        name = entry.name
        suffix = entry.suffix.lower()
        if name.startswith("."):
            notes.append(f"{name}: hidden file, ignored")
        elif entry.is_dir():
            notes.append(f"{name}/: subfolder, ignored (sources are read from the folder itself, not subfolders)")
        elif suffix == ".png":
            images.append(entry)
        elif suffix == ".txt":
            captions[name] = entry
        elif suffix in OTHER_IMAGE_SUFFIXES:
            problems.add(entry, f"{suffix} images are not supported; save it as a 24x24 PNG or move it out")
        else:
            notes.append(f"{name}: not a PNG or .txt caption, ignored")
    if not images:
        what = "is empty" if not listing else "has no .png images"
        raise DatasetError(f"{source}: {what}; put 24x24 PNG images with <name>.txt captions in it")

    by_key: dict[str, list[Path]] = {}
    for path in images:
        by_key.setdefault(path.stem.casefold(), []).append(path)
    files = []
    used_captions = set()
    for path in images:
        clash = by_key[path.stem.casefold()]
        if len(clash) > 1:
            if path == clash[0]:
                others = " and ".join(p.name for p in clash)
                problems.add(path, f"duplicate name: {others} differ only by case and would overwrite each other "
                                   f"in the prepared folder; rename or remove one")
            continue
        caption_name = f"{path.stem}.txt"
        caption_path = captions.get(caption_name)
        if caption_path is None:
            near = [n for n in captions if n.casefold() == caption_name.casefold()]
            hint = f" (found {near[0]}: rename it to {caption_name})" if near else ""
            problems.add(path, f"missing caption {caption_name}{hint}; write the caption for this image in it")
            continue
        used_captions.add(caption_name)
        try:
            image_bytes = path.read_bytes()
            caption_bytes = caption_path.read_bytes()
        except OSError as exc:
            problems.add(path, f"cannot be read ({exc.strerror}); check its permissions")
            continue
        files.append(SourceFile(path.stem, path, caption_path, image_bytes, caption_bytes))
    orphans = sorted(set(captions) - used_captions - {f"{p.stem}.txt" for p in images})
    for name in orphans:
        notes.append(f"{name}: caption without an image, ignored")
    return files, notes


def _decode(file: SourceFile, problems: _Problems, trigger: str | None) -> SourceImage | None:
    """Decode and check one source fully (forces a complete decode so truncated files are caught)."""
    from PIL import Image, UnidentifiedImageError

    try:
        caption = parse_caption(file.caption_bytes, trigger)
    except CaptionProblem as exc:
        problems.add(file.caption_path, str(exc))
        caption = None
    try:
        with Image.open(io.BytesIO(file.image_bytes)) as img:
            if img.format != "PNG":
                problems.add(file.image_path, f"is a {img.format} file named .png; save it as a real PNG")
                return None
            if img.size != (GRID, GRID):
                width, height = img.size
                factor = f" ({width // GRID}x the grid: downscale with NEAREST)" if width == height and width % GRID == 0 else ""
                problems.add(file.image_path, f"is {width}x{height}, bespoke expects {GRID}x{GRID} sources{factor}; "
                                              f"save the 24x24 original")
                return None
            if img.mode not in SUPPORTED_MODES:
                problems.add(file.image_path, f"has pixel mode {img.mode} (e.g. 16-bit); save it as an 8-bit RGB, "
                                              f"RGBA or palette PNG")
                return None
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                problems.add(file.image_path, f"is an animated PNG ({frames} frames); save a single 24x24 frame")
                return None
            mode = img.mode
            img.load()
            rgba = np.array(img.convert("RGBA"), dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        problems.add(file.image_path, f"is far too large for a 24x24 source ({exc}); save the 24x24 original")
        return None
    except UnidentifiedImageError:
        problems.add(file.image_path, "is not an image (Pillow cannot read it); replace it with the 24x24 PNG")
        return None
    except Exception as exc:  # truncated data, bad CRC, zlib errors...: Pillow raises many types
        detail = str(exc) or type(exc).__name__
        problems.add(file.image_path, f"is damaged or truncated ({detail}); re-export the PNG")
        return None
    if caption is None:
        return None
    return SourceImage(
        name=file.name, image_path=file.image_path, caption_path=file.caption_path, mode=mode, size=(GRID, GRID),
        image_sha256=file.image_sha256, caption_sha256=file.caption_sha256, caption=caption, rgba=rgba,
    )


def _decode_all(files: list[SourceFile], problems: _Problems, trigger: str | None, advance=None) -> list[SourceImage]:
    out = []
    for file in files:
        image = _decode(file, problems, trigger)
        if image is not None:
            out.append(image)
        if advance:
            advance()
    return out


def _trigger(trigger: str | None) -> str | None:
    try:
        return check_trigger(trigger)
    except ValueError as exc:
        raise UsageError(f"--trigger: {exc}") from None


def scan_sources(source: Path, trigger: str | None = None) -> list[SourceImage]:
    """Validate a source folder completely without writing anything.

    Raises DatasetError whose message is the first problem (in file order) and whose `.problems` lists all.
    """
    source = Path(source).expanduser()
    problems = _Problems(source)
    files, _notes = _list_sources(source, problems)
    images = _decode_all(files, problems, _trigger(trigger))
    problems.raise_if_any()
    return images


# ---------------------------------------------------------------------------------------------- pixels


def _colour_set(rgb: np.ndarray) -> set[int]:
    flat = rgb.reshape(-1, 3).astype(np.uint32)
    return set(np.unique((flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]).tolist())


def _packed_to_hex(packed: int) -> str:
    return f"#{packed:06x}"


def _most_common(pixels: np.ndarray) -> tuple[int, int, int] | None:
    """Most common RGB among `pixels` (N x 3); ties go to the smallest colour so the choice is deterministic."""
    if not len(pixels):
        return None
    counts = Counter(map(tuple, pixels.tolist()))
    best = max(counts.values())
    return min(colour for colour, n in counts.items() if n == best)


def _ring(array: np.ndarray) -> np.ndarray:
    """The 1 px border of an HxWxC array as an N x C array (each pixel once)."""
    return np.concatenate([array[0, :], array[-1, :], array[1:-1, 0], array[1:-1, -1]])


def composite(image: SourceImage, background: str) -> tuple[np.ndarray, dict]:
    """The source as 24x24 RGB with the alpha policy applied, and what was done (for the report)."""
    rgba = image.rgba
    alpha = rgba[..., 3]
    keep = alpha >= ALPHA_THRESHOLD
    rgb = rgba[..., :3].copy()
    info = {
        "transparent_pixels": image.transparent_pixels,
        "semi_transparent_pixels": image.semi_transparent_pixels,
        "composited": False,
        "background": None,
        "background_source": None,
    }
    if keep.all():
        return rgb, info
    if background == AUTO_BACKGROUND:
        ring_rgb, ring_keep = _ring(rgba[..., :3]), _ring(keep)
        if ring_keep.sum() * 2 >= len(ring_keep):
            colour, origin = _most_common(ring_rgb[ring_keep]), "border"
        else:
            colour, origin = FALLBACK_BACKGROUND, "fallback-white"
    else:
        colour, origin = _rgb(background), "flag"
    rgb[~keep] = colour
    info.update(composited=True, background=_hex(colour), background_source=origin)
    return rgb, info


def source_colours(image: SourceImage, info: dict) -> set[int]:
    """Colours the source really has: RGB of pixels that stay (alpha >= threshold) + the background if used."""
    rgba = image.rgba
    kept = rgba[..., :3][rgba[..., 3] >= ALPHA_THRESHOLD]
    colours = _colour_set(kept) if len(kept) else set()
    if info["composited"]:
        r, g, b = _rgb(info["background"])
        colours.add((r << 16) | (g << 8) | b)
    return colours


def border_colour(rgb: np.ndarray) -> tuple[int, int, int]:
    """The most common colour on the 1 px border (the pad layout's margin colour)."""
    return _most_common(_ring(rgb))


def upscale(rgb: np.ndarray, layout: Layout) -> np.ndarray:
    """The R x R RGB training image for a 24x24 RGB source, built with Pillow NEAREST or from the pad edges."""
    from PIL import Image

    resolution = layout.resolution
    sizes = np.array(layout.cell_sizes)
    blocks = np.repeat(np.repeat(rgb, sizes, axis=0), sizes, axis=1)
    if layout.name == "stretch":
        out = np.asarray(Image.fromarray(rgb, "RGB").resize((resolution, resolution), Image.NEAREST))
        if out.shape != blocks.shape or not np.array_equal(out, blocks):
            raise PrepareInvariantError(f"Pillow NEAREST disagrees with the stretch layout edges at {resolution} px")
        return out
    out = np.empty((resolution, resolution, 3), np.uint8)
    out[:] = border_colour(rgb)
    start, end = layout.edges[0], layout.edges[-1]
    out[start:end, start:end] = blocks
    return out


def check_prepared(out: np.ndarray, rgb: np.ndarray, layout: Layout, allowed: set[int], name: str) -> None:
    """Bug guard: every cell of `out` is the source pixel, and no colour is outside `allowed`."""
    edges = np.array(layout.edges)
    # every pixel of cell (i, j) must equal source pixel (i, j): compare first and last row/col of each cell
    for picks in (edges[:-1], edges[1:] - 1):
        if not np.array_equal(out[np.ix_(picks, picks)], rgb):
            raise PrepareInvariantError(f"{name}: prepared cells do not match the {layout.describe()} geometry")
    extra = _colour_set(out) - allowed
    if extra:
        sample = ", ".join(_packed_to_hex(c) for c in sorted(extra)[:5])
        raise PrepareInvariantError(f"{name}: {len(extra)} colours the source does not have ({sample})")


def _encode_png(out: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(out, "RGB").save(buffer, "PNG")
    data = buffer.getvalue()
    # read back what sd-scripts will read: PNG is lossless, but this is the proof, not an assumption
    with Image.open(io.BytesIO(data)) as check:
        if check.mode != "RGB" or not np.array_equal(np.asarray(check), out):
            raise PrepareInvariantError("the encoded PNG does not decode to the prepared pixels")
    return data


# ---------------------------------------------------------------------------------------------- cache


def dataset_key(files: list[SourceFile], resolution: int, layout: str, background: str, trigger: str | None) -> str:
    """sha256 over every source's bytes and every option that changes the output (the cache key)."""
    import hashlib

    digest = hashlib.sha256()
    header = f"bespoke-prepare v{PREPARE_VERSION}\0{resolution}\0{layout}\0{background}\0{trigger or ''}\0"
    digest.update(header.encode("utf-8"))
    for file in sorted(files, key=lambda f: f.name):
        digest.update(f"{file.name}\0{file.image_sha256}\0{file.caption_sha256}\0".encode())
    return digest.hexdigest()


def _clean_stale_tmp(root: Path) -> None:
    # a killed run leaves a .tmp-* folder (never a final one); remove those that are clearly abandoned
    now = time.time()
    for entry in root.glob(".tmp-*"):
        try:
            if entry.is_dir() and now - entry.stat().st_mtime > STALE_TMP_SECONDS:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass


def load_prepare_report(prepared_dir: Path) -> dict:
    """The `prepare.json` of a prepared folder."""
    import json

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


def load_palette(prepared_dir: Path) -> list[tuple[int, int, int]]:
    """The training palette (union of source colours) of a prepared folder, as RGB tuples."""
    return [_rgb(c) for c in load_prepare_report(prepared_dir)["palette"]]


def _from_cache(final: Path, source: Path, key: str) -> PreparedDataset:
    try:
        report = load_prepare_report(final)
    except DatasetError as exc:
        raise DatasetError(f"{final}: cached dataset is not usable ({exc}); delete that folder and run again") from None
    missing = [
        f"{entry['name']}{ext}" for entry in report["images"] for ext in (".png", ".txt")
        if not (final / f"{entry['name']}{ext}").is_file()
    ]
    if report.get("sha256") != key or missing:
        what = f"{len(missing)} files are missing (e.g. {missing[0]})" if missing else "it belongs to other inputs"
        raise DatasetError(f"{final}: cached dataset is not usable ({what}); delete that folder and run again")
    layout = layout_for(report["layout"]["name"], report["resolution"])
    return PreparedDataset(source=source, resolution=report["resolution"], layout=layout, dir=final, sha256=key,
                           palette=list(report["palette"]), report=report, cached=True)


# ---------------------------------------------------------------------------------------------- prepare


def _build_one(image: SourceImage, background: str, geometry: Layout, folder: Path) -> tuple[dict, set[int]]:
    """Composite, upscale, prove and write one image + caption into `folder`; return its report entry."""
    rgb, info = composite(image, background)
    allowed = source_colours(image, info)
    colours = _colour_set(rgb)
    if not colours <= allowed:
        raise PrepareInvariantError(f"{image.name}: compositing produced a colour the source lacks")
    out = upscale(rgb, geometry)
    check_prepared(out, rgb, geometry, allowed, image.name)
    (folder / f"{image.name}.png").write_bytes(_encode_png(out))
    (folder / f"{image.name}.txt").write_bytes(image.caption.raw)
    entry = {
        "name": image.name,
        "mode": image.mode,
        "size": list(image.size),
        "colors": len(colours),
        **info,
        "border_color": _hex(border_colour(rgb)),
        "caption_chars": image.caption.chars,
        "caption_tags": image.caption.tags,
        "caption_tokens": image.caption.tokens,
        "trigger_added": image.caption.trigger_added,
        "source_sha256": image.image_sha256,
        "caption_sha256": image.caption_sha256,
    }
    return entry, colours


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bespoke.console import console

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True, disable=not enabled or not console.is_terminal)


def prepare_dataset(source: Path, resolution: int, *, cache_dir: Path, layout: str = "stretch",
                    background: str | None = None, trigger: str | None = None,
                    progress: bool = True) -> PreparedDataset:
    """Validated, cached training images at `resolution` px for the punks in `source`.

    The result lives in `<cache_dir>/prepared/<hash16>/`: `<name>.png` (R x R RGB) + `<name>.txt` +
    `prepare.json`. The same inputs and options return the finished folder without decoding anything.
    """
    from bespoke.run.paths import now_iso

    started = time.perf_counter()
    source = Path(source).expanduser().resolve()
    resolution = check_resolution(resolution)
    geometry = layout_for(layout, resolution)
    background = parse_background(background)
    trigger = _trigger(trigger)

    problems = _Problems(source)
    files, notes = _list_sources(source, problems)
    if problems.items:  # report every problem at once, decoding included
        _decode_all(files, problems, trigger)
        problems.raise_if_any()
    key = dataset_key(files, resolution, layout, background, trigger)
    root = Path(cache_dir).expanduser().resolve() / PREPARED_SUBDIR
    final = root / key[:16]
    if final.exists():
        return _from_cache(final, source, key)

    with _progress(progress) as bar:
        task = bar.add_task(f"checking {len(files)} images", total=len(files))
        images = _decode_all(files, problems, trigger, advance=lambda: bar.advance(task))
        problems.raise_if_any()

        root.mkdir(parents=True, exist_ok=True)
        _clean_stale_tmp(root)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:16]}-", dir=root))
        try:
            bar.update(task, description=f"preparing {geometry.describe()}", completed=0)
            entries, palette = [], set()
            # PNG encoding (zlib) and numpy release the GIL: a few threads roughly halve the wall time
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                jobs = [pool.submit(_build_one, image, background, geometry, tmp) for image in images]
                try:
                    for job in jobs:
                        entry, colours = job.result()
                        entries.append(entry)
                        palette |= colours
                        bar.advance(task)
                except BaseException:
                    for job in jobs:
                        job.cancel()
                    raise
            report = _report(source, geometry, background, trigger, key, images, entries, palette, notes)
            report["created_at"] = now_iso()
            report["elapsed_seconds"] = round(time.perf_counter() - started, 3)
            from bespoke.fsutil import atomic_write_json

            atomic_write_json(tmp / REPORT_FILE, report)
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / REPORT_FILE).is_file():
                    raise
                # another process finished the same dataset first: theirs is identical, use it
                shutil.rmtree(tmp, ignore_errors=True)
                return _from_cache(final, source, key)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return PreparedDataset(source=source, resolution=resolution, layout=geometry, dir=final, sha256=key,
                           palette=report["palette"], report=report, cached=False)


def _report(source, geometry: Layout, background: str, trigger, key, images, entries, palette, notes) -> dict:
    stats = caption_stats([image.caption for image in images])
    multi = [image.name for image in images if image.caption.extra_lines]
    bom = [image.name for image in images if image.caption.has_bom]
    warnings = caption_warnings(stats, multi, bom)
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
    colours = sorted(e["colors"] for e in entries)
    alpha_images = [e for e, image in zip(entries, images, strict=True) if image.mode in ("LA", "La", "PA", "RGBA", "RGBa")
                    or image.transparent_pixels or image.semi_transparent_pixels]
    return {
        "schema_version": SCHEMA_VERSION,
        "prepare_version": PREPARE_VERSION,
        "sha256": key,
        "source": str(source),
        "resolution": geometry.resolution,
        "layout": geometry.to_json(),
        "layout_description": geometry.describe(),
        "background": background,
        "background_policy": (
            "per image: most common opaque border colour, else white" if background == AUTO_BACKGROUND
            else f"every transparent pixel becomes {background}"
        ) + f"; alpha >= {ALPHA_THRESHOLD} keeps the pixel's colour",
        "trigger": trigger,
        "summary": {
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
        },
        "images": entries,
        "palette": [_packed_to_hex(c) for c in sorted(palette)],
        "caption_stats": stats,
        "warnings": warnings,
        "notes": notes,
    }
