"""The browsers' native messaging framing: each message is a 32-bit length in native byte order
followed by that many bytes of UTF-8 JSON, on stdin (browser -> host) and stdout (host -> browser).

Chrome and Firefox refuse a host message over 1 MB and close the port; the other direction is
capped here (a MedLens request is a few bytes), so a bad or hostile sender cannot make the host
allocate gigabytes from a forged length.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

HEADER = struct.Struct("=I")  # native byte order, as both browsers write it
MAX_OUTGOING_BYTES = 1024 * 1024  # the browsers' limit for one host -> browser message
MAX_INCOMING_BYTES = 64 * 1024  # far above any request MedLens knows; the browsers allow 64 MiB


class ProtocolError(Exception):
    """The stream cannot be read as native messages any more (too long, not JSON, cut short).

    `code` is a MedLens error code (`body_too_large`, `invalid_json`), for the log and for the one
    error answer the host sends before it stops reading."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def encode(message: Any) -> bytes:
    """One framed message; ProtocolError when it would be over the browsers' 1 MB limit."""
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_OUTGOING_BYTES:
        raise ProtocolError("body_too_large", f"a {len(body)}-byte answer is over the browsers' {MAX_OUTGOING_BYTES}-byte limit")
    return HEADER.pack(len(body)) + body


def read_message(stream: BinaryIO, max_bytes: int = MAX_INCOMING_BYTES) -> Any | None:
    """The next message, or None at a clean end of input (the browser closed the port).

    The length is checked before any of the body is read, so an oversized message costs nothing."""
    header = _read_exactly(stream, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    if length > max_bytes:
        raise ProtocolError("body_too_large", f"a {length}-byte message is over the host's {max_bytes}-byte limit")
    body = _read_exactly(stream, length) if length else b""
    if body is None:
        raise ProtocolError("invalid_json", f"the input ended inside a {length}-byte message")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("invalid_json", "a message is not UTF-8 JSON") from None


def write_message(stream: BinaryIO, message: Any) -> None:
    stream.write(encode(message))
    stream.flush()


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    """n bytes, or None when the input ends before the first one; b'' short reads are retried."""
    chunks: list[bytes] = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            if got == 0:
                return None
            raise ProtocolError("invalid_json", f"the input ended after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
