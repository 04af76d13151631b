"""Image URLs from the real test pages, parsing edge cases, and fetch_page against the local site."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.data import SHARED_DATA
from fixtures.site import SAMPLE_JPEG, TestSite
from medlens.errors import MedLensError
from medlens.ingest.decode import decode_image
from medlens.ingest.fetch import Fetcher
from medlens.ingest.page import PageScan, extract_image_urls, fetch_page, largest_srcset_candidate
from medlens.settings import Settings

BASE = "https://example.org/docs/"
MODERN_EXPECTED = [
    "images/medical/mri/nibabel-testdata_anatomical_cor004.jpg",  # og:image
    "images/non-medical/bw-photo/skimage-data_camera.jpg",  # <style> background-image
    "images/medical/ultrasound/pydicom-data_US1_UNCR.jpg",  # <style> background shorthand
    "images/non-medical/microscopy-nonbio/trackpy-data_horizontal-expected-result.jpg",  # src
    "images/medical/xray/pydicom-data_RG3_J2KR.jpg",  # srcset 2x (largest)
    "images/non-medical/astronomy/skimage-data_hubble_crop2.jpg",  # src
    "images/medical/cryosection/itk-examples_VisibleWomanEyeSlice.jpg",  # srcset 640w (largest)
    "images/medical/histology/skimage-data_ihc.jpg",  # data-src (1x1 GIF placeholder dropped)
    "images/non-medical/photo/kde-plasma-wallpapers_ColorfulCups.jpg",  # src == data-srcset, once
    "images/medical/ct/pydicom-data_693_UNCR_crop0.jpg",  # <picture><source>
    "images/non-medical/artwork/debian-desktop-base_lines-theme_login_sddm-preview-nologo.jpg.jpg",
    "images/medical/fundus/skimage-data_retina_center.jpg",  # <picture> fallback <img>
]


def _local() -> Settings:
    return Settings(allow_private=True, total_timeout_s=10.0)


def test_basic_page_lists_its_12_images(docs_dir: Path) -> None:
    urls = extract_image_urls((docs_dir / "page-basic.html").read_bytes(), BASE + "page-basic.html")
    assert len(urls) == 12
    assert urls[0] == "https://example.org/images/non-medical/bw-photo/skimage-data_camera.jpg"
    for url in urls:
        rel = url.removeprefix("https://example.org/")
        assert (SHARED_DATA / rel).is_file(), rel


def test_modern_page_finds_every_kind_of_reference(docs_dir: Path) -> None:
    urls = extract_image_urls((docs_dir / "page-modern.html").read_text(encoding="utf-8"), BASE + "page-modern.html")
    assert urls[:-1] == ["https://example.org/" + rel for rel in MODERN_EXPECTED]
    assert urls[-1].startswith("data:image/jpeg;base64,/9j/")
    assert not any(u.startswith("data:image/gif") for u in urls)
    assert all((SHARED_DATA / u.removeprefix("https://example.org/")).is_file() for u in urls[:-1])


def test_base_href_metas_links_inline_styles_and_filtering() -> None:
    html = """<html><head><base href="https://cdn.example.net/assets/">
    <meta name="og:image" content="og.png"><meta name="twitter:image" content="/tw.png">
    <link rel="image_src" href="linked.png"><link rel="stylesheet" href="style.css">
    </head><body>
    <div style="background-image: url(bg.png); color: red"></div>
    <div style="background: #fff url( 'bg2.png' ) no-repeat"></div>
    <div style="mask: url(not-a-background.png)"></div>
    <img src="a.png#frag"><img src="a.png"><img src="javascript:alert(1)"><img src="">
    <img src="//other.example.com/b.png"><img src="about:blank">
    <img srcset="data:image/png;base64,iVBO,RKGgo= 1x, big.png 2x">
    <source srcset="orphan.png">
    </body></html>"""
    assert extract_image_urls(html, "https://example.org/page") == [
        "https://cdn.example.net/assets/og.png",
        "https://cdn.example.net/tw.png",
        "https://cdn.example.net/assets/linked.png",
        "https://cdn.example.net/assets/bg.png",
        "https://cdn.example.net/assets/bg2.png",
        "https://cdn.example.net/assets/a.png",
        "https://other.example.com/b.png",
        "https://cdn.example.net/assets/big.png",
    ]


@pytest.mark.parametrize(
    ("srcset", "best"),
    [
        ("a.jpg 320w, b.jpg 640w, c.jpg 480w", "b.jpg"),
        ("a.jpg 1x, b.jpg 3x, c.jpg 2x", "b.jpg"),
        ("a.jpg, b.jpg 1.5x", "b.jpg"),
        ("only.jpg", "only.jpg"),
        ("a,b.jpg 100w,c.jpg 50w", "a,b.jpg"),
        ("data:image/png;base64,AAA,BBB 2x, small.png 1x", "data:image/png;base64,AAA,BBB"),
        ("", None),
    ],
)
def test_largest_srcset_candidate(srcset: str, best: str | None) -> None:
    assert largest_srcset_candidate(srcset) == best


async def test_fetch_page_and_every_image_on_it(test_site: TestSite) -> None:
    settings = _local()
    async with Fetcher(settings) as fetcher:
        scan = await fetch_page(fetcher, test_site.url("/docs/page-basic.html"), settings)
        assert isinstance(scan, PageScan)
        assert (scan.page_url, len(scan.urls), scan.truncated) == (test_site.url("/docs/page-basic.html"), 12, False)
        for url in scan.urls:
            fetched = await fetcher.fetch(url, referer=scan.page_url)
            decoded = decode_image(fetched.data, settings)
            assert decoded.format == "JPEG" and decoded.image.mode == "RGB"


async def test_fetch_page_follows_redirects_and_resolves_against_the_final_url(test_site: TestSite) -> None:
    settings = _local()
    final = test_site.other_url("/docs/page-modern.html")
    async with Fetcher(settings) as fetcher:
        scan = await fetch_page(fetcher, f"{test_site.url('/special/redirect-to')}?to={final}", settings)
    assert scan.page_url == final
    assert scan.urls[0] == test_site.other_url("/images/" + MODERN_EXPECTED[0].removeprefix("images/"))
    assert len(scan.urls) == 13


async def test_fetch_page_caps(test_site: TestSite) -> None:
    settings = _local().replace(max_page_images=5)
    async with Fetcher(settings) as fetcher:
        scan = await fetch_page(fetcher, test_site.url("/docs/page-basic.html"), settings)
        assert (len(scan.urls), scan.truncated) == (5, True)
        small = settings.replace(max_html_bytes=1000)
        with pytest.raises(MedLensError) as info:
            await fetch_page(fetcher, test_site.url("/docs/page-basic.html"), small)
    assert info.value.code == "too_large"


async def test_html_with_an_image_content_type_is_still_a_page(test_site: TestSite) -> None:
    settings = _local()
    async with Fetcher(settings) as fetcher:
        scan = await fetch_page(fetcher, test_site.url("/special/html-as-jpeg"), settings)
    assert len(scan.urls) == 12


@pytest.mark.parametrize(
    ("path", "code", "words"),
    [
        (f"/images/{SAMPLE_JPEG}", "page_failed", "JPEG image"),
        ("/docs/report.pdf", "page_failed", "PDF"),
        ("/special/image.svg", "page_failed", "SVG"),
        ("/special/text.txt", "page_failed", "text/plain"),
        ("/special/status/404", "fetch_failed", "404"),
    ],
)
async def test_fetch_page_refuses_what_is_not_html(test_site: TestSite, path: str, code: str, words: str) -> None:
    settings = _local()
    async with Fetcher(settings) as fetcher:
        with pytest.raises(MedLensError) as info:
            await fetch_page(fetcher, test_site.url(path), settings)
    assert info.value.code == code
    assert words in info.value.message


async def test_fetch_page_checks_the_url_and_the_address() -> None:
    settings = Settings()
    async with Fetcher(settings) as fetcher:
        for url, code in [("file:///etc/passwd", "scheme_not_allowed"), ("http://10.1.2.3/", "address_not_allowed")]:
            with pytest.raises(MedLensError) as info:
                await fetch_page(fetcher, url, settings)
            assert info.value.code == code
