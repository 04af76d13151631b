"""Training-time augmentation, seeded per (image, view) so features can be cached and runs repeat.

The original design's resize/crop, flip, small rotation and colour jitter, plus grayscale and JPEG
re-compression: web images are often desaturated, re-encoded thumbnails, and a classifier that
learned "colour = photo" or "clean pixels = DICOM export" fails on them.
"""

from __future__ import annotations

import hashlib
import io
import json
import random

from PIL import Image, ImageEnhance, ImageFilter

from medlens.image_modes import to_rgb

AUGMENT_SPEC = {
    "version": 2,
    "crop_area": [0.55, 1.0],
    "flip_p": 0.5,
    "rotate_deg": 12,
    "brightness": 0.3,
    "contrast": 0.3,
    "saturation": 0.4,
    "grayscale_p": 0.25,
    "jpeg_p": 0.5,
    "jpeg_quality": [25, 90],
    "downscale_p": 0.25,
    "downscale_side": [64, 160],
    "blur_p": 0.1,
}


def augment_key() -> str:
    return hashlib.sha256(json.dumps(AUGMENT_SPEC, sort_keys=True).encode()).hexdigest()[:12]


def view_rng(image_sha256: str, view: int, seed: int) -> random.Random:
    return random.Random(f"{seed}:{image_sha256}:{view}")


def augment(img: Image.Image, rng: random.Random) -> Image.Image:
    """One random view of `img` (RGB out)."""
    s = AUGMENT_SPEC
    img = to_rgb(img)
    w, h = img.size
    area = rng.uniform(*s["crop_area"])
    aspect = rng.uniform(3 / 4, 4 / 3)
    cw = max(1, min(w, round((area * w * h * aspect) ** 0.5)))
    ch = max(1, min(h, round((area * w * h / aspect) ** 0.5)))
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < s["flip_p"]:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = rng.uniform(-s["rotate_deg"], s["rotate_deg"])
    corner = img.getpixel((0, 0))
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=corner)
    img = ImageEnhance.Brightness(img).enhance(1 + rng.uniform(-s["brightness"], s["brightness"]))
    img = ImageEnhance.Contrast(img).enhance(1 + rng.uniform(-s["contrast"], s["contrast"]))
    img = ImageEnhance.Color(img).enhance(1 + rng.uniform(-s["saturation"], s["saturation"]))
    if rng.random() < s["grayscale_p"]:
        img = img.convert("L").convert("RGB")
    if rng.random() < s["blur_p"]:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    if rng.random() < s["downscale_p"]:
        side = rng.randint(*s["downscale_side"])
        scale = side / max(img.size)
        if scale < 1:
            small = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR)
            img = small.resize(img.size, Image.Resampling.BILINEAR)
    if rng.random() < s["jpeg_p"]:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=rng.randint(*s["jpeg_quality"]))
        buf.seek(0)
        img = Image.open(buf)
        img.load()
    return img
