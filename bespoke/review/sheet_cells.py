"""One contact-sheet cell: the sample | its `grid` candidate | the shown candidate, side by side and labelled.

All three panels are drawn at the same size (96 px: 4 px per 24 px cell), so a cell of the sample lines up
with the same cell of each candidate. Candidates and small samples are enlarged with NEAREST (pixels stay
square, nothing smoothed); a large sample is shrunk with BOX. When the shown candidate is `grid` the cell has
two panels and the grid panel says "shown"; a panel whose pixels are the same as the panel to its left says
so instead of showing the same picture twice (a 24 px sample is its own grid; the palette snap often changes
nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont

from bespoke.review.records import Sample

SCALE = 4  # candidate magnification (24 px -> 96 px)
CAND_PX = 24 * SCALE
THUMB = CAND_PX  # the sample at the candidates' size: cells line up across the panels
PAD = 6
GAP = 4
PANEL_LABEL_H = 28  # two lines: what the panel is, and "shown" on the candidate the review shows
TEXT_H = 34
CELL_H = PAD + PANEL_LABEL_H + THUMB + TEXT_H + PAD
GRID = "grid"

INK = (30, 32, 36)
MUTED = (110, 114, 120)
CLEAN = (20, 130, 60)
MISSING = (200, 200, 204)
SAME = (232, 233, 236)
SHOWN = (226, 140, 0)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Images = dict[str, Image.Image | None]


@dataclass(frozen=True)
class Fonts:
    title: Font
    label: Font
    text: Font
    small: Font

    @classmethod
    def load(cls) -> Fonts:
        return cls(_font(16), _font(15), _font(13), _font(11))


def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font, one size
        return ImageFont.load_default()


def panel_methods(shown: str | None) -> tuple[str, ...]:
    """The candidate panels beside the sample: grid, then the shown method unless it is grid itself."""
    return (GRID,) if shown in (None, GRID) else (GRID, shown)


def cell_width(shown: str | None) -> int:
    """The width of one cell: the sample and its candidate panels."""
    return PAD + THUMB + len(panel_methods(shown)) * (GAP + CAND_PX) + PAD


def fit(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> str:
    """`text`, or as many whole words of it as fit with "…" (a cut word reads as another word)."""
    if draw.textlength(text, font=font) <= width:
        return text
    words = text.split(" ")
    while len(words) > 1 and draw.textlength(" ".join(words) + "…", font=font) > width:
        words.pop()
    text = " ".join(words).rstrip(",;:")
    while text and draw.textlength(text + "…", font=font) > width:  # one long word: cut it after all
        text = text[:-1]
    return text + "…"


def load_panel(path: Path, size: tuple[int, int]) -> Image.Image | None:
    """The image as RGB at `size`: enlarged with NEAREST by whole pixels when smaller (a 24 px picture or
    candidate), shrunk with BOX to fit when larger (a 512 px sample); None when unreadable."""
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, ValueError):
        return None
    if rgb.width <= size[0] and rgb.height <= size[1]:
        factor = max(1, min(size[0] // rgb.width, size[1] // rgb.height))
        return rgb.resize((rgb.width * factor, rgb.height * factor), Image.Resampling.NEAREST)
    rgb.thumbnail(size, Image.Resampling.BOX, reducing_gap=2.0)
    return rgb


def same_pixels(a: Image.Image | None, b: Image.Image | None) -> bool:
    """Whether two loaded panels show exactly the same picture."""
    return a is not None and b is not None and a.size == b.size and ImageChops.difference(a, b).getbbox() is None


def draw_cell(sheet: Image.Image, sample: Sample, at: tuple[int, int], shown: str | None,
              view: tuple[Images, Fonts]) -> None:
    """One cell with its top-left at `at`: the sample, then each candidate panel, each labelled above and
    with its numbers below; the candidate the review shows is marked "shown"."""
    images, fonts = view
    draw = ImageDraw.Draw(sheet)
    x, y = at
    top = y + PAD + PANEL_LABEL_H
    draw.text((x + PAD, y + PAD), "sample", fill=MUTED, font=fonts.small)
    left = images.get(sample.file)
    _paste(sheet, draw, left, (x + PAD, top), fonts, "unreadable")
    ty = top + THUMB + 3
    draw.text((x + PAD, ty), fit(draw, f"{sample.colors_nearest} colours", fonts.text, THUMB), fill=INK,
              font=fonts.text)
    # "top10 2%" read as "top 102%": say what the share is of, with a space before %
    draw.text((x + PAD, ty + 16), fit(draw, f"top-10 share {100 * sample.top10_coverage:.0f} %", fonts.small, THUMB),
              fill=MUTED, font=fonts.small)
    left_name = "sample"
    for index, method in enumerate(panel_methods(shown)):
        cx = x + PAD + THUMB + GAP + index * (GAP + CAND_PX)
        draw.text((cx, y + PAD), fit(draw, method, fonts.small, CAND_PX), fill=INK, font=fonts.small)
        if method == shown:
            draw.text((cx, y + PAD + 13), "shown", fill=SHOWN, font=fonts.small)
        candidate = sample.candidates.get(method)
        image = images.get(candidate.file) if candidate else None
        if same_pixels(image, left):
            draw.rectangle((cx, top, cx + CAND_PX - 1, top + CAND_PX - 1), fill=SAME)
            draw.text((cx + 6, top + 34), "same pixels", fill=INK, font=fonts.small)
            draw.text((cx + 6, top + 50), f"as {left_name}", fill=INK, font=fonts.small)
        else:
            _paste(sheet, draw, image, (cx, top), fonts, "not processed" if candidate is None else "unreadable")
        if candidate is not None:
            draw.text((cx, ty), f"{candidate.colors} colours", fill=CLEAN if candidate.clean else INK,
                      font=fonts.text)
            note = "clean" if candidate.clean else f"grid err {candidate.grid_error:.0f}"
            draw.text((cx, ty + 16), note, fill=CLEAN if candidate.clean else MUTED, font=fonts.small)
        left, left_name = image, method


def _paste(sheet: Image.Image, draw: ImageDraw.ImageDraw, image: Image.Image | None, at: tuple[int, int],
           fonts: Fonts, missing: str) -> None:
    """A panel's picture centred in its square, or a grey square saying why there is none."""
    x, y = at
    if image is None:
        draw.rectangle((x, y, x + THUMB - 1, y + THUMB - 1), fill=MISSING)
        draw.text((x + 6, y + 40), missing, fill=INK, font=fonts.small)
    else:
        sheet.paste(image, (x + (THUMB - image.width) // 2, y + (THUMB - image.height) // 2))
