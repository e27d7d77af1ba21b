"""The source folder: `<stem>.png` + `<stem>.txt` pairs, listed, read, decoded and validated.

Listing and reading the bytes is cheap and is all a cache hit needs; decoding forces a complete decode so
truncated files are caught. Every problem is collected so the user sees them all at once.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bespoke.dataset.captions import Caption, CaptionProblem, parse_caption
from bespoke.dataset.layout import GRID
from bespoke.dataset.options import parse_trigger
from bespoke.errors import DatasetError
from bespoke.fsutil import sha256_bytes

SUPPORTED_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa")
OTHER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic")


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
        """sha256 of the image file's bytes."""
        return sha256_bytes(self.image_bytes)

    @property
    def caption_sha256(self) -> str:
        """sha256 of the caption file's bytes."""
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
        """Pixels with alpha 0."""
        return int((self.rgba[..., 3] == 0).sum())

    @property
    def semi_transparent_pixels(self) -> int:
        """Pixels with alpha strictly between 0 and 255."""
        alpha = self.rgba[..., 3]
        return int(((alpha > 0) & (alpha < 255)).sum())


class SourceProblemsError(DatasetError):
    """A source folder with problems: the message is the first (in file order), `.problems` lists them all."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems: list[str] = problems or [message]


class SourceProblems:
    """Collects every problem of a source folder; `raise_if_any` raises one SourceProblemsError."""

    def __init__(self, source: Path):
        self.source = source
        self.items: list[tuple[str, str]] = []

    def add(self, path: Path, message: str) -> None:
        """Record `message` about `path` (a file in the source folder)."""
        self.items.append((Path(path).name, f"{path}: {message}"))

    def raise_if_any(self) -> None:
        """Raise SourceProblemsError listing every recorded problem, if there is one."""
        if not self.items:
            return
        lines = [line for _name, line in sorted(self.items)]  # in file order, whatever check found them
        first = lines[0]
        more = len(lines) - 1
        message = first if not more else f"{first} (+{more} more problem{'s' if more > 1 else ''} in {self.source})"
        raise SourceProblemsError(message, lines)


# ---------------------------------------------------------------------------------------------- listing


def _list_folder(source: Path) -> list[Path]:
    """The entries of the source folder, sorted by name; a missing or unreadable folder is a DatasetError."""
    if not source.exists():
        raise DatasetError(f"{source}: dataset folder not found; pass a folder of 24x24 PNG images with .txt captions")
    if not source.is_dir():
        raise DatasetError(f"{source}: is a file, not a folder; pass the folder that holds the PNG + .txt pairs")
    try:
        return sorted(source.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise DatasetError(f"{source}: cannot be listed ({exc.strerror}); check its permissions") from None


def _sort_entries(listing: list[Path], problems: SourceProblems) -> tuple[list[Path], dict[str, Path], list[str]]:
    """Split a listing into PNG images, captions by file name, and notes about what is ignored."""
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
    return images, captions, notes


def _case_clashes(images: list[Path]) -> dict[str, list[Path]]:
    """Images grouped by case-folded stem: a group of two or more would collide in the prepared folder."""
    by_key: dict[str, list[Path]] = {}
    for path in images:
        by_key.setdefault(path.stem.casefold(), []).append(path)
    return by_key


def _caption_for(path: Path, captions: dict[str, Path], problems: SourceProblems) -> Path | None:
    """The caption file of image `path`, or None (recorded as a problem, with a hint for a case mismatch)."""
    caption_name = f"{path.stem}.txt"
    caption_path = captions.get(caption_name)
    if caption_path is None:
        near = [n for n in captions if n.casefold() == caption_name.casefold()]
        hint = f" (found {near[0]}: rename it to {caption_name})" if near else ""
        problems.add(path, f"missing caption {caption_name}{hint}; write the caption for this image in it")
    return caption_path


def _read_pairs(images: list[Path], captions: dict[str, Path],
                problems: SourceProblems) -> tuple[list[SourceFile], set[str]]:
    """Read every image with its caption; returns the files and the caption names that were used."""
    by_key = _case_clashes(images)
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
        caption_path = _caption_for(path, captions, problems)
        if caption_path is None:
            continue
        used_captions.add(caption_path.name)
        try:
            image_bytes = path.read_bytes()
            caption_bytes = caption_path.read_bytes()
        except OSError as exc:
            problems.add(path, f"cannot be read ({exc.strerror}); check its permissions")
            continue
        files.append(SourceFile(path.stem, path, caption_path, image_bytes, caption_bytes))
    return files, used_captions


def list_sources(source: Path, problems: SourceProblems) -> tuple[list[SourceFile], list[str]]:
    """Find `<stem>.png` + `<stem>.txt` pairs (non-recursive) and read their bytes. Returns (files, notes)."""
    listing = _list_folder(source)
    images, captions, notes = _sort_entries(listing, problems)
    if not images:
        what = "is empty" if not listing else "has no .png images"
        raise DatasetError(f"{source}: {what}; put 24x24 PNG images with <name>.txt captions in it")
    files, used_captions = _read_pairs(images, captions, problems)
    orphans = sorted(set(captions) - used_captions - {f"{p.stem}.txt" for p in images})
    for name in orphans:
        notes.append(f"{name}: caption without an image, ignored")
    return files, notes


# ---------------------------------------------------------------------------------------------- decoding


def _image_problem(img: Image.Image) -> str | None:
    """What makes an opened source unusable (checked before its pixels are decoded), or None."""
    if img.format != "PNG":
        return f"is a {img.format} file named .png; save it as a real PNG"
    if img.size != (GRID, GRID):
        width, height = img.size
        factor = f" ({width // GRID}x the grid: downscale with NEAREST)" if width == height and width % GRID == 0 else ""
        return f"is {width}x{height}, bespoke expects {GRID}x{GRID} sources{factor}; save the 24x24 original"
    if img.mode not in SUPPORTED_MODES:
        return f"has pixel mode {img.mode} (e.g. 16-bit); save it as an 8-bit RGB, RGBA or palette PNG"
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        return f"is an animated PNG ({frames} frames); save a single 24x24 frame"
    return None


def _decode_pixels(file: SourceFile, problems: SourceProblems) -> tuple[str, np.ndarray] | None:
    """(original mode, RGBA pixels) of a source image, or None when it is unusable (recorded as a problem)."""
    try:
        with Image.open(io.BytesIO(file.image_bytes)) as img:
            problem = _image_problem(img)
            if problem is not None:
                problems.add(file.image_path, problem)
                return None
            mode = img.mode
            img.load()
            return mode, np.array(img.convert("RGBA"), dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        problems.add(file.image_path, f"is far too large for a 24x24 source ({exc}); save the 24x24 original")
    except UnidentifiedImageError:
        problems.add(file.image_path, "is not an image (Pillow cannot read it); replace it with the 24x24 PNG")
    except Exception as exc:  # truncated data, bad CRC, zlib errors...: Pillow raises many types
        detail = str(exc) or type(exc).__name__
        problems.add(file.image_path, f"is damaged or truncated ({detail}); re-export the PNG")
    return None


def decode_source(file: SourceFile, problems: SourceProblems, trigger: str | None) -> SourceImage | None:
    """Decode and check one source fully; None when its image or caption is unusable (recorded as problems)."""
    try:
        caption: Caption | None = parse_caption(file.caption_bytes, trigger)
    except CaptionProblem as exc:
        problems.add(file.caption_path, str(exc))
        caption = None
    decoded = _decode_pixels(file, problems)
    if decoded is None or caption is None:
        return None
    mode, rgba = decoded
    return SourceImage(
        name=file.name, image_path=file.image_path, caption_path=file.caption_path, mode=mode, size=(GRID, GRID),
        image_sha256=file.image_sha256, caption_sha256=file.caption_sha256, caption=caption, rgba=rgba,
    )


def decode_sources(files: list[SourceFile], problems: SourceProblems, trigger: str | None,
                   advance: Callable[[], object] | None = None) -> list[SourceImage]:
    """Decode every file (see decode_source), calling `advance()` after each; returns the usable ones."""
    out = []
    for file in files:
        image = decode_source(file, problems, trigger)
        if image is not None:
            out.append(image)
        if advance:
            advance()
    return out


def scan_sources(source: Path, trigger: str | None = None) -> list[SourceImage]:
    """Validate a source folder completely without writing anything.

    Raises a DatasetError (SourceProblemsError) whose message is the first problem (in file order) and whose
    `.problems` lists all.
    """
    source = Path(source).expanduser()
    problems = SourceProblems(source)
    files, _notes = list_sources(source, problems)
    images = decode_sources(files, problems, parse_trigger(trigger))
    problems.raise_if_any()
    return images
