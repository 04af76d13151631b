"""The output folder: Parquet parts written atomically, resume, and summary.json.

Each part holds whole sources only (all the rows of a PDF land in one part), and is written to a
hidden temporary name then renamed, so a killed run leaves complete parts and at most a stray
temporary file (removed by the next run). `--resume` reads the `source` column of the parts.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from medlens.errors import MedLensError

PART_GLOB = "part-*.parquet"
TMP_PREFIX = ".tmp-"
SUMMARY_FILE = "summary.json"
COLUMNS = [
    "source", "page", "index", "label", "probability", "modality", "status", "error_code", "error",
    "sha256", "width", "height", "model",
]


def require_pyarrow() -> Any:
    """pyarrow.parquet, or a clear error naming the extra that brings it."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MedLensError(
            "missing_dependency", f"medlens batch writes Parquet and needs pyarrow: pip install 'medlens[scale]' ({exc})"
        ) from exc
    return pq


def output_schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        ("source", pa.string()), ("page", pa.int32()), ("index", pa.int32()), ("label", pa.string()),
        ("probability", pa.float64()), ("modality", pa.string()), ("status", pa.string()),
        ("error_code", pa.string()), ("error", pa.string()), ("sha256", pa.string()),
        ("width", pa.int64()), ("height", pa.int64()), ("model", pa.string()),
    ])


def work_schema() -> Any:
    """Rows between the stages: the output columns (less model) plus the image and bookkeeping."""
    import pyarrow as pa

    fields = [f for f in output_schema() if f.name != "model"]
    return pa.schema(fields + [
        ("image", pa.binary()), ("image_width", pa.int32()), ("image_height", pa.int32()),
        ("source_rows", pa.int32()), ("model", pa.string()), ("node", pa.string()),
    ])


def prepare_dir(out: Path, *, resume: bool) -> set[str]:
    """Create `out`; the sources already done when resuming. A non-empty `out` needs --resume."""
    out.mkdir(parents=True, exist_ok=True)
    for stray in out.glob(TMP_PREFIX + "*"):
        stray.unlink(missing_ok=True)
    parts = sorted(out.glob(PART_GLOB))
    if parts and not resume:
        raise MedLensError(
            "invalid_request", f"{out} already has {len(parts)} Parquet part(s): pass --resume to continue, or use another folder"
        )
    return done_sources(out) if parts else set()


def done_sources(out: Path) -> set[str]:
    pq = require_pyarrow()
    done: set[str] = set()
    for part in sorted(out.glob(PART_GLOB)):
        done.update(pq.read_table(part, columns=["source"]).column("source").to_pylist())
    return done


class PartWriter:
    """Collects classified rows and writes each complete source into an atomic Parquet part."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.parts = 0
        self.rows = 0
        self.sources = 0
        self.nodes: Counter[str] = Counter()
        self._open: dict[str, list[dict[str, Any]]] = {}  # sources still missing rows

    def add(self, rows: Iterable[dict[str, Any]]) -> int:
        """Buffer rows; write the sources now complete as one part. Returns sources completed."""
        complete: list[dict[str, Any]] = []
        finished = 0
        for row in rows:
            bucket = self._open.setdefault(row["source"], [])
            bucket.append(row)
            if len(bucket) >= int(row["source_rows"]):
                complete.extend(self._open.pop(row["source"]))
                finished += 1
        if complete:
            self._write(complete)
            self.sources += finished
        return finished

    @property
    def incomplete(self) -> int:
        return len(self._open)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        pq = require_pyarrow()
        for row in rows:
            if row.get("node"):
                self.nodes[row["node"]] += 1
        table = pa.Table.from_pylist([{c: row.get(c) for c in COLUMNS} for row in rows], schema=output_schema())
        name = f"part-{self.run_id}-{self.parts:06d}.parquet"
        tmp = self.out / f"{TMP_PREFIX}{name}"
        pq.write_table(table, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.out / name)
        self.parts += 1
        self.rows += len(rows)


def read_rows(out: Path) -> list[dict[str, Any]]:
    """Every row of every part (for tests and small outputs; large ones: read the folder with pyarrow)."""
    pq = require_pyarrow()
    rows: list[dict[str, Any]] = []
    for part in sorted(out.glob(PART_GLOB)):
        rows.extend(pq.read_table(part).to_pylist())
    return rows


def write_summary(out: Path, run: dict[str, Any]) -> dict[str, Any]:
    """summary.json over the whole folder (all parts, earlier runs included) plus this run's figures."""
    pq = require_pyarrow()
    labels: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    rows = 0
    sources: set[str] = set()
    for part in sorted(out.glob(PART_GLOB)):
        table = pq.read_table(part, columns=["source", "label", "status", "error_code"]).to_pydict()
        rows += len(table["source"])
        sources.update(table["source"])
        labels.update(v for v in table["label"] if v is not None)
        statuses.update(table["status"])
        codes.update(v for v in table["error_code"] if v is not None)
    summary = {
        "rows": rows,
        "sources": len(sources),
        "parts": len(list(out.glob(PART_GLOB))),
        "labels": dict(sorted(labels.items())),
        "status": dict(sorted(statuses.items())),
        "error_codes": dict(sorted(codes.items())),
        "run": run,
    }
    tmp = out / f"{TMP_PREFIX}{SUMMARY_FILE}"
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / SUMMARY_FILE)
    return summary
