"""Source punks -> training images: validation, captions, cell layout, synthetic punks.

`prepare` is the entry point: `sources` lists and validates a folder, `render` builds each exact training
image, `cache` keys and places the result, `report` writes `prepare.json`. `options`, `colours`, `captions`
and `layout` are shared by them; `synthetic` makes seeded punks for the demo, tests and benchmarks.
"""
