"""The one place that turns model answers and errors into `Result` dicts (architecture.md).

Every route and the CLI build their answers here, so a Result always has the same keys whatever
went wrong: clients check `status` and never need to guess which fields exist.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from medlens.errors import MedLensError
from medlens.ingest.items import Loaded, Place

if TYPE_CHECKING:  # a type only: importing the model here would load it into every batch loader
    from medlens.model.classifier import Prediction

# Errors that are a verdict on the image rather than a failure: answered as status "skipped".
SKIP_CODES: frozenset[str] = frozenset({"too_small", "no_images"})


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


def item_source(source: str, place: Place) -> str:
    """A container item's source: the container's, with its place as a fragment (`#member=a.png`)."""
    parts = [f"{key}={value}" for key, value in place.fields().items() if key != "bbox"]
    return f"{source}#{'&'.join(parts)}" if parts else source


def most_medical(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The classified row with the highest probability of medical (the first on a tie), or None."""
    best = None
    for row in rows:
        if row["status"] == "ok" and (best is None or row["probability"] > best["probability"]):
            best = row
    return best


def reduce_groups(rows: Sequence[dict[str, Any]], groups: Sequence[str | None]) -> list[dict[str, Any]]:
    """Rows sharing a group (the frames of one animation) become their most medical row, in the
    place of the group's first; rows without a group stay as they are."""
    out: list[dict[str, Any]] = []
    where: dict[str, int] = {}
    for row, group in zip(rows, groups):
        if group is None:
            out.append(row)
        elif group not in where:
            where[group] = len(out)
            out.append(row)
        elif row["status"] == "ok":
            best = out[where[group]]
            if best["status"] != "ok" or row["probability"] > best["probability"]:
                out[where[group]] = row
    return out


def combined_label(rows: Sequence[dict[str, Any]]) -> str:
    """A container's label: medical when any of its images is."""
    return "medical" if any(row["label"] == "medical" for row in rows) else "non-medical"


def container_result(source: str, loaded: Loaded, items: list[dict[str, Any]], empty: MedLensError) -> dict[str, Any]:
    """One Result for a container: an animation is its most medical frame; anything else is a
    summary (medical when any image is; the most medical image's probability, modality and
    place) with every image's Result as `items` (an animation inside it: its most medical frame).
    No image at all is `empty` (a skip)."""
    items = reduce_groups(items, [item.group for item in loaded.items])
    if not items:
        return {**error_result(source, empty), "kind": loaded.kind, "items": [], **_counts(loaded)}
    best = most_medical(items)
    if loaded.pick == "most_medical":
        return {**items[0], "source": source, "frames": len(loaded.items)}
    if best is None:
        first = items[0]
        summary = {**{key: first[key] for key in ("status", "error", "width", "height")}}
        summary.update(label=None, probability=None, modality=None)
    else:
        summary = {key: best[key] for key in ("status", "probability", "modality", "width", "height")}
        summary.update(label=combined_label(items), error=None)
        summary.update({key: best[key] for key in ("member", "page", "index", "frame", "time_s", "thumbnail") if key in best})
    return {"source": source, **summary, "cached": False, "kind": loaded.kind, "items": items, **_counts(loaded)}


def _counts(loaded: Loaded) -> dict[str, Any]:
    counts: dict[str, Any] = {"truncated": loaded.truncated}
    if loaded.pages is not None:
        counts["pages"] = loaded.pages
    if loaded.duration_s is not None:
        counts["duration_s"] = loaded.duration_s
    if loaded.repaired:
        counts["repaired"] = True
    return counts
