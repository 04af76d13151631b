"""PDF extraction on the real documents in shared/data/docs (and PDFs built here for dedup)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image

from fixtures.data import image
from fixtures.processes import extraction_children
from medlens.errors import MedLensError
from medlens.ingest.pdf import PdfExtraction, PdfImage, extract_pdf_images, extract_pdf_images_limited
from medlens.settings import Settings

A4 = (595.3, 841.9)
REPORT_P1 = [
    "medical/fundus/skimage-data_microaneurysms.jpg",
    "medical/histology/torchstain-data_source_crop5.jpg",
    "non-medical/photo/skimage-data_astronaut.jpg",
    "non-medical/microscopy-nonbio/trackpy-data_horizontal-expected-result.jpg",
]


@pytest.fixture
def settings() -> Settings:
    return Settings()


def _read(docs_dir: Path, name: str) -> bytes:
    return (docs_dir / name).read_bytes()


def _diff(a: Image.Image, b: Image.Image) -> float:
    size = (64, 64)
    return float(np.abs(np.asarray(a.convert("RGB").resize(size), float) - np.asarray(b.convert("RGB").resize(size), float)).mean())


def _code(data: bytes, settings: Settings) -> MedLensError:
    with pytest.raises(MedLensError) as info:
        extract_pdf_images(data, settings)
    return info.value


def test_report_has_16_images_on_4_pages(docs_dir: Path, settings: Settings) -> None:
    result = extract_pdf_images(_read(docs_dir, "report.pdf"), settings)
    assert isinstance(result, PdfExtraction)
    assert (result.pages, len(result.images), result.truncated, result.repaired) == (4, 16, False, False)
    assert [(im.page, im.index) for im in result.images] == [(p, i) for p in range(1, 5) for i in range(1, 5)]
    assert len({im.xref for im in result.images}) == 16
    for im in result.images:
        assert isinstance(im, PdfImage)
        assert im.image.mode == "RGB" and im.image.size == (im.width, im.height)
        assert min(im.width, im.height) >= settings.min_side
        x0, y0, x1, y1 = im.bbox
        assert 0 <= x0 < x1 <= A4[0] and 0 <= y0 < y1 <= A4[1]
        with Image.open(BytesIO(im.thumbnail)) as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) == min(settings.thumbnail_side, max(im.width, im.height))


def test_report_page1_images_are_the_documented_figures(docs_dir: Path, settings: Settings) -> None:
    result = extract_pdf_images(_read(docs_dir, "report.pdf"), settings)
    page1 = [im for im in result.images if im.page == 1]
    for im, rel in zip(page1, REPORT_P1):
        with Image.open(image(rel)) as src:
            assert _diff(im.image, src) < 10, rel
    assert page1[0].bbox == [50.0, 195.0, 280.0, 425.0]
    assert (page1[0].width, page1[0].height) == (204, 204)


def test_many_images_pdf(docs_dir: Path, settings: Settings) -> None:
    result = extract_pdf_images(_read(docs_dir, "many-images.pdf"), settings)
    assert (result.pages, len(result.images), result.truncated) == (6, 48, False)
    assert [sum(im.page == p for im in result.images) for p in range(1, 7)] == [8] * 6


def test_soft_mask_composited_on_white_and_cmyk_converted(docs_dir: Path, settings: Settings) -> None:
    result = extract_pdf_images(_read(docs_dir, "alpha-cmyk.pdf"), settings)
    assert len(result.images) == 2
    masked, cmyk = result.images
    w, h = masked.image.size
    for corner in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)]:
        assert all(c >= 250 for c in masked.image.getpixel(corner)), corner
    arr = np.asarray(masked.image, float)
    assert arr[h // 2 - 10 : h // 2 + 10, w // 2 - 10 : w // 2 + 10].mean() < 230  # the figure is still there
    with Image.open(image("medical/histology/torchstain-data_source_crop5.jpg")) as src:
        centre = (slice(h // 3, 2 * h // 3), slice(w // 3, 2 * w // 3))
        assert np.abs(arr[centre] - np.asarray(src.convert("RGB").resize((w, h)), float)[centre]).mean() < 10
    with Image.open(image("non-medical/photo/skimage-data_astronaut.jpg")) as src:
        # MuPDF converts through the PDF's CMYK ICC profile (as a viewer shows it): close, not identical.
        assert _diff(cmyk.image, src) < 30
        inverted = Image.fromarray(255 - np.asarray(src.convert("RGB")))
        assert _diff(cmyk.image, inverted) > 60
        got, want = np.asarray(cmyk.image, float), np.asarray(src.convert("RGB"), float)
        for channel in range(3):
            assert np.corrcoef(got[..., channel].ravel(), want[..., channel].ravel())[0, 1] > 0.95


def test_no_images_pdf_is_empty_not_an_error(docs_dir: Path, settings: Settings) -> None:
    result = extract_pdf_images(_read(docs_dir, "no-images.pdf"), settings)
    assert (result.pages, result.images, result.truncated, result.repaired) == (2, [], False, False)


def test_encrypted_pdf(docs_dir: Path, settings: Settings) -> None:
    assert _code(_read(docs_dir, "encrypted.pdf"), settings).code == "pdf_encrypted"


def test_malformed_pdf_recovers_what_precedes_the_cut(docs_dir: Path, settings: Settings) -> None:
    """The file is report.pdf cut at 60 %: MuPDF repairs it; intact images before the cut come back,
    the one whose JPEG stream was cut (MuPDF would pad it with grey) is dropped as unreadable."""
    full = extract_pdf_images(_read(docs_dir, "report.pdf"), settings)
    result = extract_pdf_images(_read(docs_dir, "malformed.pdf"), settings)
    assert result.repaired is True
    assert len(result.images) == 9
    assert result.skipped_unreadable == 1
    by_xref = {im.xref: im for im in full.images}
    for im in result.images:
        assert im.page <= 3
        assert np.array_equal(np.asarray(im.image), np.asarray(by_xref[im.xref].image))


def test_pdf_with_nothing_recoverable_is_malformed(docs_dir: Path, settings: Settings) -> None:
    data = _read(docs_dir, "report.pdf")
    assert _code(data[: len(data) // 100], settings).code == "pdf_malformed"
    assert _code(b"%PDF-1.7\n" + bytes(range(256)) * 20, settings).code == "pdf_malformed"
    assert _code(image("non-medical/photo/skimage-data_astronaut.jpg").read_bytes(), settings).code == "pdf_malformed"
    assert _code(b"", settings).code == "pdf_malformed"


def test_pdf_size_cap(docs_dir: Path, settings: Settings) -> None:
    data = _read(docs_dir, "report.pdf")
    assert _code(data, settings.replace(max_pdf_bytes=len(data) - 1)).code == "too_large"
    assert len(extract_pdf_images(data, settings.replace(max_pdf_bytes=len(data))).images) == 16


def test_page_and_image_caps_truncate(docs_dir: Path, settings: Settings) -> None:
    data = _read(docs_dir, "report.pdf")
    pages = extract_pdf_images(data, settings.replace(max_pdf_pages=2))
    assert (pages.pages, len(pages.images), pages.truncated) == (4, 8, True)
    assert {im.page for im in pages.images} == {1, 2}
    images = extract_pdf_images(data, settings.replace(max_pdf_images=5))
    assert (len(images.images), images.truncated) == (5, True)
    exact = extract_pdf_images(data, settings.replace(max_pdf_images=16))
    assert (len(exact.images), exact.truncated) == (16, False)


def test_small_images_are_skipped_and_counted(docs_dir: Path, settings: Settings) -> None:
    result = extract_pdf_images(_read(docs_dir, "report.pdf"), settings.replace(min_side=300))
    assert result.skipped_small > 0
    assert result.skipped_small + len(result.images) == 16
    assert all(min(im.width, im.height) >= 300 for im in result.images)


def _jpeg(rel: str) -> bytes:
    with Image.open(image(rel)) as src:
        buf = BytesIO()
        src.convert("RGB").save(buf, format="JPEG")
        return buf.getvalue()


def _png(rel: str, level: int) -> bytes:
    with Image.open(image(rel)) as src:
        buf = BytesIO()
        src.convert("RGB").save(buf, format="PNG", compress_level=level)
        return buf.getvalue()


def test_duplicates_by_xref_and_by_pixels_are_reported_once(settings: Settings) -> None:
    fundus_a, fundus_b = _png(REPORT_P1[0], 9), _png(REPORT_P1[0], 1)
    assert fundus_a != fundus_b  # different streams, identical pixels
    doc = pymupdf.open()
    page = doc.new_page()
    xref = page.insert_image(pymupdf.Rect(50, 50, 250, 250), stream=fundus_a)
    page.insert_image(pymupdf.Rect(300, 50, 500, 250), xref=xref)  # same object placed twice
    page2 = doc.new_page()
    page2.insert_image(pymupdf.Rect(50, 50, 250, 250), stream=fundus_b)
    page2.insert_image(pymupdf.Rect(50, 300, 250, 500), stream=_png(REPORT_P1[2], 6))
    data = doc.tobytes()
    doc.close()
    result = extract_pdf_images(data, settings)
    assert [(im.page, im.index) for im in result.images] == [(1, 1), (2, 2)]
    assert result.images[0].bbox == [50.0, 50.0, 250.0, 250.0]  # first placement kept
    assert result.skipped_duplicate == 2
    with Image.open(image(REPORT_P1[2])) as src:
        assert _diff(result.images[1].image, src) < 2


async def test_limited_extraction_matches_in_process(docs_dir: Path, settings: Settings) -> None:
    data = _read(docs_dir, "alpha-cmyk.pdf")
    direct = extract_pdf_images(data, settings, reduce_to=settings.pdf_image_side)  # what the child hands over
    child = await extract_pdf_images_limited(data, settings)
    assert (child.pages, child.truncated, child.repaired) == (direct.pages, direct.truncated, direct.repaired)
    assert len(child.images) == len(direct.images) == 2
    for a, b in zip(child.images, direct.images):
        assert (a.page, a.index, a.bbox, a.width, a.height, a.xref, a.thumbnail) == (
            b.page, b.index, b.bbox, b.width, b.height, b.xref, b.thumbnail,
        )
        assert a.image.tobytes() == b.image.tobytes()


async def test_limited_extraction_reports_child_errors(docs_dir: Path, settings: Settings) -> None:
    with pytest.raises(MedLensError) as info:
        await extract_pdf_images_limited(_read(docs_dir, "encrypted.pdf"), settings)
    assert info.value.code == "pdf_encrypted"


async def test_time_limit_kills_the_extraction(docs_dir: Path, settings: Settings) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(MedLensError) as info:
        await extract_pdf_images_limited(_read(docs_dir, "many-images.pdf"), settings.replace(pdf_time_limit_s=0.05))
    assert info.value.code == "pdf_timeout"
    assert loop.time() - start < 3
    assert extraction_children() == []
