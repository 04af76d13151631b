"""lib/pairing.js and lib/api.js's limits under Node: the extension reads a typed code exactly as
the server does (so a typo the server would forgive never costs a try, and a code the server
would refuse is never sent), and /v1/health's limits replace the shipped defaults."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from fixtures.data import REPO_ROOT
from medlens.pairing import ALPHABET, normalize_code

NODE = shutil.which("node")
TYPED = ["7KQ2-M9XD", "7kq2 m9xd", " 7kq2m9xd ", "7KQ2-M9XO", "IL00-0000", "", "7KQ2-M9X", "7KQ2-M9XD1", "7KQ2-M9X!",
         "UUUU-UUUU", "abcd_efgh", "x" * 100, "7KQ2\tM9XD"]

SCRIPT = r"""
const vm = require('vm'), fs = require('fs');
const ctx = {console, URL, chrome: {storage: {local: {}}}};
ctx.globalThis = ctx;
vm.createContext(ctx);
for (const f of ['messages.js', 'settings.js', 'api.js', 'pairing.js']) vm.runInContext(fs.readFileSync(process.argv[1] + '/' + f, 'utf8'), ctx);
const {pairing: P, api: A} = ctx.MedLens;
const typed = JSON.parse(process.argv[2]);
console.log(JSON.stringify({
  alphabet: P.ALPHABET,
  codes: typed.map(P.normalizeCode),
  limits: [A.limitsOf({limits: {max_image_bytes: 40000, max_pdf_bytes: 400000, max_body_bytes: 500000, max_items: 2, max_file_bytes: 1000000}}),
           A.limitsOf({status: 'ok', api: 1}), A.limitsOf({limits: {max_items: -1, max_pdf_bytes: 'x', max_image_bytes: 1.5}}), A.limitsOf(null)],
}));
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_pairing_and_limits_under_node():
    out = subprocess.run([NODE, "-e", SCRIPT, str(REPO_ROOT / "extension" / "lib"), json.dumps(TYPED)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["alphabet"] == ALPHABET
    assert r["codes"] == [normalize_code(t) for t in TYPED]
    assert r["codes"][:5] == ["7KQ2M9XD", "7KQ2M9XD", "7KQ2M9XD", "7KQ2M9X0", "11000000"]
    from_server, minimal, odd, none = r["limits"]
    assert from_server == {"max_image_bytes": 40000, "max_pdf_bytes": 400000, "max_body_bytes": 500000, "max_items": 2,
                           "max_file_bytes": 1000000, "fromServer": True}
    defaults = {"max_image_bytes": 20 * 2**20, "max_pdf_bytes": 64 * 2**20, "max_body_bytes": 64 * 2**20, "max_items": 256,
                "max_file_bytes": 256 * 2**20, "fromServer": False}
    assert minimal == none == odd == defaults  # never "no limit": odd values fall back to the defaults
