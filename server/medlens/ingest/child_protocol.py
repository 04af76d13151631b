"""How the server talks to its extraction children (pdf.py's PDF child, media_worker.py's video
and e-book child): the framing, the child's serving loop, and what either side needs of it.

Frames on the child's stdin/stdout are an 8-byte big-endian length and a payload. Out first, once
the child's imports are done: its READY word. Then for each job, in: two frames (a JSON header or
settings, and the bytes); out: the child's answer, a JSON header and the frames it announces, or
`{"error": {...}}`. JSON, not pickle: the child has parsed hostile bytes and its answer is read as
data only. It serves jobs until its stdin ends.
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
from typing import BinaryIO, Callable

from medlens.errors import MedLensError

_LEN = struct.Struct(">Q")


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def read_frame(stream: BinaryIO) -> bytes:
    size = _LEN.unpack(_read_exactly(stream, _LEN.size))[0]
    return _read_exactly(stream, size)


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = stream.read(size - len(buf))
        if not chunk:
            raise EOFError("input ended early")
        buf += chunk
    return bytes(buf)


async def read_frame_async(stdout: asyncio.StreamReader) -> bytes:
    size = _LEN.unpack(await stdout.readexactly(_LEN.size))[0]
    return await stdout.readexactly(size)


def serve_jobs(ready: bytes, answer: Callable[[BinaryIO, bytes, bytes], None]) -> int:
    """A child's main loop: say `ready`, then `answer(out, header, data)` each job on stdin until it
    ends. stdout is the protocol stream only: what a library prints goes to stderr."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    stdin = sys.stdin.buffer
    out.write(frame(ready))
    out.flush()
    while True:
        try:
            header = read_frame(stdin)
            data = read_frame(stdin)
        except EOFError:
            out.close()
            return 0
        answer(out, header, data)
        out.flush()


class ChildReported(MedLensError):
    """An error the child answered with (encrypted, malformed, ...): it read the whole input and
    its output stream is intact, so a warm child can take the next job."""


def close_input(proc: asyncio.subprocess.Process) -> None:
    """Close a child's stdin: an idle child exits on it, and a killed one's transport can only
    close (before the event loop does) once every pipe is closed."""
    if proc.stdin is not None and not proc.stdin.is_closing():
        proc.stdin.close()
