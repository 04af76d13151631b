"""The output folder: a Parquet dataset every data tool reads, written atomically, and resumable.

    part-<run>-<n>.parquet   rows, one schema; each part holds whole sources (all of a PDF's rows)
    _summary.json            counts per label, status and error code, and the last run's figures
    _SUCCESS                 empty; present once a run has finished (Spark's marker)
    .tmp-*.partial           a part or summary being written; renamed into place when complete

Names starting with `_` or `.` are skipped by pyarrow, pandas, Spark, DuckDB and Ray when they
read a folder, so `pyarrow.parquet.read_table(out)` sees exactly the parts. A killed run leaves
complete parts and at most a stray temporary file (removed by the next run). Folders written
before the summary was renamed (`summary.json`) are renamed in place when resumed.

Resume remembers the sources of the parts as `keys.SourceKeys` (8 bytes a source), so a folder of
100 M rows fits in the driver and in each Ray worker.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from medlens.batch.keys import SourceKeys
from medlens.batch.loading import ALREADY_DONE, Row
from medlens.errors import MedLensError
from medlens.ingest.sources import require_parquet
from medlens.pipeline.results import combined_label, most_medical, reduce_groups

PART_GLOB = "part-*.parquet"
TMP_PREFIX = ".tmp-"
PARTIAL_SUFFIX = ".partial"  # so not even a `*.parquet` glob that lists hidden files picks one up
SUMMARY_FILE = "_summary.json"
LEGACY_SUMMARY_FILE = "summary.json"
SUCCESS_MARKER = "_SUCCESS"
COLUMNS = [
    "source", "page", "index", "label", "probability", "modality", "status", "error_code", "error",
    "sha256", "width", "height", "model", "member", "frame", "time_s", "dicom_modality", "role",
]
SUMMARY_ROLE = "summary"  # `role` of a video's own row (its frames' rows have none)


def output_schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        ("source", pa.string()), ("page", pa.int32()), ("index", pa.int32()), ("label", pa.string()),
        ("probability", pa.float64()), ("modality", pa.string()), ("status", pa.string()),
        ("error_code", pa.string()), ("error", pa.string()), ("sha256", pa.string()),
        ("width", pa.int64()), ("height", pa.int64()), ("model", pa.string()),
        ("member", pa.string()), ("frame", pa.int32()), ("time_s", pa.float64()), ("dicom_modality", pa.string()),
        ("role", pa.string()),
    ])


def transfer_schema(*, pixels: bool) -> Any:
    """Rows between Ray stages: the output columns plus bookkeeping, and the pixels when `pixels`
    (load tasks -> classifier actors); classified rows travel without them."""
    import pyarrow as pa

    fields = list(output_schema()) + [("source_rows", pa.int32()), ("node", pa.string()), ("pick", pa.string()),
                                      ("group", pa.string())]
    if pixels:
        fields += [("image", pa.binary()), ("image_width", pa.int32()), ("image_height", pa.int32())]
    return pa.schema(fields)


def prepare_dir(out: Path, *, resume: bool) -> SourceKeys:
    """Create `out`; the sources already done when resuming. A folder with parts needs --resume."""
    out.mkdir(parents=True, exist_ok=True)
    for stray in out.glob(TMP_PREFIX + "*"):
        stray.unlink(missing_ok=True)
    parts = sorted(out.glob(PART_GLOB))
    if parts and not resume:
        raise MedLensError(
            "invalid_request", f"{out} already has {len(parts)} Parquet part(s): pass --resume to continue, or use another folder"
        )
    legacy = out / LEGACY_SUMMARY_FILE
    if legacy.is_file():  # written before the summary took a name data tools skip
        os.replace(legacy, out / SUMMARY_FILE)
    (out / SUCCESS_MARKER).unlink(missing_ok=True)  # not finished again until this run is
    return done_sources(out) if parts else SourceKeys()


def done_sources(out: Path) -> SourceKeys:
    pq = require_parquet()
    done = SourceKeys()
    for part in sorted(out.glob(PART_GLOB)):
        for source in pq.read_table(part, columns=["source"]).column("source").to_pylist():
            done.add(source)
    return done


class PartWriter:
    """Gathers classified rows and writes complete sources into atomic parts of about
    `rows_per_part` rows. Rows of a source already written in this run (a duplicate input) are
    dropped; `ALREADY_DONE` rows are only counted."""

    def __init__(self, out: Path, rows_per_part: int) -> None:
        self.out = out
        self.rows_per_part = max(1, rows_per_part)
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.parts = 0
        self.rows = 0
        self.sources = 0
        self.skipped_done = 0
        self.duplicates = 0
        self.nodes: Counter[str] = Counter()
        self._open: dict[str, list[Row]] = {}  # sources still missing rows
        self._ready: list[Row] = []             # complete sources not yet in a part
        self._written = SourceKeys()

    def add(self, rows: Iterable[Row]) -> int:
        """Take rows; returns how many sources they completed (already-done ones included)."""
        finished = 0
        for row in rows:
            if row["status"] == ALREADY_DONE:
                self.skipped_done += 1
                finished += 1
                continue
            bucket = self._open.setdefault(row["source"], [])
            bucket.append(row)
            if len(bucket) >= int(row["source_rows"]):
                self._complete(self._open.pop(row["source"]))
                finished += 1
        if len(self._ready) >= self.rows_per_part:
            self.flush()
        return finished

    def _complete(self, rows: list[Row]) -> None:
        if not self._written.add(rows[0]["source"]):
            self.duplicates += 1
            return
        self._ready.extend(combine_rows(rows))
        self.sources += 1

    def flush(self) -> None:
        """Write what is complete as one part (nothing when nothing is)."""
        if self._ready:
            rows, self._ready = self._ready, []
            self._write(rows)

    @property
    def incomplete(self) -> int:
        return len(self._open)

    def _write(self, rows: list[Row]) -> None:
        import pyarrow as pa

        pq = require_parquet()
        for row in rows:
            if row.get("node"):
                self.nodes[row["node"]] += 1
        table = pa.Table.from_pylist([{c: row.get(c) for c in COLUMNS} for row in rows], schema=output_schema())
        name = f"part-{self.run_id}-{self.parts:06d}.parquet"
        tmp = self.out / f"{TMP_PREFIX}{name}{PARTIAL_SUFFIX}"
        pq.write_table(table, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.out / name)
        self.parts += 1
        self.rows += len(rows)


def combine_rows(rows: list[Row]) -> list[Row]:
    """A source's rows as the other paths answer it: the frames of an animation become its most
    medical frame, and a video adds its own summary row (medical when any frame is, at that
    frame's time)."""
    rows = reduce_groups(rows, [row.get("group") for row in rows])
    if not rows or rows[0].get("pick") != "video":
        return rows
    best = most_medical(rows)
    summary = dict(best or rows[0])
    summary.update(role=SUMMARY_ROLE, sha256=None)
    if best is not None:
        summary["label"] = combined_label(rows)
    return [*rows, summary]


def read_rows(out: Path) -> list[dict[str, Any]]:
    """Every row of the folder (for tests and small outputs; large ones: read it with pyarrow)."""
    pq = require_parquet()
    rows: list[dict[str, Any]] = []
    for part in sorted(out.glob(PART_GLOB)):
        rows.extend(pq.read_table(part).to_pylist())
    return rows


def write_summary(out: Path, run: dict[str, Any]) -> dict[str, Any]:
    """_summary.json over the whole folder (all parts, earlier runs included) plus this run's figures."""
    pq = require_parquet()
    labels: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    rows = 0
    sources = SourceKeys()
    parts = sorted(out.glob(PART_GLOB))
    for part in parts:
        table = pq.read_table(part, columns=["source", "label", "status", "error_code"]).to_pydict()
        rows += len(table["source"])
        for source in table["source"]:
            sources.add(source)
        labels.update(v for v in table["label"] if v is not None)
        statuses.update(table["status"])
        codes.update(v for v in table["error_code"] if v is not None)
    summary = {
        "rows": rows,
        "sources": len(sources),
        "parts": len(parts),
        "labels": dict(sorted(labels.items())),
        "status": dict(sorted(statuses.items())),
        "error_codes": dict(sorted(codes.items())),
        "run": run,
    }
    tmp = out / f"{TMP_PREFIX}{SUMMARY_FILE}{PARTIAL_SUFFIX}"
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / SUMMARY_FILE)
    return summary


def mark_success(out: Path) -> None:
    """Write `_SUCCESS`: every source of the run is in a part and the summary is up to date."""
    (out / SUCCESS_MARKER).touch()
