"""The synthetic punks are pinned: the demo, the benchmarks and the golden numbers of other tests depend on them.

A refactor of `make_punk` that reorders one random draw or one paint step changes these digests. If a change
is meant, say so in the commit and update the digests (and whatever else was computed from the punks).
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from bespoke.dataset.synthetic import count_colors, make_punk, write_dataset

# sha256 over seeds 0..199 of "seed\0name\0caption\0" + the 24x24x3 uint8 pixel bytes
PUNKS_0_TO_199 = "7ebefd6e9e8236002897f702847fcb6c239821a6301b86eedef779eaccf5e0a8"
# sha256 over write_dataset(count=12, seed=3), files sorted by name: "name\0" + caption bytes or decoded RGB
# pixels (decoded, not the PNG bytes, so a zlib or Pillow upgrade does not count as a change)
WRITE_12_SEED_3 = "4e7c11ee9ccfea5c88de9835abd56e86130e77adc88c40ab9518a2d5dd4627c4"


def test_make_punk_is_pinned_for_200_seeds():
    digest = hashlib.sha256()
    for seed in range(200):
        punk = make_punk(seed)
        assert punk.pixels.shape == (24, 24, 3) and punk.pixels.dtype == np.uint8
        digest.update(f"{seed}\0{punk.name}\0{punk.caption}\0".encode())
        digest.update(punk.pixels.tobytes())
    assert digest.hexdigest() == PUNKS_0_TO_199


def test_first_punk_reads_as_pinned():
    punk = make_punk(0)
    assert punk.name == "lady_000_synthetic"
    assert punk.caption == (
        "pixel art, 24x24, portrait of bespoke punk lady, red hair, blue eyes, pale green skin tone, "
        "bright green background, wearing blue jacket, wearing golden earrings, freckles"
    )
    assert [count_colors(make_punk(seed).pixels) for seed in range(5)] == [25, 23, 22, 22, 24]


def test_write_dataset_is_pinned(tmp_path):
    folder = tmp_path / "punks"
    paths = write_dataset(folder, count=12, seed=3)
    assert [p.name for p in paths][:2] == ["lady_30000_synthetic.png", "lady_30001_synthetic.png"]
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + b"\0")
        if path.suffix == ".png":
            with Image.open(path) as img:
                assert img.mode == "RGB" and img.size == (24, 24)
                digest.update(np.asarray(img).tobytes())
        else:
            digest.update(path.read_bytes())
    assert digest.hexdigest() == WRITE_12_SEED_3
