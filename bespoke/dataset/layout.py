"""How a 24 px punk is laid out on the R px training image, and so on the samples the model learns to draw.

`stretch`: Pillow NEAREST 24 -> R (what the baseline did: at 512 px, cells of 21 or 22 px).
`pad`: integer cells of R // 24 px, centred, the margin filled with the image's border colour.
Both the dataset preparation and the grid extractor use these edges: one definition, one place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from PIL import Image

from bespoke.errors import UsageError

GRID = 24
LAYOUTS = ("stretch", "pad")
RESOLUTIONS = (512, 256, 128, 64)


@dataclass(frozen=True)
class Layout:
    """Cell geometry of one axis (both axes are the same): `edges[i]..edges[i+1]` is cell i."""

    name: str
    resolution: int
    grid: int
    edges: tuple[int, ...]  # len grid + 1

    @property
    def cell_sizes(self) -> tuple[int, ...]:
        """Width in px of every cell, in order."""
        return tuple(b - a for a, b in zip(self.edges, self.edges[1:], strict=False))

    @property
    def offset(self) -> int:
        """The margin in px before the first cell (0 for stretch)."""
        return self.edges[0]

    def describe(self) -> str:
        """One line for people, e.g. 'pad: 24->512 px, cells of 21 px, margin 4 px'."""
        sizes = sorted(set(self.cell_sizes))
        cells = "/".join(str(s) for s in sizes)
        margin = f", margin {self.offset} px" if self.offset else ""
        return f"{self.name}: {self.grid}->{self.resolution} px, cells of {cells} px{margin}"

    def to_json(self) -> dict[str, Any]:
        """The layout as JSON (the `layout` of prepare.json), with the distinct cell sizes."""
        data = asdict(self)
        data["edges"] = list(self.edges)
        data["cell_sizes"] = sorted(set(self.cell_sizes))
        return data


@lru_cache(maxsize=64)
def _stretch_edges(resolution: int, grid: int) -> tuple[int, ...]:
    # Ask Pillow itself which source column every output column takes: exact by construction.
    row = Image.frombytes("L", (grid, 1), bytes(range(grid)))
    columns = list(row.resize((resolution, 1), Image.Resampling.NEAREST).tobytes())
    edges = [0] + [x for x in range(1, resolution) if columns[x] != columns[x - 1]] + [resolution]
    return tuple(edges)


def layout_for(name: str, resolution: int, grid: int = GRID) -> Layout:
    """The cell edges for `name` ('stretch' or 'pad') at `resolution` px."""
    if name not in LAYOUTS:
        raise UsageError(f"unknown layout {name!r}: choose one of {', '.join(LAYOUTS)}")
    if resolution < grid:
        raise UsageError(f"resolution {resolution} is smaller than the {grid} px grid")
    if name == "stretch":
        edges = _stretch_edges(resolution, grid)
    else:
        cell = resolution // grid
        offset = (resolution - cell * grid) // 2
        edges = tuple(offset + i * cell for i in range(grid + 1))
    return Layout(name=name, resolution=resolution, grid=grid, edges=edges)
