"""The popup: a PDF from shared/data/docs dropped or picked -> upload with progress -> a grid of
its images with page numbers, labels and counts; image files; unsupported and oversize files."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from e2e.pages import CAT, XRAY
from e2e.test_server_state import open_popup
from fixtures.data import image

# report.pdf: 4 pages x 4 figures, 2 medical + 2 non-medical on each page (docs/README.md)
REPORT_PAGES = {1, 2, 3, 4}


def test_opening_the_popup_scans_the_page(context, sw, ext_id, paired, site, reports_dir):
    """One toolbar click: the popup, as it opens, has the active tab scanned and shows progress/counts."""
    from e2e.conftest import open_page, tab_for, wait_badges

    url = site.add_page("popup-scan.html", f"""<!doctype html><body><h1>One click</h1>
<img src="{site.image(XRAY)}?popup" width="200" height="200"> <img src="{site.image(CAT)}?popup" width="220" height="146"></body>""")
    page = open_page(context, url)
    tab = tab_for(sw, page.url)
    popup = open_popup(context, ext_id, f"?tabId={tab['id']}")  # the active tab, as the real popup finds it
    expect(popup.locator("#scan")).to_have_attribute("data-status", "done", timeout=60_000)
    expect(popup.locator("#scan-status")).to_contain_text("2 images classified")
    expect(popup.locator("[data-count=medical]")).to_have_text("1")
    expect(popup.locator("[data-count=non-medical]")).to_have_text("1")
    expect(popup.locator("#server")).to_have_attribute("data-state", "ok")
    popup.screenshot(path=str(reports_dir / "popup-scan.png"))
    assert sorted(b["label"] for b in wait_badges(page, 2)) == ["medical", "non-medical"]
    popup.close()
    page.close()


def test_pdf_dropped_in_popup_lists_its_images(context, ext_id, paired, docs_dir, reports_dir):
    popup = open_popup(context, ext_id)
    pdf = (docs_dir / "report.pdf").read_bytes()
    dt = popup.evaluate_handle("""bytes => { const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], 'report.pdf', {type: 'application/pdf'})); return dt; }""", list(pdf))
    popup.dispatch_event("#drop", "drop", {"dataTransfer": dt})
    result = popup.locator("#results .result[data-kind=pdf]")
    expect(result.locator(".card")).to_have_count(16, timeout=60_000)
    expect(result.locator(".result-head")).to_contain_text("report.pdf")
    expect(result.locator(".result-head")).to_contain_text("4 pages, 16 images")
    cards = result.locator(".card")
    pages = {int(p) for p in cards.evaluate_all("cs => cs.map(c => c.dataset.page)")}
    assert pages == REPORT_PAGES
    labels = cards.evaluate_all("cs => cs.map(c => c.dataset.label)")
    counts = json.loads(result.locator(".result-head .sub").get_attribute("data-counts"))
    assert counts == {k: labels.count(k) for k in ("medical", "non-medical", "skipped", "error")}
    # the real model gets every figure of report.pdf right (2 medical + 2 non-medical per page)
    assert counts == {"medical": 8, "non-medical": 8, "skipped": 0, "error": 0}, counts
    per_page = cards.evaluate_all("cs => cs.map(c => c.dataset.page + ':' + c.dataset.label)")
    assert all(per_page.count(f"{p}:medical") == 2 for p in REPORT_PAGES), per_page
    # each card: thumbnail, "page N, image M", label text
    first = cards.first
    assert first.locator("img").get_attribute("src").startswith("data:image/")
    expect(first.locator(".where")).to_have_text(re.compile(r"^page [1-4], image [1-9]"))
    expect(first.locator(".label")).to_have_text(re.compile(r"^(Likely )?(Medical|Non-medical|medical|not medical)$"))
    expect(first.locator(".figures")).to_have_text(re.compile(r"^[<>]?\d+(\.\d+)?% medical \(threshold \d+(\.\d+)?%\)$"))
    assert popup.locator("#upload-progress").is_hidden()
    popup.screenshot(path=str(reports_dir / "popup-pdf.png"), full_page=True)
    print("\nreport.pdf labels per page:", json.dumps(cards.evaluate_all(
        "cs => cs.map(c => [c.dataset.page, c.dataset.label, c.querySelector('.label').textContent])")))
    # the same PDF picked with the file input
    popup.set_input_files("#file", files=[str(docs_dir / "report.pdf")])
    expect(popup.locator("#results .result[data-kind=pdf]")).to_have_count(2, timeout=60_000)
    popup.close()


def test_image_files_unsupported_and_oversize(context, ext_id, paired, tmp_path, reports_dir):
    popup = open_popup(context, ext_id)
    # one image
    popup.set_input_files("#file", files=[str(image(XRAY))])
    one = popup.locator("#results .result[data-kind=images]")
    expect(one.locator(".card")).to_have_count(1, timeout=60_000)
    expect(one.locator(".card")).to_have_attribute("data-label", "medical")
    # many at once
    popup.set_input_files("#file", files=[str(image(XRAY)), str(image(CAT))])
    expect(popup.locator("#results .result[data-kind=images]")).to_have_count(2, timeout=60_000)
    many = popup.locator("#results .result[data-kind=images]").first
    assert many.locator(".card").evaluate_all("cs => cs.map(c => c.dataset.label)") == ["medical", "non-medical"]
    expect(many.locator(".result-head")).to_contain_text("2 images")
    # unsupported
    txt = tmp_path / "notes.txt"
    txt.write_text("not an image")
    popup.set_input_files("#file", files=[str(txt)])
    expect(popup.locator("#file-message")).to_contain_text("notes.txt is not supported: drop a PDF or an image")
    # oversize (a sparse file: nothing is read or uploaded)
    big = tmp_path / "huge.pdf"
    with open(big, "wb") as fh:
        fh.truncate(65 * 1024 * 1024)
    popup.set_input_files("#file", files=[str(big)])
    expect(popup.locator("#file-message")).to_contain_text("huge.pdf is too large (65.0 MB); this MedLens server takes PDFs up to 64.0 MB.")
    expect(popup.locator("#results .result")).to_have_count(2)
    popup.screenshot(path=str(reports_dir / "popup-images.png"), full_page=True)
    popup.close()
