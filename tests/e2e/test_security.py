"""A plain page's script cannot use the server (nor the extension's messaging); the service
worker ignores messages whose type or sender is not on its list."""

from __future__ import annotations

from e2e.conftest import open_page, scan
from e2e.pages import XRAY

FETCH = """async ([url, opts]) => { try { const r = await fetch(url, opts); return 'status ' + r.status + ' ' + (await r.text()).slice(0, 80); }
    catch (e) { return String(e); } }"""


def test_plain_page_cannot_use_the_server(context, sw, paired, site):
    page = open_page(context, site.add_page("evil.html", f"<h1>Not MedLens</h1><img src='{site.image(XRAY)}?evil' width=200 height=200>"))
    origin = site.base
    scan(sw, page)  # the extension is active on this page, and paired
    n = len(paired.requests)
    body = '{"urls": ["%s"]}' % site.image(XRAY)
    # a "simple" POST (no preflight), with and without the token the page might have guessed
    simple = page.evaluate(FETCH, [paired.url + "/v1/classify", {"method": "POST", "body": body, "headers": {"Content-Type": "text/plain"}}])
    with_token = page.evaluate(FETCH, [paired.url + "/v1/classify", {"method": "POST", "body": body,
                                       "headers": {"Content-Type": "application/json", "Authorization": "Bearer " + paired.token}}])
    health = page.evaluate(FETCH, [paired.url + "/v1/health", {}])
    no_cors = page.evaluate(FETCH, [paired.url + "/v1/classify", {"method": "POST", "body": body, "mode": "no-cors"}])
    for answer in (simple, with_token, health):
        assert answer.startswith("TypeError"), answer  # the page never reads an answer
    assert no_cors.startswith("TypeError"), no_cors  # CORP same-origin: not even an opaque answer
    seen = [r for r in paired.requests[n:] if r[2] == origin]
    assert seen, paired.requests[n:]
    assert all(status == 403 for _m, _p, _o, status in seen), seen  # forbidden_origin, whatever the route
    # the page has no way to message the extension, and the token is nowhere in its DOM
    assert page.evaluate("!!(window.chrome && chrome.runtime && chrome.runtime.sendMessage)") is False
    assert paired.token not in page.content()
    assert paired.token not in page.evaluate("""() => [...document.querySelectorAll('medlens-badge')]
        .map(b => (b.shadowRoot ? b.shadowRoot.innerHTML : '') + [...b.attributes].map(a => a.value).join(' ')).join(' ')""")
    page.close()


def test_service_worker_checks_message_types_and_senders(sw, site):
    content = {"id": None, "tab": {"id": 1, "url": site.base + "/x"}, "frameId": 0, "url": site.base + "/x"}
    res = sw.evaluate("""([content]) => { content.id = chrome.runtime.id;
        const page = {id: chrome.runtime.id, url: chrome.runtime.getURL('extension/popup.html')};
        const other = {...content, id: 'abcdefghijklmnopabcdefghijklmnop'};
        const probe = (m, s) => handleMessage(m, s) === null ? 'ignored' : 'handled';
        return {
          unknown: probe({type: 'medlens:steal-token'}, content),
          notObject: probe('medlens:scan-tab', page),
          noType: probe({urls: ['http://x/']}, content),
          contentAsksScan: probe({type: 'medlens:scan-tab', tabId: 1}, content),
          otherExtension: probe({type: 'medlens:classify-urls', urls: ['http://x/a.png']}, other),
          pageAsksClassify: probe({type: 'medlens:classify-urls', urls: ['http://x/a.png']}, page),
          known: probe({type: 'medlens:scan-progress', found: 0, done: 0, counts: {}}, content),
        }; }""", [content])
    assert res == {"unknown": "ignored", "notObject": "ignored", "noType": "ignored", "contentAsksScan": "ignored",
                   "otherExtension": "ignored", "pageAsksClassify": "ignored", "known": "handled"}, res
