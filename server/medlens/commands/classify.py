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
import sys
from typing import Any, Callable, TextIO

from tqdm import tqdm

from medlens.commands import load_settings
from medlens.errors import unexpected_error
from medlens.ingest.fetch import Fetcher
from medlens.ingest.sources import expand_inputs
from medlens.model.classifier import Classifier
from medlens.pipeline.batcher import MicroBatcher
from medlens.pipeline.pipeline import Pipeline
from medlens.pipeline.results import error_result
from medlens.settings import Settings
from medlens.terminal_text import printable

# Where an image sits in its source, when it is inside one (PDF page, archive member, video frame).
PLACE_FIELDS = ["member", "page", "index", "frame", "time_s", "dicom_modality", "role"]
FIELDS = ["source", *PLACE_FIELDS, "status", "label", "probability", "modality", "error"]
log = logging.getLogger(__name__)

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
    sources = expand_inputs(args.inputs)
    progress = tqdm(total=len(sources), unit="input", file=sys.stderr, disable=True if args.no_progress else None,
                    dynamic_ncols=True, leave=False)
    with progress:
        rows = asyncio.run(classify_inputs(sources, settings, threshold=args.threshold, on_done=progress.update))
    write(rows, args.format, sys.stdout)
    summary(rows, sys.stderr)
    return 1 if any(r["status"] == "error" for r in rows) else 0


# ---------------------------------------------------------------- inputs


async def classify_inputs(
    sources: list[str],
    settings: Settings,
    *,
    threshold: float | None = None,
    classifier: Classifier | None = None,
    on_done: Callable[[int], Any] | None = None,
) -> list[Row]:
    """Rows for every source, in input order (a container or page gives one row per image)."""
    model = classifier if classifier is not None else await asyncio.to_thread(Classifier.from_settings, settings)
    # Enough inputs in flight to keep the model's batches full, few enough to bound memory.
    in_flight = asyncio.Semaphore(max(1, settings.max_batch * 2))
    async with (
        MicroBatcher.for_classifier(model, settings) as batcher,
        Fetcher(settings) as fetcher,
        Pipeline(settings, batcher, fetcher, default_threshold=model.threshold, thumbnails=False) as pipeline,
    ):

        async def one(source: str) -> list[Row]:
            async with in_flight:
                try:
                    results = await pipeline.classify_source(source, threshold=threshold)
                except Exception as exc:  # a bug or an input nobody foresaw costs its own row, never the run
                    log.exception("unexpected failure on %s", printable(source[:200]))
                    results = [error_result(source, unexpected_error(exc))]
                finally:
                    if on_done is not None:
                        on_done(1)
            recovered = sum(1 for r in results if r.get("repaired"))
            if recovered:
                print(f"medlens classify: {printable(source)} is damaged; only the {recovered} image(s) that could be "
                      "recovered are listed", file=sys.stderr)
            return [_row(r, source) for r in results]

        per_source = await asyncio.gather(*(one(source) for source in sources))
    return [row for rows in per_source for row in rows]


def _row(result: dict[str, Any], given: str) -> Row:
    """A row: the source as given (a page's images keep their own URLs), where it sits, the answer."""
    inside = any(key in result for key in PLACE_FIELDS) or result.get("kind") is not None
    row: Row = {"source": given if inside or result["source"] == given else result["source"]}
    for key in PLACE_FIELDS:
        if key in result:
            row[key] = result[key]
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
            _shorten(printable(row["source"]) + printable(_place_text(row)), 70),
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


def _place_text(row: Row) -> str:
    parts = [f" {row['member']}" if "member" in row else "",
             f" p{row['page']}" if "page" in row else "",
             f" #{row['index']}" if "index" in row else "",
             f" frame {row['frame']}" if "frame" in row else "",
             f" at {row['time_s']:.1f}s" if "time_s" in row else "",
             f" [{row['dicom_modality']}]" if "dicom_modality" in row else "",
             " (whole video)" if row.get("role") == "summary" else ""]
    return "".join(parts)


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
