"""`medlens classify PATH|URL ...`: files, folders (recursive), PDFs, image URLs and page URLs.

Runs in-process with the server's own pipeline (same decoding, caps, SSRF guard, batcher and
model), so a verdict here is the verdict the extension would get. Every input is reported, bad
ones with their error, and the exit code is 1 when any input failed (skipped images are not
failures: they are too small to judge).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

from tqdm import tqdm

from medlens.commands import load_settings
from medlens.errors import MedLensError, unexpected_error
from medlens.ingest.decode import sniff_format
from medlens.ingest.fetch import Fetcher
from medlens.model.classifier import Classifier
from medlens.pipeline.batcher import MicroBatcher
from medlens.pipeline.pipeline import Pipeline
from medlens.pipeline.results import error_result
from medlens.settings import Settings
from medlens.terminal_text import printable

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
# Pictures MedLens cannot read: in a folder they still get a row (unsupported_format, from their bytes).
OTHER_IMAGE_SUFFIXES = frozenset({".svg", ".svgz", ".avif", ".heic", ".heif", ".jp2", ".j2k", ".jxl", ".ico", ".psd"})
PDF_SUFFIX = ".pdf"
INPUT_SUFFIXES = IMAGE_SUFFIXES | OTHER_IMAGE_SUFFIXES | {PDF_SUFFIX}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
FIELDS = ["source", "page", "index", "status", "label", "probability", "modality", "error"]
log = logging.getLogger(__name__)
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/pdf,image/*;q=0.9,*/*;q=0.5"

Row = dict[str, Any]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "classify",
        help="classify image files, folders, PDFs, image URLs and web pages",
        description="Classify images as medical or non-medical, in-process (no server needed). Folders are "
        "searched recursively for images and PDFs; a URL may be an image, a PDF or a web page.",
    )
    parser.add_argument("inputs", nargs="+", metavar="PATH|URL")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", dest="format", action="store_const", const="json",
                     help="a JSON array of {source, page, index, status, label, probability, modality, error}")
    out.add_argument("--csv", dest="format", action="store_const", const="csv", help="CSV with the same columns")
    parser.set_defaults(format="table")
    parser.add_argument("--threshold", type=_probability, help="probability from which an image is medical "
                        "(default: the model's own)")
    parser.add_argument("--device", default=argparse.SUPPRESS, help="auto, cpu or cuda")
    parser.add_argument("--allow-private", action="store_const", const=True,
                        help="allow URLs on loopback and private networks")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args, allow_private=args.allow_private)
    jobs = expand_inputs(args.inputs)
    progress = tqdm(total=len(jobs), unit="input", file=sys.stderr, disable=True if args.no_progress else None,
                    dynamic_ncols=True, leave=False)
    with progress:
        rows = asyncio.run(classify_inputs(jobs, settings, threshold=args.threshold, on_done=progress.update))
    write(rows, args.format, sys.stdout)
    summary(rows, sys.stderr)
    return 1 if any(r["status"] == "error" for r in rows) else 0


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Job:
    """One input: a local file ("file"), a URL ("url"), or one that cannot be read: "missing",
    "broken_link" (a symlink to nothing), "not_regular" (a pipe, socket or device: reading it
    could block forever), "unreadable_folder", or an "empty" folder."""

    kind: str
    source: str
    path: Path | None = None
    detail: str = ""


def expand_inputs(inputs: Iterable[str]) -> list[Job]:
    """Files stay as given; folders become every image-like file and PDF they hold (recursively,
    sorted), so each one the walk meets gets a row, readable or not."""
    jobs: list[Job] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = _walk(path)
            jobs.extend(found)
            if not found:
                jobs.append(Job("empty", text, path))
        elif path.is_file():
            jobs.append(Job("file", text, path))
        elif path.is_symlink() and not path.exists():
            jobs.append(Job("broken_link", text, path))
        elif path.exists():
            jobs.append(Job("not_regular", text, path))
        elif _SCHEME.match(text):
            jobs.append(Job("url", text))
        else:
            jobs.append(Job("missing", text, path))
    return jobs


def _walk(folder: Path) -> list[Job]:
    found: list[Job] = []

    def unreadable(exc: OSError) -> None:
        where = exc.filename or str(folder)
        found.append(Job("unreadable_folder", str(where), Path(where), exc.strerror or str(exc)))

    for root, _dirs, files in os.walk(folder, onerror=unreadable):
        for name in files:
            path = Path(root) / name
            if path.suffix.lower() not in INPUT_SUFFIXES:
                continue
            if path.is_file():
                found.append(Job("file", str(path), path))
            elif path.is_symlink() and not path.exists():
                found.append(Job("broken_link", str(path), path))
            elif not path.is_dir():
                found.append(Job("not_regular", str(path), path))
    return sorted(found, key=lambda job: job.source)


async def classify_inputs(
    jobs: list[Job],
    settings: Settings,
    *,
    threshold: float | None = None,
    classifier: Classifier | None = None,
    on_done: Callable[[int], Any] | None = None,
) -> list[Row]:
    """Rows for every job, in input order (a PDF or page gives one row per image)."""
    model = classifier if classifier is not None else await asyncio.to_thread(Classifier.from_settings, settings)
    # Enough inputs in flight to keep the model's batches full, few enough to bound memory.
    in_flight = asyncio.Semaphore(max(1, settings.max_batch * 2))
    async with (
        MicroBatcher.for_classifier(model, settings) as batcher,
        Fetcher(settings) as fetcher,
        Pipeline(settings, batcher, fetcher, default_threshold=model.threshold) as pipeline,
    ):

        async def one(job: Job) -> list[Row]:
            async with in_flight:
                try:
                    return await _classify_job(pipeline, job, threshold)
                finally:
                    if on_done is not None:
                        on_done(1)

        per_job = await asyncio.gather(*(one(job) for job in jobs))
    return [row for rows in per_job for row in rows]


async def _classify_job(pipeline: Pipeline, job: Job, threshold: float | None) -> list[Row]:
    settings = pipeline.settings
    try:
        if job.kind == "missing":
            raise MedLensError("not_found", f"no such file or folder: {job.source}")
        if job.kind == "broken_link":
            assert job.path is not None
            raise MedLensError("not_found", f"{job.source} is a link to {os.readlink(job.path)}, which does not exist")
        if job.kind == "not_regular":
            raise MedLensError("read_failed", f"{job.source} is not a regular file (a pipe, socket or device)")
        if job.kind == "unreadable_folder":
            raise MedLensError("read_failed", f"cannot list folder {job.source}: {job.detail}")
        if job.kind == "empty":
            raise MedLensError("not_found", f"no images or PDFs in folder {job.source}")
        if job.kind == "file":
            assert job.path is not None
            size = job.path.stat().st_size
            if size > max(settings.max_image_bytes, settings.max_pdf_bytes):
                raise MedLensError("too_large", f"{size} bytes is over the size limits")
            data = await asyncio.to_thread(job.path.read_bytes)
            return await _classify_data(pipeline, job.source, data, threshold)
        return await _classify_url(pipeline, job.source, threshold)
    except MedLensError as exc:
        return [_row(error_result(job.source, exc))]
    except FileNotFoundError:  # gone between the walk and the read
        return [_row(error_result(job.source, MedLensError("not_found", f"no such file: {job.source}")))]
    except OSError as exc:
        error = MedLensError("read_failed", f"cannot read {job.source}: {exc.strerror or exc}")
        return [_row(error_result(job.source, error))]
    except Exception as exc:  # a bug or an input nobody foresaw costs its own row, never the run
        log.exception("unexpected failure on %s", printable(job.source[:200]))
        return [_row(error_result(job.source, unexpected_error(exc)))]


async def _classify_data(pipeline: Pipeline, source: str, data: bytes, threshold: float | None) -> list[Row]:
    """A PDF gives a row per image; anything else is one image (or one error saying what it is)."""
    if sniff_format(data) == "PDF":
        answer = await pipeline.classify_pdf(data, Path(source).name, threshold=threshold)
        if answer["repaired"]:
            print(f"medlens classify: {printable(source)} is damaged; only the {answer['images']} image(s) that could be "
                  "recovered are listed", file=sys.stderr)
        return [_row(r, source=source) for r in answer["results"]]
    if len(data) > pipeline.settings.max_image_bytes:
        raise MedLensError("too_large", f"image is {len(data)} bytes, over the limit of {pipeline.settings.max_image_bytes}")
    return [_row(await pipeline.classify_bytes(source, data, threshold))]


async def _classify_url(pipeline: Pipeline, url: str, threshold: float | None) -> list[Row]:
    """An image or PDF URL is classified from one download; a page is scanned for its images."""
    if url.lstrip()[:5].lower() == "data:":
        return [_row(await pipeline.classify_url(url, threshold=threshold))]
    settings = pipeline.settings
    cap = max(settings.max_image_bytes, settings.max_pdf_bytes, settings.max_html_bytes)
    fetched = await pipeline.fetcher.fetch(url, max_bytes=cap, accept=PAGE_ACCEPT)
    if sniff_format(fetched.data) == "HTML":
        # fetch_page downloads the page again with the HTML cap and charset rules: pages are small.
        answer = await pipeline.classify_page(url, threshold=threshold)
        return [_row(r) for r in answer["results"]]
    return await _classify_data(pipeline, url, fetched.data, threshold)


def _row(result: dict[str, Any], source: str | None = None) -> Row:
    row: Row = {"source": source or result["source"]}
    if "page" in result:
        row["page"], row["index"] = result["page"], result["index"]
    for key in ("status", "label", "probability", "modality", "error"):
        row[key] = result[key]
    return row


# ---------------------------------------------------------------- output


def write(rows: list[Row], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "error": _error_text(row["error"])})
    else:
        out.write(table(rows))


def table(rows: list[Row]) -> str:
    header = ("SOURCE", "LABEL", "PROB", "MODALITY", "NOTE")
    lines = [
        (
            _shorten(printable(row["source"]) + (f" p{row['page']} #{row['index']}" if "page" in row else ""), 70),
            row["label"] or row["status"],
            f"{row['probability']:.3f}" if row["probability"] is not None else "-",
            row["modality"] or "-",
            printable(_error_text(row["error"])),
        )
        for row in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    render = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join(render(cells) for cells in [header, *lines]) + "\n"


def summary(rows: list[Row], out: TextIO) -> None:
    counts = {key: 0 for key in ("medical", "non-medical", "skipped", "error")}
    for row in rows:
        counts[row["label"] if row["status"] == "ok" else row["status"]] += 1
    parts = ", ".join(f"{n} {key if key != 'error' else 'failed'}" for key, n in counts.items())
    out.write(f"{len(rows)} results: {parts}\n")


def _error_text(error: dict[str, str] | None) -> str:
    return f"{error['code']}: {error['message']}" if error else ""


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width // 2 - 1] + "…" + text[-(width - width // 2):]
