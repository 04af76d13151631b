"""Typed errors: every failure MedLens reports has a stable `code` and a human message.

Item-level failures (one bad URL among many) travel as values inside results; request-level
failures are raised and turned into JSON by the server's error middleware, the one place that
knows about HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# code -> HTTP status when the error fails a whole request. Item errors ignore the status.
HTTP_STATUS: dict[str, int] = {
    "invalid_url": 400,
    "invalid_request": 400,
    "invalid_json": 400,
    "scheme_not_allowed": 400,
    "address_not_allowed": 400,
    "fetch_failed": 502,
    "fetch_timeout": 504,
    "too_many_redirects": 502,
    "too_large": 413,
    "not_an_image": 415,
    "unsupported_format": 415,
    "decode_failed": 422,
    "too_many_pixels": 413,
    "too_small": 422,
    "pdf_encrypted": 422,
    "pdf_malformed": 422,
    "pdf_timeout": 422,
    "page_failed": 502,
    "too_many_items": 413,
    "queue_full": 503,
    "unauthorized": 401,
    "pairing_code_wrong": 403,
    "pairing_code_expired": 410,
    "forbidden_origin": 403,
    "forbidden_host": 403,
    "forbidden_peer": 403,
    "body_too_large": 413,
    "body_timeout": 408,
    "unsupported_media_type": 415,
    "not_found": 404,
    "read_failed": 500,
    "config_unwritable": 500,
    "method_not_allowed": 405,
    "model_error": 500,
    "backbone_unavailable": 500,
    "weights_invalid": 500,
    "head_mismatch": 500,
    "server_start_failed": 500,
    "port_in_use": 409,
    "install_failed": 500,
    "internal": 500,
    # containers (ingest/load.py and its extractors) and `medlens batch`
    "no_images": 422,
    "missing_dependency": 501,
    "archive_bomb": 413,
    "unsafe_member": 422,
    "encrypted": 422,
    "too_long": 413,
    "extraction_timeout": 422,
}


@dataclass
class MedLensError(Exception):
    """A failure with a machine-readable code, safe to show to a user."""

    code: str
    message: str

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.message}")

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ModelError(MedLensError):
    """The model cannot be built or loaded (missing or wrong weights, mismatched head)."""


_ADDRESS = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>|\b0x[0-9a-fA-F]{8,}\b")


def plain_reason(exc: BaseException) -> str:
    """A library exception's text without object reprs or memory addresses (`<_io.BytesIO object
    at 0x7f…>`): messages reach web pages and logs, and addresses help an attacker defeat ASLR."""
    return " ".join(_ADDRESS.sub("the input", str(exc)).split()) or type(exc).__name__


def unexpected_error(exc: BaseException) -> MedLensError:
    """The item error for a failure nobody foresaw (a bug, an odd library exception): `internal`,
    naming only the exception's type; the traceback goes to the log, not to the client."""
    return MedLensError("internal", f"unexpected {type(exc).__name__} while reading this input (details in the server log)")
