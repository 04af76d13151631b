"""What a scanned page could learn through MedLens, and what image hosts are told (issue 20, 2-3).

A page on one loopback origin shows images it may not read (another origin's image behind that
origin's login, loopback addresses the server's SSRF guard refuses, MedLens's own routes) and reads
back everything the badges put in its DOM: it must learn nothing it did not know, and the service
worker must never fetch those images itself. Image hosts record the Referer the server sends for
pages with secrets in the query and fragment, default policy and no-referrer."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from playwright.sync_api import expect

from e2e.conftest import DEFAULT_SETTINGS, MedLensServer, open_page, scan, set_settings, tab_for, wait_badges
from e2e.pages import CAT, MRI, XRAY

# Everything a page's own script can read about the badges: host attributes, and the text and
# titles inside open shadow roots (a closed one reads as null).
PAGE_VIEW = """() => [...document.querySelectorAll('medlens-badge')].map(b => {
    const attrs = Object.fromEntries([...b.attributes].map(a => [a.name, a.value]));
    const root = b.shadowRoot;
    const inside = root ? [root.textContent, ...[...root.querySelectorAll('[title],[aria-label]')]
        .map(e => (e.getAttribute('title') || '') + '|' + (e.getAttribute('aria-label') || ''))].join(' ') : null;
    return {attrs, inside};
})"""


def learned(page) -> dict[str, tuple]:
    """src -> what the page can read of its badge, with the src itself taken out."""
    out = {}
    for b in page.evaluate(PAGE_VIEW):
        attrs = dict(b["attrs"])
        src = attrs.pop("data-medlens-src")
        attrs.pop("style", None)  # where the badge sits: the page knows where its images are
        inside = (b["inside"] or "").replace(src, "<src>")
        out[src] = (tuple(sorted(attrs.items())), inside)
    return out


@pytest.fixture(scope="module")
def guarded(classifier, tmp_path_factory):
    """A second real server with the SSRF guard as users get it (loopback and private refused)."""
    srv = MedLensServer(classifier, tmp_path_factory.mktemp("medlens-guarded"), allow_private=False).start()
    yield srv
    srv.stop()


def sign_in_other_origin(context, site) -> None:
    """The user is signed in on the other origin (127.0.0.2): its session cookie is in the browser."""
    page = open_page(context, site.other(site.add_page("leak-login.html", "<!doctype html><p>signed in</p>")))
    page.close()


def extension_fetches(site, marker: str) -> list[str]:
    """Requests for `marker` URLs that were not the browser loading an <img> for the page."""
    return [p for p, h in site.headers if marker in p and h.get("Sec-Fetch-Dest") != "image"
            and "aiohttp" not in h.get("User-Agent", "") and "MedLens" not in h.get("User-Agent", "")]


def test_page_learns_nothing_about_images_it_cannot_read(context, sw, paired, site, reports_dir):
    """Another origin's image behind its login: the server is refused (403), and MedLens does not
    read it with the user's cookies; the page's badges say the same for it as for a missing one."""
    sign_in_other_origin(context, site)
    secret = site.other(site.private(MRI)) + "?probe-cookie"
    missing = site.other(site.image("medical/mri/no-such-file.jpg")) + "?probe-cookie"
    own = site.image(CAT) + "?leak-own"  # an image of the page's own origin: classified as usual
    url = site.add_page("leak-cookie.html", f"""<!doctype html><body><h1>Curious page</h1>
<img src="{secret}" width="200" height="200"> <img src="{missing}" width="200" height="200">
<img src="{own}" width="220" height="146"></body>""")
    page = open_page(context, url)
    scan(sw, page)
    wait_badges(page, 3)
    seen = learned(page)
    page.screenshot(path=str(reports_dir / "leak-cookie.png"))
    assert extension_fetches(site, "probe-cookie") == [], "the extension read another origin's image itself"
    assert seen[secret] == seen[missing], seen
    assert ("data-medlens-label", "error") in seen[secret][0] and not any(k == "data-medlens-probability" for k, _ in seen[secret][0])
    assert dict(seen[own][0])["data-medlens-label"] == "non-medical"
    page.close()


def test_ssrf_refusals_are_final(context, sw, ext_id, guarded, site, reports_dir):
    """Loopback addresses the server refuses (an image, a missing one, MedLens's own page and
    health route) all read the same to the page, and nothing but the page's own <img> loads
    reached them."""
    set_settings(sw, serverUrl=guarded.url, token=guarded.token, **DEFAULT_SETTINGS)
    try:
        sign_in_other_origin(context, site)
        targets = [site.other(site.private(XRAY)) + "?probe-ssrf", site.other(site.image(MRI)) + "?probe-ssrf",
                   site.other(site.image("medical/mri/no-such-file.jpg")) + "?probe-ssrf",
                   f"{guarded.url}/?probe-ssrf", f"{guarded.url}/v1/health?probe-ssrf"]
        imgs = "".join(f'<img src="{t}" width="120" height="120"> ' for t in targets)
        page = open_page(context, site.add_page("leak-ssrf.html", f"<!doctype html><body><h1>Probe</h1>{imgs}</body>"))
        scan(sw, page)
        wait_badges(page, len(targets))
        seen = learned(page)
        page.screenshot(path=str(reports_dir / "leak-ssrf.png"))
        html = page.evaluate("document.documentElement.outerHTML")
        # the details, and what to do, are in the popup, not the page
        from e2e.test_server_state import open_popup

        popup = open_popup(context, ext_id, f"?tabId={tab_for(sw, page.url)['id']}")
        expect(popup.locator("#scan")).to_have_attribute("data-status", "done", timeout=60_000)
        expect(popup.locator("#scan-problems-summary")).to_have_text(f"Why {len(targets)} images were not classified")
        expect(popup.locator("#scan-problems-list li[data-code=address_not_allowed]")).to_contain_text(
            f"{len(targets)} × address refused: The server does not fetch addresses on this computer or a private network")
        expect(popup.locator("#scan-problems-list li")).to_contain_text("--allow-private")
        popup.locator("#scan-problems summary").click()
        popup.screenshot(path=str(reports_dir / "popup-problems.png"))
        popup.close()
    finally:
        sw.evaluate("chrome.storage.local.remove(['serverUrl', 'token'])")  # the next test pairs again
    assert extension_fetches(site, "probe-ssrf") == [], "the extension re-fetched what the server refused"
    assert len({seen[t] for t in targets}) == 1, seen
    assert not any(k == "data-medlens-probability" for k, _ in seen[targets[0]][0])
    for words in ("refusing", "loopback", "resolves to", "address"):
        assert words not in html and all(words not in v[1] for v in seen.values()), words
    page.close()


def test_image_hosts_get_at_most_the_page_origin(context, sw, paired, site):
    """The server's fetch of a page's images carries at most the page's origin as Referer, never
    its path, query or fragment, and nothing when the page says no-referrer."""
    secret = "?patient=4711&session=SECRET#record-9"
    cases = {
        "default": ("", site.other(site.image(XRAY)) + "?ref-default"),
        "no-referrer header": ("header", site.other(site.image(XRAY)) + "?ref-header"),
        "header, meta says origin": ("header+meta", site.other(site.image(CAT)) + "?ref-header-meta"),
        "same-origin-image": ("", site.image(CAT) + "?ref-same"),
        "no-referrer": ('<meta name="referrer" content="no-referrer">', site.other(site.image(MRI)) + "?ref-none"),
        "unsafe-url": ('<meta name="referrer" content="unsafe-url">', site.other(site.image(CAT)) + "?ref-unsafe"),
    }
    for name, (meta, img) in cases.items():
        headers = {"Referrer-Policy": "no-referrer"} if meta.startswith("header") else None
        meta = {"header": "", "header+meta": '<meta name="referrer" content="origin">'}.get(meta, meta)
        url = site.add_page(f"ref-{name.replace(' ', '-').replace(',', '')}.html", f"""<!doctype html><html><head>{meta}</head><body>
<img src="{img}" width="200" height="200"></body></html>""", headers) + secret
        page = open_page(context, url)
        scan(sw, page)
        wait_badges(page, 1)
        page.close()
    sent = {}
    for name, (_, img) in cases.items():
        marker = urlsplit(img).query
        got = [h for p, h in site.headers if p.endswith("?" + marker) and h.get("Sec-Fetch-Dest") != "image"]
        assert got, f"{name}: the server never fetched {img}"
        sent[name] = got[0].get("Referer")
    origin = site.base
    assert sent == {"default": origin, "no-referrer header": None, "header, meta says origin": origin,
                    "same-origin-image": origin, "no-referrer": None, "unsafe-url": origin}, sent
