"""Image rows -> classified rows: the model side of a batch worker, the same in both engines."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from medlens.batch.loading import PENDING, Row, image_from_cells
from medlens.errors import MedLensError

if TYPE_CHECKING:
    from medlens.model.classifier import Classifier

log = logging.getLogger(__name__)


def model_name(classifier: "Classifier") -> str:
    info = classifier.info
    return f"{info['backbone']}/{info['head_sha256']}"


def classify_rows(classifier: "Classifier", rows: list[Row], *, batch_size: int, threshold: float | None = None) -> list[Row]:
    """Fill label/probability/modality of the pending rows, in forward passes of `batch_size`, and
    drop the pixels. Rows that crossed Ray's object store carry them as cells (`image_to_cells`)."""
    pending = [row for row in rows if row["status"] == PENDING]
    step = max(1, batch_size)
    for start in range(0, len(pending), step):
        chunk = pending[start:start + step]
        images = [row["image"] if not isinstance(row["image"], bytes) else image_from_cells(row) for row in chunk]
        try:
            predictions = classifier.classify(images, threshold)
        except Exception as exc:  # the model failing on a batch costs that batch, loudly
            log.exception("model failed on a batch of %d images", len(chunk))
            err = exc if isinstance(exc, MedLensError) else MedLensError("model_error", f"{type(exc).__name__}: {exc}")
            for row in chunk:
                row.update(status="error", error_code=err.code, error=err.message)
            continue
        for row, pred in zip(chunk, predictions):
            row.update(status="ok", label=pred.label, probability=pred.probability, modality=pred.modality)
    for row in rows:
        row["image"] = None
    return rows


def label_rows(rows: list[Row], **values: Any) -> list[Row]:
    """Stamp every row with `values` (the model's name, the node it ran on)."""
    for row in rows:
        row.update(values)
    return rows
