"""Text from inputs (file names, URLs, error messages quoting them) made safe to print on a terminal.

A file name or a page's image URL may hold escape sequences that retitle the window, write the
clipboard (OSC 52) or move the cursor, and a newline that splits a table row. Everything the CLI
prints for people goes through `printable`; `--json` and `--csv` output stays exact (their
encoders quote what they must, and a program reads them, not a terminal).
"""

from __future__ import annotations

import re

# C0 and C1 controls and DEL, plus the format characters that reorder or hide text (bidi
# overrides and isolates, zero-width marks): each is shown as a visible escape instead.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object) -> str:
    """`text` with every control and text-reordering character shown as an escape (`\\e`, `\\n`,
    `\\x07`, `\\u202e`), so what reaches the terminal is exactly the characters it shows."""
    value = text if isinstance(text, str) else str(text)
    if value.isprintable() and not _UNSAFE.search(value):
        return value
    return _UNSAFE.sub(_escape, value)
