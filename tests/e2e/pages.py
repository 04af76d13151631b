"""Test pages built from real images of shared/data (served by e2e.site; nothing copied)."""

from __future__ import annotations

import base64

from fixtures.data import image

# Unambiguous cases for the shipped model (see the report if one of them is ever mislabelled).
XRAY = "medical/xray/pydicom-data_RG1_J2KI.jpg"
FUNDUS = "medical/fundus/idrid-codras_0001.jpg"
FUNDUS_SMALL = "medical/fundus/skimage-data_microaneurysms.jpg"  # inline data: image (4 kB)
CT = "medical/ct/itkelastix-data_chestct_ax008_lung.jpg"
MRI = "medical/mri/itk-examples_FatMRISlice.jpg"
HISTOLOGY = "medical/histology/torchstain-data_source_crop5.jpg"
PHOTO = "non-medical/photo/skimage-data_astronaut.jpg"
CUPS = "non-medical/photo/kde-plasma-wallpapers_ColorfulCups.jpg"
CAT = "non-medical/photo/skimage-data_chelsea.jpg"
CHART = "non-medical/chart/charts-sklearn-data_box_0.png"
CHART2 = "non-medical/chart/charts-sklearn-data_box_1.png"
SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="120" viewBox="0 0 120 120">'
       b'<circle cx="60" cy="60" r="50" fill="#2a7"/><rect x="50" y="25" width="20" height="70" fill="#fff"/>'
       b'<rect x="25" y="50" width="70" height="20" fill="#fff"/></svg>')
GIF_1PX = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def data_url(rel: str) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(image(rel).read_bytes()).decode()


def gallery(site) -> dict[str, str]:
    """Registers the gallery (+ its iframe page); returns {element id: expected label} and the URL."""
    img = site.image
    svg = site.add_file("logo.svg", SVG, "image/svg+xml")
    site.add_page("frame.html", f"""<!doctype html><html><body style="margin:0">
<img id="framed" src="{img(CAT)}" width="220" height="146" alt="cat in a same-origin iframe"></body></html>""")
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>MedLens gallery</title>
<style>body {{ font: 14px sans-serif; margin: 16px; }} .grid {{ display: flex; flex-wrap: wrap; gap: 12px; }}
figure {{ margin: 0; }} #scroller {{ width: 260px; height: 140px; overflow: auto; border: 1px solid #999; }}</style>
</head><body>
<h1>Gallery of real images</h1>
<div class="grid">
 <figure><img id="plain" src="{img(XRAY)}" width="200" height="200" alt="chest x-ray"><figcaption>plain img</figcaption></figure>
 <figure><img id="srcset" src="{img(PHOTO)}" srcset="{img(FUNDUS)} 1x, {img(FUNDUS)} 2x" width="240" height="160" alt="fundus via srcset"><figcaption>srcset</figcaption></figure>
 <figure><img id="lazy" class="lazyload" src="{GIF_1PX}" data-src="{img(CT)}" width="200" height="200" alt="lazy CT"><figcaption>lazy data-src</figcaption></figure>
 <figure><picture><source srcset="{img(CUPS)}" type="image/jpeg"><img id="picture" src="{img(CHART2)}" width="240" height="160" alt="picture"></picture><figcaption>picture/source</figcaption></figure>
 <figure><div id="bg" role="img" aria-label="chart" style="width:240px;height:180px;background:url('{img(CHART)}') center/contain no-repeat"></div><figcaption>CSS background</figcaption></figure>
 <figure><img id="inline" src="{data_url(FUNDUS_SMALL)}" width="160" height="160" alt="inline data: fundus"><figcaption>data: URL</figcaption></figure>
 <figure><img id="private" src="{site.private(MRI)}" width="200" height="200" alt="MRI behind login"><figcaption>behind login</figcaption></figure>
 <figure><img id="dup" src="{img(XRAY)}" width="120" height="120" alt="same x-ray again"><figcaption>duplicate</figcaption></figure>
 <figure><iframe id="frame" src="/pages/frame.html" width="230" height="156" style="border:0"></iframe><figcaption>same-origin iframe</figcaption></figure>
 <figure><div id="scroller"><div style="height:40px">scroll me</div><img id="scrolled" src="{img(CHART2)}" width="240" height="135" alt="chart in a scroller"><div style="height:200px"></div></div><figcaption>inner scroller</figcaption></figure>
 <figure><img id="vector" src="{svg}" width="120" height="120" alt="vector logo"><figcaption>SVG (not classifiable)</figcaption></figure>
 <img id="tiny" src="{img(HISTOLOGY)}" width="10" height="10" alt="tiny">
 <img id="hidden" src="{img(MRI)}?hidden" style="display:none" alt="hidden">
</div>
<p id="end">End of the gallery.</p>
</body></html>"""
    url = site.add_page("gallery.html", html)
    expected = {
        "plain": "medical", "dup": "medical", "srcset": "medical", "lazy": "medical", "picture": "non-medical",
        "bg": "non-medical", "inline": "medical", "private": "medical", "framed": "non-medical",
        "scrolled": "non-medical", "vector": "not classified",
    }
    sources = {
        "plain": img(XRAY), "dup": img(XRAY), "srcset": img(FUNDUS), "lazy": img(CT), "picture": img(CUPS),
        "bg": img(CHART), "inline": data_url(FUNDUS_SMALL), "private": site.private(MRI), "framed": img(CAT),
        "scrolled": img(CHART2), "vector": svg,
    }
    return {"url": url, "expected": expected, "sources": sources}
