"""Pixel art from samples: grid finding, cell colours, palette, downscale methods, metrics. Knows nothing of runs."""
