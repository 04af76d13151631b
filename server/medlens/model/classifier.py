"""`Classifier`: the only thing the server, the CLI and `batch` know about the model.

One ONNX graph turns pixels into everything the heads read (no torch: training/export.py
writes the file); an XGBoost head turns features into a calibrated probability that an
image is medical, and a second head names the modality of medical ones. The extractor and the
heads ship in `server/medlens/models/` beside a JSON model card that records their sha256;
nothing is pickled, and a file that differs from its card is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xgboost as xgb
from PIL import Image

from medlens.errors import ModelError
from medlens.model.calibration import Calibrator
from medlens.model.card import HEAD_FILE, SHIPPED_MODEL_DIR, file_sha256, read_card, resolve_model_dir
from medlens.model.labels import MEDICAL, NON_MEDICAL, OTHER_MODALITY
from medlens.model.onnx_features import OnnxFeatures
from medlens.model.preprocess import model_batch

__all__ = ["Classifier", "Head", "Prediction", "SHIPPED_MODEL_DIR", "load_extractor", "read_card"]


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    modality: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "probability": self.probability, "modality": self.modality}


@dataclass
class Head:
    """The trained decision part of the model, plus the card that says what it was trained on."""

    binary: xgb.Booster
    threshold: float
    card: dict[str, Any]
    calibrator: Calibrator = field(default_factory=lambda: Calibrator("none", {}))
    modality: xgb.Booster | None = None
    modality_classes: list[str] = field(default_factory=list)
    modality_min_confidence: float = 0.0
    sha256: str = ""
    # a modality is named only on images at least this likely medical (and never below the threshold)
    modality_min_probability: float = 0.0

    def raw_proba(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.binary.inplace_predict(features), dtype=np.float64)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Calibrated probability of medical."""
        if len(features) == 0:
            return np.zeros(0)
        return self.calibrator.apply(self.raw_proba(features))

    def modality_proba(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.modality.inplace_predict(features)).reshape(len(features), -1)

    def predict_modality(self, features: np.ndarray) -> list[str | None]:
        """The modality's name, or None when the head is unsure or can only say "other"."""
        if self.modality is None or len(features) == 0:
            return [None] * len(features)
        proba = self.modality_proba(features)
        names: list[str | None] = []
        for row in proba:
            k = int(row.argmax())
            name = self.modality_classes[k]
            names.append(name if name != OTHER_MODALITY and row[k] >= self.modality_min_confidence else None)
        return names

    def predict(self, features: np.ndarray, threshold: float | None = None) -> list[Prediction]:
        cut = self.threshold if threshold is None else threshold
        probs = self.predict_proba(features)
        medical = probs >= cut
        sure = medical & (probs >= self.modality_min_probability)
        modalities: list[str | None] = [None] * len(probs)
        if sure.any():
            for slot, name in zip(np.flatnonzero(sure), self.predict_modality(features[sure])):
                modalities[slot] = name
        return [
            Prediction(MEDICAL if m else NON_MEDICAL, round(float(p), 6), mod)
            for p, m, mod in zip(probs, medical, modalities)
        ]

    @classmethod
    def load(cls, directory: Path) -> "Head":
        card = read_card(directory)
        head_path = directory / card.get("head_file", HEAD_FILE)
        sha = file_sha256(head_path) if head_path.is_file() else ""
        if sha != card.get("head_sha256"):
            raise ModelError("head_mismatch", f"head file {head_path} is missing or differs from its model card (sha256)")
        binary = _load_booster(head_path)
        modality, classes, min_conf, min_prob = None, [], 0.0, 0.0
        mod = card.get("modality_head")
        if mod and mod.get("file"):
            mod_path = directory / mod["file"]
            if not mod_path.is_file() or file_sha256(mod_path) != mod.get("sha256"):
                raise ModelError("head_mismatch", f"modality head {mod_path} is missing or differs from its model card")
            modality, classes = _load_booster(mod_path), list(mod["classes"])
            min_conf = float(mod.get("min_confidence", 0.0))
            min_prob = float(mod.get("min_probability", 0.0))
        try:
            calibrator = Calibrator.from_dict(card.get("calibration"))
        except ValueError as exc:
            raise ModelError("head_mismatch", f"model card in {directory}: {exc}") from exc
        return cls(binary, float(card["threshold"]), card, calibrator, modality, classes, min_conf, sha, min_prob)

    def check_extractor(self, extractor: OnnxFeatures) -> None:
        """Refuse a head trained on other features: its numbers would be meaningless."""
        want = self.card.get("feature_extractor", {})
        problems = []
        if want.get("sha256") != extractor.sha256:
            problems.append(f"feature extractor sha256 {extractor.sha256[:12]}… != card's {str(want.get('sha256'))[:12]}…")
        if int(want.get("feature_size", -1)) != extractor.feature_size:
            problems.append(f"feature size {want.get('feature_size')} != {extractor.feature_size}")
        if int(self.binary.num_features()) != extractor.feature_size:
            problems.append(f"head expects {self.binary.num_features()} features, the extractor gives {extractor.feature_size}")
        if self.modality is not None and int(self.modality.num_features()) != extractor.feature_size:
            problems.append(f"modality head expects {self.modality.num_features()} features")
        if problems:
            raise ModelError("head_mismatch", "the heads do not match the feature extractor: " + "; ".join(problems))


def load_extractor(directory: Path, card: dict[str, Any], *, device: str = "auto", threads: int = 0) -> OnnxFeatures:
    info = card.get("feature_extractor") or {}
    if not info.get("file"):
        raise ModelError("head_mismatch", f"model card in {directory} names no feature extractor")
    return OnnxFeatures(
        directory / info["file"], sha256=info.get("sha256"), feature_size=int(info["feature_size"]),
        device=device, threads=threads,
    )


def _load_booster(path: Path) -> xgb.Booster:
    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except xgb.core.XGBoostError as exc:
        raise ModelError("head_mismatch", f"cannot load XGBoost head {path}: {str(exc).splitlines()[0]}") from exc
    booster.set_param({"nthread": 1})
    return booster


class Classifier:
    """Loaded once; `classify` is safe to call from several threads."""

    def __init__(self, extractor: OnnxFeatures, head: Head):
        head.check_extractor(extractor)
        self.extractor = extractor
        self.head = head

    @classmethod
    def load(cls, model_dir: str | Path | None = None, *, device: str = "auto", threads: int = 0) -> "Classifier":
        directory = resolve_model_dir(model_dir)
        head = Head.load(directory)
        return cls(load_extractor(directory, head.card, device=device, threads=threads), head)

    @classmethod
    def from_settings(cls, settings: Any) -> "Classifier":
        return cls.load(settings.model_dir or None, device=settings.device, threads=int(getattr(settings, "model_threads", 0)))

    @property
    def threshold(self) -> float:
        return self.head.threshold

    @property
    def info(self) -> dict[str, Any]:
        fe = self.head.card.get("feature_extractor", {})
        return {
            "backbone": fe.get("backbone"),
            "head_sha256": self.head.sha256,
            "threshold": self.head.threshold,
            "calibration": self.head.calibrator.method,
            "device": self.extractor.device,
            "runtime": "onnxruntime",
            "modalities": [m for m in self.head.modality_classes if m != OTHER_MODALITY],
        }

    def classify(self, images: Sequence[Image.Image], threshold: float | None = None) -> list[Prediction]:
        if not images:
            return []
        pixels, aspects = model_batch(images, self.extractor.side)
        return self.classify_pixels(pixels, aspects, threshold)

    def classify_pixels(self, pixels: np.ndarray, aspects: np.ndarray, threshold: float | None = None) -> list[Prediction]:
        """For callers that prepared `model.preprocess.model_input` arrays themselves (decode workers)."""
        if len(pixels) == 0:
            return []
        feats = self.extractor.features(pixels, aspects)
        return self.head.predict(feats, threshold)

