"""JSON request bodies, sized up before they are parsed.

`json.loads` makes a Python object per value: a 30 MB body of `1,1,1,…` became 15 million ints
(1.2 GB, 3.4 s on the event loop) before any check could look at it. So the raw bytes are measured
first, at C speed and without copies (a regex rewrite of the body would hold the GIL, and so the
event loop, for seconds): the values are bounded by counting commas and brackets, and the
nesting depth is read off the brackets outside strings. Only a body within both limits is
parsed. The caller runs this off the event loop for large bodies.
"""

from __future__ import annotations

import json
import re
from typing import Any

from medlens.errors import MedLensError, plain_reason

# What the depth scan stops at: brackets, and the quotes and backslashes that say where strings are.
_STRUCTURE = re.compile(rb'[\[\]{}"\\]')


def parse_json_body(raw: bytes, *, max_depth: int, max_values: int) -> Any:
    """The parsed body, or `invalid_json` saying which limit it broke (or why it is not JSON).

    Every step before `json.loads` is linear and allocates nothing in proportion to the body:
    `bytes.count` bounds the values from above (commas inside strings count too, which only a
    body of thousands of comma-laden URLs would notice), then one pass over the structural
    characters, skipping strings, finds the depth; a body with far more quotes and backslashes
    than values allow is refused rather than walked.
    """
    values = raw.count(b",") + raw.count(b"[") + raw.count(b"{")
    if values > max_values:
        raise MedLensError("invalid_json", f"body holds more than {max_values} values (max_json_values)")
    depth = deepest = steps = 0
    in_string = False
    skip_at = -1
    for match in _STRUCTURE.finditer(raw):
        steps += 1
        if steps > 8 * max_values + 64:
            raise MedLensError("invalid_json", "body has more structure than its values allow (max_json_values)")
        at, char = match.start(), raw[match.start()]
        if at == skip_at:
            continue
        if in_string:
            if char == 0x5C:  # backslash: the next character is escaped
                skip_at = at + 1
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif char in (0x5D, 0x7D):
            depth -= 1
    if deepest > max_depth:
        raise MedLensError("invalid_json", f"body is nested more than {max_depth} levels deep")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MedLensError("invalid_json", f"body is not valid JSON: {plain_reason(exc)}") from exc
    except RecursionError:  # unreachable within max_depth, kept as the last line of defence
        raise MedLensError("invalid_json", "body is nested too deeply to parse") from None
