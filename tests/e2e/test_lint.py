"""`web-ext lint` on exactly what ships (manifest.json + extension/)."""

from __future__ import annotations

import json
import subprocess

import pytest

from fixtures.data import REPO_ROOT

WEB_EXT = REPO_ROOT / "node_modules" / ".bin" / "web-ext"
# The one unavoidable warning of a manifest that serves both browsers (e2e-testing.md §9).
ALLOWED_WARNINGS = {"BACKGROUND_SERVICE_WORKER_IGNORED"}


def test_web_ext_lint(ext_dir, reports_dir):
    if not WEB_EXT.exists():
        pytest.fail("web-ext is not installed: run scripts/setup-e2e.sh (npm ci)")
    proc = subprocess.run(
        [str(WEB_EXT), "lint", "--source-dir", str(ext_dir), "--no-config-discovery", "--output", "json"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    (reports_dir / "web-ext-lint.json").write_text(proc.stdout)
    report = json.loads(proc.stdout)
    problems = [(m["code"], m.get("file"), m.get("message")) for m in report["errors"]]
    problems += [(m["code"], m.get("file"), m.get("message")) for m in report["warnings"] if m["code"] not in ALLOWED_WARNINGS]
    assert report["summary"]["errors"] == 0 and not problems, problems
