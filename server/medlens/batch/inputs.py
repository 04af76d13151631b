"""INPUTs of `medlens batch` -> sources: one string per file or URL, each classified once.

An INPUT is a folder (searched recursively for images and PDFs, sorted), an image or PDF file,
a URL, or a list: a `.txt` (one path or URL a line; blank lines and `#` comments ignored), or a
`.csv` / `.parquet` with a `url` or `path` column. Relative paths in a list are relative to the
list's folder; list entries may be folders but not further lists. A source that names nothing is
kept: it becomes an error row (`not_found`), so every input is accounted for.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Iterable, Iterator

from medlens.errors import MedLensError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
PDF_SUFFIX = ".pdf"
LIST_SUFFIXES = frozenset({".txt", ".csv", ".parquet"})
LIST_COLUMNS = ("url", "path")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def is_url(text: str) -> bool:
    return bool(_SCHEME.match(text)) and not Path(text).exists()


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Every source, in input order, each once (the first occurrence wins)."""
    seen: dict[str, None] = {}
    for text in inputs:
        for source in _expand_one(text, lists=True):
            seen.setdefault(source, None)
    return list(seen)


def _expand_one(text: str, *, lists: bool) -> Iterator[str]:
    if is_url(text):
        yield text
        return
    path = Path(text)
    if path.is_dir():
        yield from (
            str(p) for p in sorted(path.rglob("*"))
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | {PDF_SUFFIX}
        )
    elif lists and path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        for entry in read_list(path):
            if is_url(entry):
                yield entry
            else:
                entry_path = Path(entry)
                resolved = entry_path if entry_path.is_absolute() else path.parent / entry_path
                yield from _expand_one(os.path.normpath(resolved), lists=False)
    else:
        yield text  # a file, or a missing path: loading decides (not_found, unsupported_format, ...)


def read_list(path: Path) -> list[str]:
    """The entries of a .txt, .csv or .parquet list (column `url` or `path`)."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            column = _list_column(reader.fieldnames or [], path)
            return [row[column].strip() for row in reader if (row.get(column) or "").strip()]
    from medlens.batch.output import require_pyarrow

    pq = require_pyarrow()
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise MedLensError("invalid_request", f"cannot read Parquet list {path}: {exc}") from exc
    column = _list_column(schema.names, path)
    values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


def _list_column(names: Iterable[str], path: Path) -> str:
    names = list(names)
    for column in LIST_COLUMNS:
        if column in names:
            return column
    raise MedLensError("invalid_request", f"list {path} has no 'url' or 'path' column (columns: {', '.join(names)})")
