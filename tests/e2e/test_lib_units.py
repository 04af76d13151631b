"""The extension's lib/ modules (plain classic scripts) under Node: settings normalisation, the
off-sites check, strictness relabelling, file kinds, the message list."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from fixtures.data import REPO_ROOT

NODE = shutil.which("node")

SCRIPT = r"""
const vm = require('vm'), fs = require('fs');
const ctx = {console, URL, chrome: {storage: {local: {}}}};
ctx.globalThis = ctx;
vm.createContext(ctx);
for (const f of ['messages.js', 'settings.js', 'api.js']) vm.runInContext(fs.readFileSync(process.argv[1] + '/' + f, 'utf8'), ctx);
const {settings: S, api: A, messages: M} = ctx.MedLens;
const ok = (r) => ({status: 'ok', label: r < 0.5 ? 'non-medical' : 'medical', probability: r, modality: r < 0.5 ? null : 'xray'});
console.log(JSON.stringify({
  urls: ['127.0.0.1:8377', 'http://localhost:9000/x', 'https://h.example/', 'ftp://x', '', 'not a url'].map(S.normalizeServerUrl),
  off: S.parseOffSites('example.org\n*.Foo.com, https://www.bar.net/path  # at work\n# a comment\nhost!'),
  isOff: [S.isSiteOff('https://a.example.org/x', ['example.org']), S.isSiteOff('https://notexample.org/', ['example.org']),
          S.isSiteOff('https://example.org/', ['example.org']), S.isSiteOff('about:blank', ['example.org'])],
  norm: S.normalize({threshold: '0.7', medicalMode: 'weird', autoScan: 'yes', offSites: 'a.com b.com', serverUrl: 'nope://'}),
  forContent: Object.keys(S.forContent(S.normalize({token: 'secret'}))),
  relabel: [A.applyThreshold(ok(0.3), 0.2).label, A.applyThreshold(ok(0.6), 0.8), A.applyThreshold(ok(0.6), null).label,
            A.applyThreshold({status: 'error', probability: null}, 0.5).status],
  kinds: [{name: 'a.pdf', type: ''}, {name: 'b', type: 'application/pdf'}, {name: 'c.JPG', type: ''},
          {name: 'd.png', type: 'image/png'}, {name: 'e.txt', type: 'text/plain'}, {name: 'f.svg', type: 'image/svg+xml'}].map(A.fileKind),
  messages: [M.isMessage({type: 'medlens:scan-tab'}), M.isMessage({type: 'medlens:nope'}), M.isMessage(null), M.isMessage('medlens:scan-tab'),
             new Set(M.ALL).size === M.ALL.length],
}));
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_lib_modules_under_node():
    out = subprocess.run([NODE, "-e", SCRIPT, str(REPO_ROOT / "extension" / "lib")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["urls"] == ["http://127.0.0.1:8377", "http://localhost:9000", "https://h.example", None, None, None]
    assert r["off"] == ["example.org", "foo.com", "www.bar.net"]
    assert r["isOff"] == [True, False, True, False]
    n = r["norm"]
    assert (n["threshold"], n["medicalMode"], n["autoScan"], n["offSites"], n["serverUrl"]) == (
        0.7, "badge", False, ["a.com", "b.com"], "http://127.0.0.1:8377")
    assert r["forContent"] == ["threshold", "compareWith", "medicalMode"]  # never the token
    relabel = r["relabel"]
    assert relabel[0] == "medical" and relabel[1]["label"] == "non-medical" and relabel[1]["modality"] is None
    assert relabel[2:] == ["medical", "error"]
    assert r["kinds"] == ["pdf", "pdf", "image", "image", None, None]
    assert r["messages"] == [True, False, False, False, True]
