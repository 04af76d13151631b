"""INPUTs of `medlens batch` -> sources: one string per file or URL, streamed, never listed whole.

An INPUT is a folder (walked recursively for images and PDFs, in sorted order), an image or PDF
file, a URL, or a list: a `.txt` (one path or URL a line; blank lines and `#` comments ignored),
or a `.csv` / `.parquet` with a `url` or `path` column. Relative paths in a list are relative to
the list's folder; list entries may be folders but not further lists. A source that names nothing
is kept: it becomes an error row (`not_found`), so every input is accounted for.

Lists are read a line (or a Parquet batch) at a time, so a list of 100 M URLs costs the memory of
one batch, here and in the Ray engine, which reads the same lists with Ray's own readers and
hands each entry to `expand_entry`.
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
PARQUET_LIST_BATCH_ROWS = 65_536
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def is_url(text: str) -> bool:
    return bool(_SCHEME.match(text)) and not Path(text).exists()


def is_list(text: str) -> bool:
    return not is_url(text) and Path(text).suffix.lower() in LIST_SUFFIXES and Path(text).is_file()


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Every source, in input order, each once (the first occurrence wins). For small inputs and
    tests; the engines stream `iter_sources` instead."""
    return list(dict.fromkeys(iter_sources(inputs)))


def iter_sources(inputs: Iterable[str]) -> Iterator[str]:
    """Every source of `inputs` in input order, duplicates included (the engines drop them)."""
    for text in inputs:
        if is_list(text):
            path = Path(text)
            for entry in iter_list(path):
                yield from expand_entry(entry, path.parent)
        else:
            yield from expand_entry(text, None)


def expand_entry(entry: str, list_dir: Path | str | None) -> Iterator[str]:
    """The sources one entry names: itself (a URL, a file, a missing path) or a folder's files.

    `list_dir` is the folder of the list the entry came from (relative paths are taken from it),
    or None for an INPUT given directly."""
    if is_url(entry):
        yield entry
        return
    path = Path(entry)
    if list_dir is not None and not path.is_absolute():
        path = Path(os.path.normpath(Path(list_dir) / path))
    if path.is_dir():
        yield from walk_folder(path)
    else:
        yield str(path) if list_dir is not None else entry  # loading decides: not_found, unsupported_format, ...


def walk_folder(folder: Path) -> Iterator[str]:
    """Images and PDFs under `folder`, one directory at a time (sorted), never the whole tree at once."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES | {PDF_SUFFIX}:
                yield os.path.join(root, name)


def iter_list(path: Path) -> Iterator[str]:
    """The entries of a .txt, .csv or .parquet list (column `url` or `path`), streamed."""
    suffix = path.suffix.lower()
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
    from medlens.batch.output import require_pyarrow

    for batch in require_pyarrow().ParquetFile(path).iter_batches(columns=[column], batch_size=PARQUET_LIST_BATCH_ROWS):
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


def parquet_list_names(path: Path) -> list[str]:
    from medlens.batch.output import require_pyarrow

    try:
        return list(require_pyarrow().read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise MedLensError("invalid_request", f"cannot read Parquet list {path}: {exc}") from exc


def list_column(names: Iterable[str], path: Path) -> str:
    names = list(names)
    for column in LIST_COLUMNS:
        if column in names:
            return column
    raise MedLensError("invalid_request", f"list {path} has no 'url' or 'path' column (columns: {', '.join(names)})")
