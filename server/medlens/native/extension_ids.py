"""The extension's IDs, the only callers the native host serves.

Chrome derives an extension's ID from the public key in manifest.json's `"key"` (sha256 of the
DER key, first 32 hex digits written with the letters a-p), so the ID is the same wherever the
extension is loaded from; the private key is not in the repository (it is needed only to sign a
CRX). Firefox takes the ID from `browser_specific_settings.gecko.id`. A test checks both
constants against manifest.json.
"""

from __future__ import annotations

import base64
import hashlib

CHROME_EXTENSION_ID = "kckdpnimnenhdmiholddncdmbpolkike"
FIREFOX_EXTENSION_ID = "medlens@medlens.local"
CHROME_ORIGIN = f"chrome-extension://{CHROME_EXTENSION_ID}"
ALLOWED_CALLERS = frozenset({CHROME_ORIGIN, FIREFOX_EXTENSION_ID})


def chrome_extension_id(manifest_key: str) -> str:
    """Chrome's ID for a manifest `"key"` (base64 DER SubjectPublicKeyInfo)."""
    digest = hashlib.sha256(base64.b64decode(manifest_key)).hexdigest()[:32]
    return "".join("abcdefghijklmnop"[int(c, 16)] for c in digest)
