"""How many pixels the model needs: shared by the pipeline and `medlens batch`'s loaders.

Kept apart from pipeline.py so that a loader can size images without importing the batcher and,
through it, the model.
"""

from __future__ import annotations

from PIL import Image

from medlens.model.preprocess import INPUT_SIDE

# The model squeezes every image to INPUT_SIDE x INPUT_SIDE, so decoding (or keeping) a shorter
# side of more than that is wasted work.
MODEL_SIDE = INPUT_SIDE


def shrink_for_model(image: Image.Image, side: int = MODEL_SIDE) -> Image.Image:
    """Box-reduce a large image by an integer factor keeping the shorter side >= `side`."""
    factor = min(image.size) // side
    return image.reduce(factor) if factor >= 2 else image
