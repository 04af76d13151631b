"""Pillow plugins for HEIC/HEIF and JPEG XL, used when their extras are installed.

Pillow itself decodes AVIF and JPEG 2000; HEIC and JPEG XL need `pillow-heif`
(`medlens[heif]`) and `pillow-jxl-plugin` (`medlens[jxl]`). Registered on first use, so a lean
install neither imports nor needs them, and without them those images are `unsupported_format`
with a message naming the extra.
"""

from __future__ import annotations

import functools

# sniffed format -> the extra that brings its plugin
PLUGIN_EXTRAS: dict[str, str] = {"HEIC": "heif", "JXL": "jxl"}
# sniffed format -> the name Pillow's plugin registers, where they differ
_PILLOW_NAMES: dict[str, str] = {"HEIC": "HEIF"}


@functools.cache
def plugin_formats() -> frozenset[str]:
    """The plugin formats that are installed (registering them with Pillow once)."""
    found = set()
    try:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        found.add("HEIC")
    except ImportError:
        pass
    try:
        import pillow_jxl  # noqa: F401  (registers itself on import)

        found.add("JXL")
    except ImportError:
        pass
    return frozenset(found)


def pillow_format(fmt: str) -> str:
    """The name to pass to `Image.open(formats=...)` for a sniffed format."""
    return _PILLOW_NAMES.get(fmt, fmt)
