"""bespoke: 24x24 pixel-art punks -> SD 1.5 LoRA (kohya-ss sd-scripts) -> clean 24 px candidates."""

__version__ = "0.1.0"
