"""The candidates' PNGs bespoke encodes itself (review.candidates.png_bytes) read back as the same pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bespoke.review.candidates import png_bytes


@pytest.mark.parametrize("shape", [(24, 24), (1, 1), (3, 7), (96, 40)])
def test_a_candidate_png_reads_back_as_its_pixels_in_pillow(shape):
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    with Image.open(io.BytesIO(png_bytes(pixels))) as img:
        img.load()
        assert (img.format, img.mode, img.size) == ("PNG", "RGB", (shape[1], shape[0]))
        assert np.array_equal(np.asarray(img), pixels)


def test_a_flat_candidate_png_is_small():
    assert len(png_bytes(np.full((24, 24, 3), 200, dtype=np.uint8))) < 120
