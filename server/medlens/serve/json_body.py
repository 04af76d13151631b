"""JSON request bodies, sized up before they are parsed.

`json.loads` makes a Python object per value: a 30 MB body of `1,1,1,…` became 15 million ints
(1.2 GB, 3.4 s on the event loop) before any check could look at it. So the raw bytes are measured
first, at C speed: strings are blanked out (a `data:` URL is one value, however long), then the
values (commas and brackets) are counted and the nesting depth is read off the brackets, which
there can be at most `max_json_values` of. Only a body within both limits is parsed. The caller
runs this off the event loop for large bodies.
"""

from __future__ import annotations

import json
import re
from typing import Any

from medlens.errors import MedLensError, plain_reason

# A JSON string, escapes included, as one token (the unrolled-loop form: linear, no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def parse_json_body(raw: bytes, *, max_depth: int, max_values: int) -> Any:
    """The parsed body, or `invalid_json` saying which limit it broke (or why it is not JSON)."""
    skeleton = _STRING.sub(b'""', raw)
    values = skeleton.count(b",") + skeleton.count(b"[") + skeleton.count(b"{")
    if values > max_values:
        raise MedLensError("invalid_json", f"body holds more than {max_values} values (max_json_values)")
    depth = deepest = 0
    for match in _BRACKET.finditer(skeleton):
        depth += 1 if match.group() in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    if deepest > max_depth:
        raise MedLensError("invalid_json", f"body is nested more than {max_depth} levels deep")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MedLensError("invalid_json", f"body is not valid JSON: {plain_reason(exc)}") from exc
    except RecursionError:  # unreachable within max_depth, kept as the last line of defence
        raise MedLensError("invalid_json", "body is nested too deeply to parse") from None
