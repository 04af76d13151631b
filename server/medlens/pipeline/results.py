"""The one place that turns model answers and errors into `Result` dicts (architecture.md).

Every route and the CLI build their answers here, so a Result always has the same keys whatever
went wrong: clients check `status` and never need to guess which fields exist.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medlens.errors import MedLensError

if TYPE_CHECKING:  # a type only: importing the model here would load it into every batch loader
    from medlens.model.classifier import Prediction

# Errors that are a verdict on the image rather than a failure: answered as status "skipped".
SKIP_CODES: frozenset[str] = frozenset({"too_small"})


@dataclass(frozen=True)
class Outcome:
    """What one image came to, independent of where it came from (so it can be cached and shared)."""

    prediction: Prediction | None = None
    error: MedLensError | None = None
    width: int | None = None
    height: int | None = None

    @property
    def status(self) -> str:
        if self.prediction is not None:
            return "ok"
        return "skipped" if self.error is not None and self.error.code in SKIP_CODES else "error"

    @property
    def final(self) -> bool:
        """Whether this outcome is a fact about the bytes (ok or skipped), safe to cache."""
        return self.status != "error"


def result(source: str, outcome: Outcome, *, cached: bool = False, **extra: Any) -> dict[str, Any]:
    """A Result dict; `extra` adds the PDF fields (page, index, bbox, thumbnail)."""
    pred = outcome.prediction
    return {
        "source": source,
        "status": outcome.status,
        "label": pred.label if pred else None,
        "probability": pred.probability if pred else None,
        "modality": pred.modality if pred else None,
        "error": outcome.error.to_dict() if outcome.error is not None and pred is None else None,
        "width": outcome.width,
        "height": outcome.height,
        "cached": cached,
        **extra,
    }


def error_result(source: str, error: MedLensError, **extra: Any) -> dict[str, Any]:
    return result(source, Outcome(error=error), **extra)


def upload_source(name: str | None) -> str:
    return f"upload:{name or 'image'}"


def pdf_source(name: str, page: int, index: int) -> str:
    return f"pdf:{name}#page={page}&index={index}"


def jpeg_data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
