"""`Classifier`: the only thing the server and the CLI know about the model.

A backbone turns images into features; an XGBoost head turns features into the probability that
an image is medical, and a second head names the modality of medical ones. Heads are stored with
XGBoost's own format (UBJSON) beside a JSON model card; nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xgboost as xgb
from PIL import Image

from medlens.errors import ModelError
from medlens.model.backbones import FeatureExtractor, load_backbone
from medlens.model.image_stats import STATS_SIZE, STATS_VERSION, image_statistics

MEDICAL = "medical"
NON_MEDICAL = "non-medical"
CARD_FILE = "model_card.json"
HEAD_FILE = "head.ubj"
MODALITY_FILE = "modality.ubj"
CARD_FORMAT = 1

SHIPPED_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"


def head_input_size(extractor: FeatureExtractor) -> int:
    return extractor.feature_size + STATS_SIZE


def image_features(extractor: FeatureExtractor, images: Sequence[Image.Image]) -> np.ndarray:
    """What the heads read: backbone features followed by the colour/layout statistics."""
    if not images:
        return np.zeros((0, head_input_size(extractor)), dtype=np.float32)
    stats = np.stack([image_statistics(img) for img in images])
    return np.concatenate([extractor.features(images), stats], axis=1)


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
    modality: xgb.Booster | None = None
    modality_classes: list[str] = field(default_factory=list)
    sha256: str = ""

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.binary.inplace_predict(features).astype(np.float64)

    def predict_modality(self, features: np.ndarray) -> list[str | None]:
        if self.modality is None or len(features) == 0:
            return [None] * len(features)
        proba = np.asarray(self.modality.inplace_predict(features)).reshape(len(features), -1)
        return [self.modality_classes[int(i)] for i in proba.argmax(axis=1)]

    def predict(self, features: np.ndarray, threshold: float | None = None) -> list[Prediction]:
        cut = self.threshold if threshold is None else threshold
        probs = self.predict_proba(features)
        medical = probs >= cut
        modalities: list[str | None] = [None] * len(probs)
        if medical.any():
            named = self.predict_modality(features[medical])
            for slot, name in zip(np.flatnonzero(medical), named):
                modalities[slot] = name
        return [
            Prediction(MEDICAL if m else NON_MEDICAL, round(float(p), 6), mod)
            for p, m, mod in zip(probs, medical, modalities)
        ]

    def save(self, model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        self.binary.save_model(str(model_dir / HEAD_FILE))
        card = dict(self.card)
        card["format"] = CARD_FORMAT
        card["threshold"] = self.threshold
        card["head_file"] = HEAD_FILE
        card["head_sha256"] = _sha256(model_dir / HEAD_FILE)
        if self.modality is not None:
            self.modality.save_model(str(model_dir / MODALITY_FILE))
            card["modality_head"] = {
                **card.get("modality_head", {}),
                "file": MODALITY_FILE,
                "classes": self.modality_classes,
                "sha256": _sha256(model_dir / MODALITY_FILE),
            }
        (model_dir / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        self.card = card
        self.sha256 = card["head_sha256"]

    @classmethod
    def load(cls, model_dir: Path) -> "Head":
        card_path = model_dir / CARD_FILE
        if not card_path.is_file():
            raise ModelError("head_mismatch", f"no model card {CARD_FILE} in {model_dir}")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError("head_mismatch", f"model card {card_path} is not valid JSON: {exc}") from exc
        if card.get("format") != CARD_FORMAT:
            raise ModelError("head_mismatch", f"model card {card_path} has format {card.get('format')!r}, expected {CARD_FORMAT}")
        head_path = model_dir / card.get("head_file", HEAD_FILE)
        sha = _sha256(head_path) if head_path.is_file() else ""
        if sha != card.get("head_sha256"):
            raise ModelError("head_mismatch", f"head file {head_path} is missing or differs from its model card (sha256)")
        binary = _load_booster(head_path)
        modality, classes = None, []
        mod = card.get("modality_head")
        if mod:
            mod_path = model_dir / mod["file"]
            if not mod_path.is_file() or _sha256(mod_path) != mod.get("sha256"):
                raise ModelError("head_mismatch", f"modality head {mod_path} is missing or differs from its model card")
            modality, classes = _load_booster(mod_path), list(mod["classes"])
        return cls(binary, float(card["threshold"]), card, modality, classes, sha)

    def check_backbone(self, extractor: FeatureExtractor) -> None:
        """Refuse a head trained on another backbone's features: its numbers would be meaningless."""
        want = self.card.get("backbone", {})
        problems = []
        if want.get("name") != extractor.name:
            problems.append(f"backbone {want.get('name')!r} != {extractor.name!r}")
        if int(want.get("feature_size", -1)) != extractor.feature_size:
            problems.append(f"feature size {want.get('feature_size')} != {extractor.feature_size}")
        if self.card.get("image_stats_version") != STATS_VERSION:
            problems.append(f"image statistics version {self.card.get('image_stats_version')!r} != {STATS_VERSION}")
        if int(self.binary.num_features()) != head_input_size(extractor):
            problems.append(
                f"head expects {self.binary.num_features()} features, backbone + statistics give {head_input_size(extractor)}"
            )
        if want.get("weights_sha256") and want["weights_sha256"] != extractor.weights_sha256:
            problems.append(
                f"weights sha256 {want['weights_sha256'][:12]}… != {extractor.weights_sha256[:12]}…"
            )
        if problems:
            raise ModelError("head_mismatch", "the head does not match the backbone: " + "; ".join(problems))


def _load_booster(path: Path) -> xgb.Booster:
    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except xgb.core.XGBoostError as exc:
        raise ModelError("head_mismatch", f"cannot load XGBoost head {path}: {str(exc).splitlines()[0]}") from exc
    booster.set_param({"nthread": 1})
    return booster


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Classifier:
    """Loaded once, used from one model thread; `classify` is safe to call from several threads."""

    def __init__(self, extractor: FeatureExtractor, head: Head):
        head.check_backbone(extractor)
        self.extractor = extractor
        self.head = head
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model_dir: str | Path | None = None,
        *,
        device: str = "auto",
        weights_path: str | Path | None = None,
        backbone: str | None = None,
        runtime: str = "auto",
    ) -> "Classifier":
        directory = Path(model_dir) if model_dir else SHIPPED_MODEL_DIR
        head = Head.load(directory)
        name = backbone or head.card.get("backbone", {}).get("name", "mobilenet_v2")
        extractor = load_backbone(name, weights_path=weights_path or None, device=device, runtime=runtime)
        return cls(extractor, head)

    @classmethod
    def from_settings(cls, settings: Any) -> "Classifier":
        import torch

        if getattr(settings, "torch_threads", 0):
            torch.set_num_threads(int(settings.torch_threads))
        return cls.load(
            settings.model_dir or None,
            device=settings.device,
            weights_path=settings.weights_path or None,
            backbone=settings.backbone,
            runtime=getattr(settings, "runtime", "auto"),
        )

    @property
    def threshold(self) -> float:
        return self.head.threshold

    @property
    def info(self) -> dict[str, Any]:
        return {
            "backbone": self.extractor.name,
            "head_sha256": self.head.sha256,
            "threshold": self.head.threshold,
            "device": self.extractor.device.type,
            "runtime": self.extractor.runtime,
            "modalities": list(self.head.modality_classes),
        }

    def features(self, images: Sequence[Image.Image]) -> np.ndarray:
        return image_features(self.extractor, images)

    def classify(self, images: Sequence[Image.Image], threshold: float | None = None) -> list[Prediction]:
        if not images:
            return []
        with self._lock:
            feats = image_features(self.extractor, images)
            return self.head.predict(feats, threshold)
