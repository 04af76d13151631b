"""Labelled training data: a `manifest.csv` (path,label,modality,source,...) or medical/ + non-medical/ folders."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from medlens.errors import MedLensError
from medlens.model.labels import MEDICAL, NON_MEDICAL

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Frame:
    """How a training composite frames its content (training/composite.py): layout and canvas image."""

    layout: str
    canvas: Path
    canvas_source: str
    more: tuple[Path, ...] = ()  # further content images of the same source, for the "grid" layout


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    modality: str
    source: str
    frame: Frame | None = None

    @property
    def y(self) -> int:
        return int(self.label == MEDICAL)

    @property
    def sources(self) -> frozenset[str]:
        """Every source whose pixels this sample shows: a held-out source must be in none of training's."""
        return frozenset({self.source, self.frame.canvas_source}) if self.frame else frozenset({self.source})


def load_dataset(data_dir: str | Path) -> list[Sample]:
    """Samples from DIR/manifest.csv, else from DIR/medical and DIR/non-medical.

    In the folder layout the first sub-folder under a label names the modality and is also the
    source (the unit kept together in validation splits); files directly under a label get
    modality and source "unknown".
    """
    root = Path(data_dir)
    manifest = root / "manifest.csv"
    if manifest.is_file():
        return _from_manifest(root, manifest)
    if (root / MEDICAL).is_dir() and (root / NON_MEDICAL).is_dir():
        return _from_folders(root)
    raise MedLensError(
        "invalid_request", f"{root} holds neither manifest.csv nor {MEDICAL}/ and {NON_MEDICAL}/ folders"
    )


def _from_manifest(root: Path, manifest: Path) -> list[Sample]:
    samples = []
    with open(manifest, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise MedLensError("invalid_request", f"{manifest} lacks column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            label = row["label"].strip()
            if label not in (MEDICAL, NON_MEDICAL):
                raise MedLensError("invalid_request", f"{manifest}:{line}: label {label!r} is not medical/non-medical")
            samples.append(
                Sample(
                    path=root / row["path"],
                    label=label,
                    modality=(row.get("modality") or "unknown").strip() or "unknown",
                    source=(row.get("source") or "unknown").strip() or "unknown",
                )
            )
    return samples


def _from_folders(root: Path) -> list[Sample]:
    samples = []
    for label in (MEDICAL, NON_MEDICAL):
        base = root / label
        for path in sorted(base.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            rel = path.relative_to(base).parts
            group = rel[0] if len(rel) > 1 else "unknown"
            samples.append(Sample(path=path, label=label, modality=group, source=group))
    return samples
