"""Office documents: the images embedded in DOCX/PPTX/XLSX (Office Open XML) and ODT/ODP/ODS
(OpenDocument) files.

Both are ZIP packages that keep every embedded picture as a member of a documented media folder
(`word/media/`, `ppt/media/`, `xl/media/`; `Pictures/`), so the images are read with the archive
reader (and its caps) from there, in package order, each named by its member. EMF/WMF vector
pictures are `unsupported_format` (no renderer here). A password-protected Office file is not a
ZIP at all but an OLE compound file holding an `EncryptedPackage` stream: `encrypted`.
"""

from __future__ import annotations

from typing import Iterable

from medlens.errors import MedLensError

OOXML_MEDIA = ("word/media/", "ppt/media/", "xl/media/")
ODF_MEDIA = ("Pictures/",)
ODF_MIMETYPE_PREFIX = b"application/vnd.oasis.opendocument."
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")


def zip_kind(names: Iterable[str], mimetype: bytes | None, name: str) -> str:
    """What a ZIP package is, from its member names and `mimetype` member: office, document
    (EPUB, XPS, CBZ: PyMuPDF reads them), or a plain archive."""
    listed = list(names)
    if any(n.endswith(".fdseq") for n in listed) or (mimetype or b"").startswith(b"application/oxps"):
        return "document"
    if (mimetype or b"").strip() == b"application/epub+zip":
        return "document"
    if "[Content_Types].xml" in listed and any(n.startswith(OOXML_MEDIA) or n.split("/")[0] in ("word", "ppt", "xl")
                                               for n in listed):
        return "office"
    if (mimetype or b"").startswith(ODF_MIMETYPE_PREFIX):
        return "office"
    if name.lower().endswith(".cbz"):
        return "document"
    return "archive"


def is_media(name: str) -> bool:
    """Whether a package member is an embedded picture (the media folders of both formats)."""
    return name.startswith(OOXML_MEDIA) or name.startswith(ODF_MEDIA)


def refuse_ole(data: bytes) -> MedLensError:
    """Why an OLE compound file is not read: encrypted Office, or a legacy binary document."""
    if _ENCRYPTED_PACKAGE in data[:1 << 20] or _ENCRYPTED_PACKAGE in data[-(1 << 20):]:
        return MedLensError("encrypted", "the Office file is password-protected; save it without a password")
    return MedLensError("unsupported_format", "legacy binary Office files (.doc, .ppt, .xls) are not read; "
                        "save as DOCX, PPTX or XLSX")
