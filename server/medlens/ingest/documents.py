"""E-books and fixed-layout documents PyMuPDF opens (EPUB, XPS/OpenXPS, CBZ, FB2, MOBI) -> the
images on their pages, each with its page number.

MuPDF lays the document out and writes it as a PDF (`convert_to_pdf`, at most `max_pdf_pages`
pages), whose images are then taken exactly as a PDF's are (`pdf.extract_pdf_images`: the same
caps, deduplication and thumbnails). MuPDF parses hostile bytes, so this runs only inside the
killable media worker processes (`media_worker.py`).
"""

from __future__ import annotations

import pymupdf

from medlens.errors import MedLensError
from medlens.ingest.items import Item, Loaded, Place
from medlens.ingest.pdf import extract_pdf_images
from medlens.settings import Settings

FILETYPES = ("epub", "xps", "cbz", "fb2", "mobi")


def extract_document(data: bytes, filetype: str, settings: Settings) -> Loaded:
    if filetype not in FILETYPES:
        raise MedLensError("unsupported_format", f"{filetype} documents are not read")
    pymupdf.TOOLS.mupdf_display_errors(False)
    try:
        doc = pymupdf.open(stream=data, filetype=filetype)
    except Exception as exc:  # MuPDF raises assorted types for damaged input
        raise MedLensError("decode_failed", f"cannot open the {filetype.upper()} document: {exc}") from exc
    with doc:
        if doc.needs_pass:
            raise MedLensError("encrypted", f"the {filetype.upper()} document needs a password")
        pages = doc.page_count
        if pages == 0:
            raise MedLensError("no_images", f"the {filetype.upper()} document has no pages")
        try:
            pdf = doc.convert_to_pdf(0, min(pages, settings.max_pdf_pages) - 1)
        except Exception as exc:
            raise MedLensError("decode_failed", f"cannot lay out the {filetype.upper()} document: {exc}") from exc
    extraction = extract_pdf_images(pdf, settings.replace(max_pdf_bytes=max(len(pdf), settings.max_pdf_bytes)))
    items = [Item(Place(page=i.page, index=i.index), i.image, i.width, i.height, thumbnail=i.thumbnail)
             for i in extraction.images]
    return Loaded("document", items, pages=pages, truncated=pages > settings.max_pdf_pages or extraction.truncated)
