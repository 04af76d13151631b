"""The popup follows the limits the server reports in /v1/health, not defaults of its own: a real
server started with small, non-default limits (PDF bytes, image bytes, items per request) refuses
nothing, because the popup never sends what it would refuse, and splits what it may send."""

from __future__ import annotations

from playwright.sync_api import expect

from e2e.conftest import DEFAULT_SETTINGS, MedLensServer, set_settings
from e2e.pages import CAT, FUNDUS, PHOTO, XRAY
from e2e.test_server_state import open_popup
from fixtures.data import image

LIMITS = {"max_pdf_bytes": 400_000, "max_image_bytes": 40_000, "max_items": 2}


def test_popup_uses_the_servers_limits(context, sw, ext_id, classifier, tmp_path_factory, docs_dir, reports_dir):
    srv = MedLensServer(classifier, tmp_path_factory.mktemp("limits-config"), **LIMITS).start()
    try:
        set_settings(sw, serverUrl=srv.url, token=srv.token, **DEFAULT_SETTINGS)
        popup = open_popup(context, ext_id)
        expect(popup.locator("#server")).to_have_attribute("data-state", "ok")
        limits = popup.evaluate("async () => (await MedLens.api.health(await MedLens.settings.load())).limits")
        assert {k: limits[k] for k in LIMITS} == LIMITS, limits
        expect(popup.locator("#file-limits")).to_have_text("PDFs up to 391 kB, images up to 39 kB, other files up to 64.0 MB, 2 files per upload")
        # a PDF over the server's cap (report.pdf is 421,555 bytes) is refused before upload
        report = docs_dir / "report.pdf"
        assert report.stat().st_size > LIMITS["max_pdf_bytes"]
        popup.set_input_files("#file", files=[str(report)])
        expect(popup.locator("#file-message")).to_contain_text("report.pdf is too large (412 kB); this MedLens server takes PDFs up to 391 kB.")
        # an image over the server's cap (astronaut, 60 kB) is refused; three that fit go in two requests
        assert image(PHOTO).stat().st_size > LIMITS["max_image_bytes"]
        fits = [image(XRAY), image(CAT), image(FUNDUS)]
        assert all(p.stat().st_size <= LIMITS["max_image_bytes"] for p in fits)
        before = srv.uploads
        popup.set_input_files("#file", files=[str(image(PHOTO)), *map(str, fits)])
        result = popup.locator("#results .result[data-kind=images]")
        expect(result.locator(".card")).to_have_count(3, timeout=60_000)
        expect(popup.locator("#file-message")).to_contain_text("skimage-data_astronaut.jpg is too large")
        assert result.locator(".card").evaluate_all("cs => cs.map(c => c.dataset.label)") == ["medical", "non-medical", "medical"]
        expect(result.locator(".result-head")).to_contain_text("3 images — 2 uploads")
        assert srv.uploads - before == 2
        # nothing the server would refuse was sent: no PDF upload at all, no 413
        assert not [r for r in srv.requests if r[1] == "/v1/classify/pdf"], srv.requests
        assert not [r for r in srv.requests if r[3] == 413], srv.requests
        popup.screenshot(path=str(reports_dir / "popup-server-limits.png"), full_page=True)
        popup.close()
    finally:
        srv.stop()
