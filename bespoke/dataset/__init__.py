"""Source punks -> training images: validation, captions, cell layout, synthetic punks."""
