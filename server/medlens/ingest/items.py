"""What loading a source gives: its images, each with its place, or why a part of it failed.

Kept apart from load.py so every extractor module can build them without importing the loader.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from medlens.errors import MedLensError


@dataclass(frozen=True)
class Place:
    """Where one image sits in what was given: a page (and its image index), an archive member
    (nested ones joined by "/"), a frame (and its time in a video). All None for a plain image."""

    member: str | None = None
    page: int | None = None
    index: int | None = None
    frame: int | None = None
    time_s: float | None = None
    bbox: list[float] | None = None

    def fields(self) -> dict[str, Any]:
        """The fields that are set, as a Result carries them."""
        return {name: value for name, value in self.__dict__.items() if value is not None}

    def inside(self, member: str) -> "Place":
        """This place, as seen from the archive holding it as `member`."""
        inner = f"{member}/{self.member}" if self.member else member
        return Place(inner, self.page, self.index, self.frame, self.time_s, self.bbox)


@dataclass
class Item:
    """One image of a source, decoded (`image`), or why one named part could not be (`error`)."""

    place: Place = field(default_factory=Place)
    image: Image.Image | None = None
    width: int | None = None
    height: int | None = None
    error: MedLensError | None = None
    thumbnail: bytes | None = None
    sha256: str | None = None
    dicom_modality: str | None = None  # the DICOM Modality tag: reported beside the answer, never used by it
    # Items sharing a group (the frames of one animation or multi-frame DICOM) are answered as
    # one: their most medical frame.
    group: str | None = None


@dataclass
class Loaded:
    """Every image one source holds. `pick` says how its results combine: "each" (a row per
    image), "most_medical" (an animation: one row, its most medical frame) or "video" (a row per
    frame plus the video's summary)."""

    kind: str
    items: list[Item] = field(default_factory=list)
    pick: str = "each"
    pages: int | None = None
    truncated: bool = False
    repaired: bool = False
    duration_s: float | None = None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def no_images(loaded: Loaded) -> MedLensError:
    """The skip a source that holds no image gets (it is still accounted for: one row)."""
    where = f" on its {loaded.pages} page(s)" if loaded.pages is not None else ""
    what = {"pdf": "PDF", "document": "document", "office": "office file", "archive": "archive",
            "dicom": "DICOM file", "video": "video"}.get(loaded.kind, loaded.kind)
    return MedLensError("no_images", f"{what} has no images{where}")
