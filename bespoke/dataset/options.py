"""The options of `prepare` as the user spells them -> normalised values (a UsageError says what to fix)."""

from __future__ import annotations

from PIL import ImageColor

from bespoke.dataset.captions import check_trigger
from bespoke.dataset.layout import RESOLUTIONS
from bespoke.errors import UsageError, did_you_mean

AUTO_BACKGROUND = "auto"
MIN_RESOLUTION, MAX_RESOLUTION = 64, 2048


def parse_background(spec: str | None) -> str:
    """Normalise --background: 'auto' or '#rrggbb' (accepts #rgb, #rrggbb and CSS colour names)."""
    if spec is None or spec.strip().lower() == AUTO_BACKGROUND:
        return AUTO_BACKGROUND
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


def parse_trigger(trigger: str | None) -> str | None:
    """Normalise --trigger (stripped, or None for no trigger); an empty or multi-line phrase is a UsageError."""
    try:
        return check_trigger(trigger)
    except ValueError as exc:
        raise UsageError(f"--trigger: {exc}") from None
