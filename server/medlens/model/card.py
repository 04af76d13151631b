"""The model card and the folder it lives in: where the model is, reading the card, and the one
checksum every shipped file is compared with.

The card (JSON) is the contract between training and serving: it names the ONNX graph and the
heads with their sha256, so a file that differs from what the heads were fitted on is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from medlens.errors import ModelError

CARD_FILE = "model_card.json"
HEAD_FILE = "head.ubj"
MODALITY_FILE = "modality.ubj"
CARD_FORMAT = 2

SHIPPED_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"


def resolve_model_dir(configured: str | Path | None) -> Path:
    """The model folder: the configured one (setting `model_dir`, MEDLENS_MODEL_DIR), else the shipped one."""
    return Path(configured) if configured else SHIPPED_MODEL_DIR


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_card(directory: Path) -> dict[str, Any]:
    card_path = directory / CARD_FILE
    if not card_path.is_file():
        raise ModelError("head_mismatch", f"no model card {CARD_FILE} in {directory}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError("head_mismatch", f"model card {card_path} is not valid JSON: {exc}") from exc
    if card.get("format") != CARD_FORMAT:
        raise ModelError(
            "head_mismatch",
            f"model card {card_path} has format {card.get('format')!r}, this MedLens reads {CARD_FORMAT}: retrain or update",
        )
    return card
