"""decode_image on real images from shared/data, re-encoded variants of them, and hostile bytes."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from fixtures.data import SHARED_DATA, image
from fixtures.site import SVG, png_with_header
from medlens.errors import MedLensError
from medlens.ingest.decode import DecodedImage, decode_image, draft_size, sniff_format
from medlens.settings import Settings

PHOTO = "non-medical/photo/skimage-data_astronaut.jpg"  # 512x512 colour JPEG
WIDE = "non-medical/satellite/xplanet-images_earth.jpg"
ICON = "non-medical/icon/tango-icons_32x32_actions_go-bottom.png.png"  # 32x32 RGBA, transparent corners


@pytest.fixture
def settings() -> Settings:
    return Settings()


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _diff(a: Image.Image, b: Image.Image) -> float:
    size = (64, 64)
    return float(np.abs(np.asarray(a.resize(size), float) - np.asarray(b.convert("RGB").resize(size), float)).mean())


def _code(data: bytes, settings: Settings) -> str:
    with pytest.raises(MedLensError) as info:
        decode_image(data, settings)
    return info.value.code


def test_real_jpeg_is_drafted_to_target_but_reports_original_size(settings: Settings) -> None:
    data = image(PHOTO).read_bytes()
    full = decode_image(data, settings, target_side=0)
    small = decode_image(data, settings, target_side=256)
    assert isinstance(small, DecodedImage)
    assert (small.width, small.height, small.format) == (512, 512, "JPEG")
    assert full.image.size == (512, 512)
    assert small.image.size == (256, 256)  # DCT scaling 1/2: shorter side still >= 256
    assert small.image.mode == full.image.mode == "RGB"
    assert _diff(small.image, full.image) < 4


def test_draft_keeps_shorter_side_at_least_target(settings: Settings) -> None:
    decoded = decode_image(image(WIDE).read_bytes(), settings, target_side=100)
    with Image.open(image(WIDE)) as original:
        assert (decoded.width, decoded.height) == original.size
    assert min(decoded.image.size) >= 100
    assert decoded.image.size[0] < decoded.width
    assert draft_size(1000, 500, 256) == (512, 256)
    assert draft_size(200, 500, 256) is None
    assert draft_size(4000, 3000, 0) is None


def test_every_real_image_in_a_sample_decodes(settings: Settings) -> None:
    paths = sorted((SHARED_DATA / "images").rglob("*.*"))[::20]
    assert len(paths) >= 25
    for path in paths:
        decoded = decode_image(path.read_bytes(), settings)
        with Image.open(path) as original:
            assert (decoded.width, decoded.height) == original.size, path
        assert decoded.image.mode == "RGB"
        assert decoded.format in {"JPEG", "PNG"}


def test_png_transparency_goes_onto_white(settings: Settings) -> None:
    data = image(ICON).read_bytes()
    with Image.open(BytesIO(data)) as src:
        assert src.mode == "RGBA" and src.getpixel((0, 0))[3] == 0
    decoded = decode_image(data, settings)
    assert decoded.format == "PNG" and decoded.image.size == (32, 32)
    assert decoded.image.getpixel((0, 0)) == (255, 255, 255)
    assert decoded.image.getpixel((16, 16)) != (255, 255, 255)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP", "TIFF", "PNG"])
def test_allowed_formats_from_a_real_photo(fmt: str, settings: Settings) -> None:
    with Image.open(image(PHOTO)) as src:
        original = src.convert("RGB")
    data = _encode(original.convert("P") if fmt == "GIF" else original, fmt)
    decoded = decode_image(data, settings)
    assert sniff_format(data) == fmt
    assert (decoded.format, decoded.width, decoded.height) == (fmt, 512, 512)
    assert decoded.image.mode == "RGB"
    assert _diff(decoded.image, original) < 12


def test_gif_first_frame_and_palette_transparency(settings: Settings) -> None:
    frames = [Image.new("P", (40, 30), 1), Image.new("P", (40, 30), 2)]
    for frame in frames:
        frame.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], transparency=0)
    decoded = decode_image(data, settings)
    assert decoded.image.getpixel((5, 5)) == (255, 0, 0)
    transparent = Image.new("P", (40, 30), 0)
    transparent.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    decoded = decode_image(_encode(transparent, "GIF", transparency=0), settings)
    assert decoded.image.getpixel((5, 5)) == (255, 255, 255)


def test_exif_orientation_is_applied(settings: Settings) -> None:
    with Image.open(image(WIDE)) as src:
        original = src.convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    decoded = decode_image(_encode(original, "JPEG", exif=exif.tobytes()), settings, target_side=0)
    assert (decoded.width, decoded.height) == (original.height, original.width)
    assert decoded.image.size == (original.height, original.width)
    assert _diff(decoded.image, original.transpose(Image.Transpose.ROTATE_270)) < 8


def test_cmyk_jpeg_and_16bit_png_become_sensible_rgb(settings: Settings) -> None:
    with Image.open(image(PHOTO)) as src:
        original = src.convert("RGB")
    cmyk = decode_image(_encode(original.convert("CMYK"), "JPEG", quality=95), settings, target_side=0)
    assert _diff(cmyk.image, original) < 12
    gray16 = Image.fromarray((np.asarray(original.convert("L"), np.uint16) * 257).astype(np.uint16))
    data = _encode(gray16, "PNG")
    with Image.open(BytesIO(data)) as check:
        assert check.mode.startswith("I")
    decoded = decode_image(data, settings)
    assert decoded.image.mode == "RGB"
    assert _diff(decoded.image, original.convert("L")) < 20


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "not_an_image"),
        (SVG, "unsupported_format"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "unsupported_format"),
        ((SHARED_DATA / "docs" / "page-basic.html").read_bytes(), "not_an_image"),
        ((SHARED_DATA / "docs" / "no-images.pdf").read_bytes(), "not_an_image"),
        (b"just a line of text\n", "not_an_image"),
        (b'{"not": "an image"}', "not_an_image"),
        (bytes(range(256)) * 4, "not_an_image"),
        (b"\x00\x00\x00\x1cftypavif" + b"\x00" * 64, "decode_failed"),  # AVIF is decoded now: this one is broken
        (b"8BPS" + b"\x00" * 64, "unsupported_format"),
        (b"\x00\x00\x01\x00\x01\x00" + b"\x00" * 64, "unsupported_format"),
    ],
    ids=["empty", "svg-xml", "svg", "html", "pdf", "text", "json", "binary", "broken-avif", "psd", "ico"],
)
def test_non_rasters_get_their_code(data: bytes, code: str, settings: Settings) -> None:
    assert _code(data, settings) == code


def test_truncated_and_corrupt_images_fail_to_decode(settings: Settings) -> None:
    jpeg = image(PHOTO).read_bytes()
    assert _code(jpeg[: len(jpeg) // 2], settings) == "decode_failed"
    assert _code(jpeg[:300], settings) == "decode_failed"
    png = image(ICON).read_bytes()
    assert _code(png[: len(png) - 40], settings) == "decode_failed"
    assert _code(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, settings) == "decode_failed"
    assert _code(b"GIF89a" + b"\x00" * 3, settings) == "decode_failed"


@pytest.mark.parametrize("side", [100_000, 10_000], ids=["beyond-pil-limit", "between-limits"])
def test_decompression_bombs_refused_from_header(side: int, settings: Settings) -> None:
    data = png_with_header(side, side)
    assert len(data) < 2000
    with pytest.raises(MedLensError) as info:
        decode_image(data, settings)
    assert info.value.code == "too_many_pixels"
    assert str(side) in info.value.message


def test_max_pixels_setting_is_the_limit(settings: Settings) -> None:
    data = image(ICON).read_bytes()
    assert decode_image(data, settings.replace(max_pixels=1024)).width == 32
    assert _code(data, settings.replace(max_pixels=1023)) == "too_many_pixels"


def test_too_small_is_its_own_code(settings: Settings) -> None:
    data = image(ICON).read_bytes()
    assert decode_image(data, settings.replace(min_side=32)).width == 32
    assert _code(data, settings.replace(min_side=33)) == "too_small"
    one_px_gif = _encode(Image.new("P", (1, 1)), "GIF")
    assert _code(one_px_gif, settings) == "too_small"


def test_sniffing_ignores_names_and_headers() -> None:
    assert sniff_format(image(PHOTO).read_bytes()) == "JPEG"
    assert sniff_format(image(ICON).read_bytes()) == "PNG"
    assert sniff_format(SVG) == "SVG"
    assert sniff_format(b"\xef\xbb\xbf<!DOCTYPE html><p>x") == "HTML"
    assert sniff_format(b"%PDF-1.7\n") == "PDF"
    assert sniff_format(bytes(range(256))) is None
