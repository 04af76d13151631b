"""The extension's logic that needs no browser, under Node's own test runner (`node --test
tests/node/`), as part of the README's test command; and the one wording module kept one: the
server's page ships a byte-equal copy, and it words every error code the server has."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from fixtures.data import REPO_ROOT
from medlens.errors import HTTP_STATUS

NODE = shutil.which("node")
WORDING = REPO_ROOT / "extension" / "lib" / "wording.js"
PAGE_WORDING = REPO_ROOT / "server" / "medlens" / "serve" / "page" / "wording.js"
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


@needs_node
def test_node_unit_tests_pass():
    out = subprocess.run([NODE, "--test", "tests/node/"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    failed = [line for line in out.stdout.splitlines() if line.startswith("not ok")]
    assert out.returncode == 0, "\n".join(failed) + "\n" + out.stdout[-6000:] + out.stderr[-2000:]
    assert "# fail 0" in out.stdout and "# pass 0" not in out.stdout, out.stdout[-2000:]


def test_server_page_wording_is_the_extensions_file():
    assert PAGE_WORDING.read_bytes() == WORDING.read_bytes(), (
        "server/medlens/serve/page/wording.js must equal extension/lib/wording.js (edit the extension's file, then "
        "cp extension/lib/wording.js server/medlens/serve/page/wording.js)")


@needs_node
def test_wording_covers_every_server_error_code():
    script = (f"require({json.dumps(str(WORDING))});"
              "console.log(JSON.stringify(Object.keys(globalThis.MedLens.wording.ERRORS)))")
    out = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    missing = sorted(set(HTTP_STATUS) - set(json.loads(out.stdout)))
    assert not missing, f"add these codes to ERRORS in extension/lib/wording.js (and copy it to the page): {missing}"
