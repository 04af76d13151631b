"""What an input names, and the one table of file suffixes and media types MedLens takes.

An input is a string: a file, a folder (walked recursively, one directory at a time, sorted), a
URL (`http(s):`, or a `data:` URL), or a list of them (`.txt`, one a line, blank lines and `#`
comments ignored; `.csv` / `.parquet` with a `url` or `path` column; relative paths are taken
from the list's folder; lists do not nest). `medlens classify`, `medlens batch` (both engines)
and the server's routes all expand inputs here, so a folder gives the same sources everywhere.

A source that names nothing readable is kept as it is: `load.read_local` gives it its error
(not_found, read_failed), so every input is accounted for. The suffix of a file only decides
which files a folder walk picks up; what a file *is* is always sniffed from its bytes.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

from medlens.errors import MedLensError

# suffix -> what MedLens expects inside (the bytes decide; this only picks files out of folders)
SUFFIX_KINDS: dict[str, str] = {
    **dict.fromkeys((".jpg", ".jpeg", ".jpe", ".png", ".apng", ".gif", ".webp", ".bmp", ".tif", ".tiff",
                     ".avif", ".jp2", ".j2k", ".jpf", ".jpx", ".heic", ".heif", ".jxl"), "image"),
    # pictures MedLens refuses: in a folder they still get a row, saying why (unsupported_format)
    **dict.fromkeys((".svg", ".svgz", ".ico", ".psd", ".emf", ".wmf"), "image"),
    ".pdf": "pdf",
    **dict.fromkeys((".epub", ".xps", ".oxps", ".cbz", ".fb2", ".mobi"), "document"),
    **dict.fromkeys((".docx", ".docm", ".pptx", ".pptm", ".xlsx", ".xlsm", ".odt", ".odp", ".ods"), "office"),
    **dict.fromkeys((".zip", ".tar", ".tgz", ".tar.gz"), "archive"),
    ".dcm": "dicom",
    **dict.fromkeys((".mp4", ".m4v", ".webm", ".mov", ".avi", ".mkv"), "video"),
}
LIST_SUFFIXES = frozenset({".txt", ".csv", ".parquet"})
LIST_COLUMNS = ("url", "path")
PARQUET_LIST_BATCH_ROWS = 65_536

# Content-Types the upload routes take as a raw body (anything else must be multipart).
RAW_MEDIA_PREFIXES: tuple[str, ...] = (
    "image/", "video/", "application/octet-stream", "application/pdf", "application/zip", "application/x-zip",
    "application/x-tar", "application/gzip", "application/dicom", "application/epub+zip", "application/oxps",
    "application/vnd.ms-xpsdocument", "application/vnd.openxmlformats-officedocument.",
    "application/vnd.oasis.opendocument.", "application/vnd.comicbook+zip", "application/x-cbz",
    "application/x-fictionbook+xml", "application/x-mobipocket-ebook",
)
# What a file picker or drop zone offers (the web page and the popup read this from the README).
ACCEPT = ",".join(sorted(SUFFIX_KINDS))

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def suffix_of(name: str) -> str:
    """The suffix the table knows for `name` (`.tar.gz` as one), lower case; '' if none."""
    lowered = name.lower()
    if lowered.endswith(".tar.gz"):
        return ".tar.gz"
    return os.path.splitext(lowered)[1]


def is_data_url(text: str) -> bool:
    return isinstance(text, str) and text.lstrip()[:5].lower() == "data:"


def is_url(text: str) -> bool:
    """A scheme and not an existing path (`C:` or `a:b.png` in the current folder is a file)."""
    return bool(_SCHEME.match(text)) and not Path(text).exists()


def is_list(text: str) -> bool:
    return not is_url(text) and suffix_of(text) in LIST_SUFFIXES and Path(text).is_file()


def wanted_in_folder(name: str) -> bool:
    return suffix_of(name) in SUFFIX_KINDS


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Every source, in input order, each once (the first occurrence wins)."""
    return list(dict.fromkeys(iter_sources(inputs)))


def iter_sources(inputs: Iterable[str]) -> Iterator[str]:
    """Every source of `inputs` in input order, duplicates included, streamed (a list of 100 M
    URLs costs the memory of one line or Parquet batch)."""
    for text in inputs:
        if is_list(text):
            path = Path(text)
            for entry in iter_list(path):
                yield from expand_entry(entry, path.parent)
        else:
            yield from expand_entry(text, None)


def expand_entry(entry: str, list_dir: Path | str | None) -> Iterator[str]:
    """The sources one entry names: itself (a URL, a file, a missing path) or a folder's files.

    `list_dir` is the folder of the list the entry came from, or None for an INPUT given directly.
    A folder with nothing to classify is kept as itself (its load says so)."""
    if is_url(entry):
        yield entry
        return
    path = Path(entry)
    if list_dir is not None and not path.is_absolute():
        path = Path(os.path.normpath(Path(list_dir) / path))
    name = str(path) if list_dir is not None else entry
    if path.is_dir():
        found = False
        for source in walk_folder(path):
            found = True
            yield source
        if not found:
            yield name
    else:
        yield name


def walk_folder(folder: Path) -> Iterator[str]:
    """Files under `folder` whose suffix is in the table, one directory at a time (sorted); a
    sub-folder that cannot be listed is yielded itself, so it gets its own error row."""
    unreadable: list[str] = []
    for root, dirs, files in os.walk(folder, onerror=lambda exc: unreadable.append(str(exc.filename or folder))):
        while unreadable:
            yield unreadable.pop()
        dirs.sort()
        for name in sorted(files):
            if wanted_in_folder(name) or "." not in name and is_dicom_file(os.path.join(root, name)):
                yield os.path.join(root, name)
    yield from unreadable


def is_dicom_file(path: str) -> bool:
    """A suffix-less file with the DICM preamble (how PACS exports name their files)."""
    try:
        if not os.path.isfile(path):  # a pipe would block the walk
            return False
        with open(path, "rb") as fh:
            return fh.read(132)[128:] == b"DICM"
    except OSError:
        return False


def iter_list(path: Path) -> Iterator[str]:
    """The entries of a .txt, .csv or .parquet list (column `url` or `path`), streamed."""
    suffix = suffix_of(str(path))
    if suffix == ".txt":
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                entry = text_list_entry(line)
                if entry:
                    yield entry
        return
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            column = list_column(reader.fieldnames or [], path)
            for row in reader:
                entry = (row.get(column) or "").strip()
                if entry:
                    yield entry
        return
    column = list_column(parquet_list_names(path), path)
    for batch in require_parquet().ParquetFile(path).iter_batches(columns=[column], batch_size=PARQUET_LIST_BATCH_ROWS):
        for value in batch.column(0).to_pylist():
            entry = str(value).strip() if value is not None else ""
            if entry:
                yield entry


def text_list_entry(line: str) -> str | None:
    """The entry on one line of a .txt list, or None for a blank line or a `#` comment."""
    entry = line.strip()
    return entry if entry and not entry.startswith("#") else None


def csv_list_column(path: Path) -> str:
    """The list column of a .csv list, from its header line only."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list_column(next(csv.reader(fh), []), path)


def require_parquet() -> Any:
    """pyarrow.parquet, or a clear error naming the extra that brings it."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MedLensError(
            "missing_dependency", f"Parquet needs pyarrow: pip install 'medlens[scale]' ({exc})"
        ) from exc
    return pq


def parquet_list_names(path: Path) -> list[str]:
    try:
        return list(require_parquet().read_schema(path).names)
    except MedLensError:
        raise
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise MedLensError("invalid_request", f"cannot read Parquet list {path}: {exc}") from exc


def list_column(names: Iterable[str], path: Path) -> str:
    names = list(names)
    for column in LIST_COLUMNS:
        if column in names:
            return column
    raise MedLensError("invalid_request", f"list {path} has no 'url' or 'path' column (columns: {', '.join(names)})")
