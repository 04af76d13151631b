"""`medlens evaluate` and `medlens train` end to end through the CLI, on real images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from fixtures.data import DataItem, write_subset_manifest
from medlens.cli import main

SOURCES = ["pydicom-data", "nilearn-mni152", "idrid-codras", "charts-sklearn-data", "tango-icons", "tuxpaint-stamps"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, data_items: list[DataItem]) -> Path:
    return write_subset_manifest(tmp_path_factory.mktemp("eval-data"), data_items, SOURCES, 5)


def test_evaluate_prints_table_and_writes_report_and_plots(data_dir: Path, tmp_path: Path, capsys):
    report_path = tmp_path / "out" / "eval.json"
    assert main(["evaluate", "--data", str(data_dir), "--report", str(report_path)]) == 0
    printed = capsys.readouterr().out
    assert "balanced accuracy" in printed and "confusion" in printed and "tuxpaint-stamps" in printed
    report = json.loads(report_path.read_text())
    for key in ("n", "accuracy", "balanced_accuracy", "roc_auc", "threshold", "confusion", "per_source", "per_modality"):
        assert key in report
    assert report["n"] == 30
    assert set(report["per_source"]) == set(SOURCES)
    for name in ("roc.png", "confusion.png", "reliability.png"):
        with Image.open(report_path.parent / name) as png:
            assert png.format == "PNG" and png.width > 200


def test_train_then_evaluate_the_new_model(data_dir: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("MEDLENS_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "model"
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--views", "2", "--folds", "3"]) == 0
    assert "threshold" in capsys.readouterr().out
    # five images a source are too few kinds with two sources for a modality head: none is fitted
    assert {p.name for p in out.iterdir()} >= {"features.onnx", "head.ubj", "model_card.json"}
    assert main(["--model-dir", str(out), "evaluate", "--data", str(data_dir)]) == 0
    assert "balanced accuracy" in capsys.readouterr().out


def test_evaluate_on_a_folder_without_labels_fails_clearly(tmp_path: Path, capsys):
    assert main(["evaluate", "--data", str(tmp_path)]) != 0
    assert "manifest.csv" in capsys.readouterr().err


def _card_study_inputs(shared_data: Path):
    """The card's training samples (all of shared/data), without features: the study's figures need only labels."""
    import numpy as np

    from medlens.model.classifier import SHIPPED_MODEL_DIR, read_card
    from medlens.training.dataset import load_dataset
    from medlens.training.features import FeatureTable, framed_samples
    from medlens.training.train import TrainingSet, grouped_folds

    card = read_card(SHIPPED_MODEL_DIR)
    samples = load_dataset(shared_data)
    table = FeatureTable(samples, np.zeros((len(samples), 1, 0), dtype=np.float32))
    framed = framed_samples(samples, card["training"]["seed"])
    acts = TrainingSet(table, FeatureTable(framed, np.zeros((len(framed), 1, 0), dtype=np.float32)))
    folds = grouped_folds([s.source for s in samples], len(card["grouped_folds"]["per_fold"]), card["training"]["seed"])
    return card, acts, folds


def test_card_figures_recompute_from_its_held_out_predictions(shared_data: Path):
    """Every headline figure of the card follows from the held-out predictions it stores, by the
    same code `medlens evaluate --grouped-folds` runs (the predictions themselves: the slow test below)."""
    from medlens.training.recipe import results_from_card, summarise

    card, acts, folds = _card_study_inputs(shared_data)
    stored = card["held_out_predictions"]
    assert stored["paths"] == [str(s.path.relative_to(shared_data)) for s in acts.real.samples]
    report = summarise(acts, folds, results_from_card(stored, acts, folds), stored["classes"])
    want = card["grouped_folds"]
    for key in ("balanced_accuracy", "roc_auc", "framed_accuracy"):
        assert report[key] == pytest.approx(want[key], abs=2e-3), key
    assert report["calibration"]["ece"] == pytest.approx(want["calibration"]["ece"], abs=2e-3)
    assert report["threshold_between_folds"]["all"] == pytest.approx(want["threshold_between_folds"]["all"], abs=2e-3)
    for key in ("accuracy_known_kinds", "named_non_medical_share"):
        assert report["modality"][key] == pytest.approx(want["modality"][key], abs=3e-3), key
    assert abs(report["modality"]["wrong_label_images_named"] - want["modality"]["wrong_label_images_named"]) <= 1
    for source, row in want["per_source"].items():
        assert abs(report["per_source"][source]["errors"] - row["errors"]) <= 1, source


@pytest.mark.slow
def test_grouped_folds_rerun_one_fold_of_the_cards_study(shared_data: Path, tmp_path: Path, monkeypatch, capsys):
    """One fold of the card's study refitted from scratch by the CLI (features from the shipped
    graph, heads without the fold's sources), scored with the other folds' stored predictions."""
    from medlens.model.classifier import SHIPPED_MODEL_DIR, read_card

    monkeypatch.setenv("MEDLENS_CACHE_DIR", str(tmp_path / "cache"))
    card = read_card(SHIPPED_MODEL_DIR)
    fold = min(card["grouped_folds"]["per_fold"], key=lambda f: f["n"])
    report_path = tmp_path / "study.json"
    code = main(["evaluate", "--data", str(shared_data), "--grouped-folds", str(len(card["grouped_folds"]["per_fold"])),
                 "--only-folds", str(fold["fold"]), "--report", str(report_path)])
    assert code == 0
    assert "source-grouped folds" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    rerun = next(f for f in report["per_fold"] if f["fold"] == fold["fold"])
    assert rerun["sources"] == fold["sources"] and rerun["n"] == fold["n"]
    assert abs(rerun["errors"] - fold["errors"]) <= 2
    for source in fold["sources"]:
        assert abs(report["per_source"][source]["errors"] - card["grouped_folds"]["per_source"][source]["errors"]) <= 1
