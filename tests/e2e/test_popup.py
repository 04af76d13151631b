"""The popup: a PDF from shared/data/docs dropped or picked -> upload with progress -> a grid of
its images with page numbers, labels and counts; image files; files holding images (archive,
office document, comic book) as a card per image with its place; unsupported and oversize files."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from e2e.pages import CAT, XRAY
from e2e.test_server_state import open_popup
from fixtures import containers
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
    expect(popup.locator("#file-message")).to_contain_text("notes.txt is not supported: drop a PDF, an image (PNG, JPEG")
    expect(popup.locator("#file-message")).to_contain_text("an office document (DOCX, PPTX, XLSX, ODT, ODP, ODS)")
    expect(popup.locator("#file-message")).to_contain_text("a DICOM file or a video (MP4, WebM, MOV, AVI, MKV).")
    # oversize (a sparse file: nothing is read or uploaded)
    big = tmp_path / "huge.pdf"
    with open(big, "wb") as fh:
        fh.truncate(65 * 1024 * 1024)
    popup.set_input_files("#file", files=[str(big)])
    expect(popup.locator("#file-message")).to_contain_text("huge.pdf is too large (65.0 MB); this MedLens server takes PDFs up to 64.0 MB.")
    expect(popup.locator("#results .result")).to_have_count(2)
    popup.screenshot(path=str(reports_dir / "popup-images.png"), full_page=True)
    popup.close()


ICONS = ["non-medical/icon/mdi-icons_android-studio.png", "non-medical/icon/mdi-icons_arrow-up-bold-box-outline.png",
         "non-medical/icon/asap-resources_application.png"]


def manual_pdf(path) -> None:
    """A manual-like PDF: two real figures and five toolbar icons at 16-26 px (as in the MRIcron manual)."""
    import io

    import pymupdf
    from PIL import Image

    def png(rel, side):
        with Image.open(image(rel)) as im:
            out = io.BytesIO()
            im.convert("RGB").resize((side, side)).save(out, "PNG")
            return out.getvalue()

    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(50, 50, 300, 300), stream=image(XRAY).read_bytes())
    page.insert_image(pymupdf.Rect(310, 50, 560, 220), stream=image(CAT).read_bytes())
    for i, (rel, side) in enumerate([(ICONS[0], 16), (ICONS[1], 20), (ICONS[2], 26), (ICONS[0], 24), (ICONS[1], 22)]):
        page.insert_image(pymupdf.Rect(50 + 30 * i, 320, 70 + 30 * i, 340), stream=png(rel, side))
    doc.save(path)


def test_pdf_result_filter_small_images_and_full_page(context, sw, ext_id, paired, tmp_path, reports_dir):
    pdf = tmp_path / "manual.pdf"
    manual_pdf(pdf)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(image(XRAY).read_bytes()[:600])  # headers, no picture: an error card
    popup = open_popup(context, ext_id)
    popup.set_input_files("#file", files=[str(broken)])
    expect(popup.locator("#results .result[data-kind=images] .card")).to_have_attribute("data-label", "error", timeout=60_000)
    popup.set_input_files("#file", files=[str(pdf)])
    result = popup.locator("#results .result[data-kind=pdf]")
    expect(result.locator(".card")).to_have_count(7, timeout=60_000)
    # the icons are grouped into one line, not five cards
    expect(result.locator(".small-line")).to_contain_text("5 small images hidden")
    visible = result.locator(".card:visible")
    every = popup.locator("#results .card:visible")
    expect(visible).to_have_count(2)
    assert sorted(visible.evaluate_all("cs => cs.map(c => c.dataset.label)")) == ["medical", "non-medical"]
    popup.screenshot(path=str(reports_dir / "popup-pdf-small-hidden.png"), full_page=True)
    # the filter, over every result: medical only, non-medical only, errors
    expect(popup.locator("#result-filter")).to_be_visible()
    popup.check("input[name=result-filter][value=medical]")
    assert every.evaluate_all("cs => cs.map(c => c.dataset.label)") == ["medical"]
    popup.screenshot(path=str(reports_dir / "popup-pdf-filter-medical.png"), full_page=True)
    popup.check("input[name=result-filter][value=non-medical]")
    assert every.evaluate_all("cs => cs.map(c => c.dataset.label)") == ["non-medical"]
    result.locator(".small-line button").click()  # the icons, on request
    expect(result.locator(".small-line button")).to_have_text("Hide")
    expect(visible).to_have_count(1 + sum(1 for lab in result.locator(".card[data-small=true]").evaluate_all(
        "cs => cs.map(c => c.dataset.label)") if lab == "non-medical"))
    result.locator(".small-line button").click()
    popup.check("input[name=result-filter][value=errors]")
    expect(every).to_have_count(1)
    expect(every.first.locator(".label")).to_have_text("Not classified: unreadable image")
    expect(every.first.locator(".label")).to_have_attribute("title", re.compile("damaged or truncated"))
    expect(popup.locator("[data-filter-count=errors]")).to_have_text("1")
    popup.screenshot(path=str(reports_dir / "popup-pdf-filter-errors.png"), full_page=True)
    popup.check("input[name=result-filter][value=all]")
    expect(visible).to_have_count(2)
    # the whole result in the server's own page
    with context.expect_page() as opened:
        result.locator("button.open-page").click()
    page = opened.value
    page.wait_for_load_state("load")
    page.locator("#grid .card").first.wait_for(timeout=20_000)
    cards = page.locator("#grid .card")
    expect(cards).to_have_count(7)  # all of them, the icons too
    assert page.url.split("?")[0].rstrip("/") == paired.url  # opened with ?token=: the page trades it for its session
    expect(page.locator("#grid .group-heading")).to_contain_text("manual.pdf")
    popup_labels = result.locator(".card").evaluate_all("cs => cs.map(c => c.dataset.label)")
    assert cards.evaluate_all("cs => cs.map(c => c.dataset.category)") == popup_labels
    page.screenshot(path=str(reports_dir / "page-from-popup.png"), full_page=True)
    page.close()
    # the server gone: the popup says so, and what to do
    from e2e.conftest import free_port, set_settings

    set_settings(sw, serverUrl=f"http://127.0.0.1:{free_port()}")
    with context.expect_page() as opened:
        result.locator("button.open-page").click()
    expect(popup.locator("#file-message")).to_contain_text("Could not open the MedLens page: No MedLens server answers. "
                                                            "Start it in a terminal with `medlens serve`.", timeout=20_000)
    opened.value.close()
    popup.close()


def drop(popup, files: list[tuple[str, str, bytes]]) -> None:
    """Drop real files on the popup's drop zone, as a user drags them from a file manager."""
    dt = popup.evaluate_handle("""files => { const dt = new DataTransfer();
        for (const f of files) dt.items.add(new File([new Uint8Array(f.bytes)], f.name, {type: f.type}));
        return dt; }""", [{"name": n, "type": t, "bytes": list(b)} for n, t, b in files])
    popup.dispatch_event("#drop", "drop", {"dataTransfer": dt})


def box(popup, name: str):
    return popup.locator("#results .result").filter(has=popup.locator(".result-head", has_text=name))


def cards_of(result) -> list[tuple[str, str]]:
    return result.locator(".card").evaluate_all("cs => cs.map(c => [c.querySelector('.where').textContent, c.dataset.label])")


def test_containers_dropped_in_popup_show_a_card_per_image_with_its_place(context, ext_id, paired, reports_dir):
    c = containers
    bundle = c.zip_of({"scans/xray.jpg": c.jpeg(c.XRAY), "charts/chart.png": c.png(c.CHART), "../evil.png": c.png(c.CHART)})
    report = c.docx([c.MRI, c.SCREENSHOT])
    atlas = c.zip_of({"001.jpg": c.jpeg(c.XRAY), "002.jpg": c.jpeg(c.CHART)})  # a comic-book archive: pages
    popup = open_popup(context, ext_id)
    expect(popup.locator("#file")).to_have_attribute("accept", re.compile(r"(^|,)\.docx,.*\.cbz,.*\.zip,.*\.dcm,.*\.mp4(,|$)"))
    expect(popup.locator("#file-limits")).to_contain_text("other files up to 64.0 MB")
    drop(popup, [("bundle.zip", "application/zip", bundle),
                 ("report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", report),
                 ("atlas.cbz", "", atlas), ("xray.jpg", "image/jpeg", image(c.XRAY).read_bytes())])
    expect(popup.locator("#results .result")).to_have_count(4, timeout=90_000)
    expect(popup.locator("#results .result[data-kind=container]")).to_have_count(3)
    zipped = box(popup, "bundle.zip")
    expect(zipped.locator(".result-head")).to_contain_text("archive, 3 images")
    got = [(where.split(" · ")[0], label) for where, label in cards_of(zipped)]  # " · X-ray": the modality, if sure
    assert got == [("member scans/xray.jpg", "medical"), ("member charts/chart.png", "non-medical"), ("member ../evil.png", "error")], got
    bad = zipped.locator(".card[data-label=error]")
    expect(bad.locator(".label")).to_have_text("Not classified: unsafe entry")
    expect(bad.locator(".todo")).to_contain_text("MedLens does not unpack it")  # what happened and what to do
    assert zipped.locator(".card[data-label=medical] img").get_attribute("src").startswith("data:image/")  # the server's thumbnail
    docx = box(popup, "report.docx")
    expect(docx.locator(".result-head")).to_contain_text("office document, 2 images")
    got = cards_of(docx)
    assert [label for _, label in got] == ["medical", "non-medical"], got
    assert all(re.match(r"^member word/media/image\d\.\w+", where) for where, _ in got), got
    cbz = box(popup, "atlas.cbz")
    got = cards_of(cbz)
    assert [(where.split(" · ")[0], label) for where, label in got] == [("page 1, image 1", "medical"), ("page 2, image 1", "non-medical")], got
    plain = popup.locator("#results .result[data-kind=images]")
    expect(plain.locator(".result-head")).to_contain_text("xray.jpg")
    expect(plain.locator(".card")).to_have_attribute("data-label", "medical")
    # the filter counts the containers' images too
    expect(popup.locator("[data-filter-count=all]")).to_have_text("8")
    expect(popup.locator("[data-filter-count=errors]")).to_have_text("1")
    assert popup.locator("#file-message").is_hidden()
    popup.screenshot(path=str(reports_dir / "popup-containers.png"), full_page=True)
    popup.close()
