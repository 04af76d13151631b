"""Training on a small real subset of shared/data: a working head, a cache that is used, repeatable runs."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures.data import DataItem, write_subset_manifest
from medlens.model.classifier import SHIPPED_MODEL_DIR, Classifier, Head, load_extractor, read_card
from medlens.training.dataset import Sample, load_dataset
from medlens.training.features import extract_features, framed_samples
from medlens.training.recipe import choose_naming_rule, fit_final, grouped_study, pooled_decisions, tuned_card
from medlens.training.train import TrainingSet, grouped_folds, leave_sources_out, modality_names, sample_weights, save_model

PER_SOURCE = 4


@pytest.fixture(scope="module")
def extractor():
    return load_extractor(SHIPPED_MODEL_DIR, read_card(SHIPPED_MODEL_DIR), device="cpu")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, data_items: list[DataItem]) -> Path:
    """A manifest over a few images from each of a dozen real sources (paths point into shared/data)."""
    wanted = [
        "idrid-codras", "pydicom-data", "nilearn-mni152", "torchstain-data", "itk-examples", "monai-testdata",
        "charts-sklearn-data", "tango-icons", "tuxpaint-stamps", "face-recognition-portraits",
        "debian-htmldocs-screens", "gimp-patterns",
    ]
    return write_subset_manifest(tmp_path_factory.mktemp("small-data"), data_items, wanted, PER_SOURCE)


@pytest.fixture(scope="module")
def trained(small_data: Path, extractor, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    samples = load_dataset(small_data)
    table = extract_features(samples, extractor, views=2, seed=1, cache_dir=cache, progress=False)
    framed = extract_features(framed_samples(table.samples, 1), extractor, views=1, seed=1, cache_dir=cache, progress=False)
    data = TrainingSet(table, framed)
    return data, *_fit(data), cache


def _fit(data: TrainingSet):
    """The shipped recipe on fixed features: grouped study, pooled decisions, heads on all data, card."""
    spec = {"epochs": 0}
    study = grouped_study(None, None, data, spec, n_folds=3, seed=1, fixed=data)
    decision, rule = pooled_decisions(study, data)
    head, _ = fit_final(None, None, data, spec, decision, rule, seed=1, fixed=data)
    head.card = tuned_card(read_card(SHIPPED_MODEL_DIR)["feature_extractor"], data, spec, study, decision, rule,
                           seed=1, data_name="", framed_heads=True, seconds=0.0)
    return head, study


def test_manifest_and_folder_layouts_load(small_data: Path, tmp_path: Path):
    samples = load_dataset(small_data)
    assert len(samples) == 12 * PER_SOURCE
    assert {s.label for s in samples} == {"medical", "non-medical"}
    for label, rel in (("medical", "xray"), ("non-medical", "chart")):
        (tmp_path / label / rel).mkdir(parents=True)
    src = [s for s in samples if s.modality in ("xray", "chart")]
    for s in src:
        shutil.copy(s.path, tmp_path / s.label / s.modality / s.path.name)
    folder = load_dataset(tmp_path)
    assert Counter(s.modality for s in folder) == Counter(s.modality for s in src)
    assert all(s.source == s.modality for s in folder)


def test_trained_head_works(trained, extractor, tmp_path: Path):
    data, head, validation, _ = trained
    table = data.real
    save_model(head, tmp_path / "m")
    clf = Classifier(extractor, Head.load(tmp_path / "m"))
    imgs = [Image.open(s.path) for s in table.samples]
    preds = clf.classify(imgs)
    accuracy = np.mean([p.label == s.label for p, s in zip(preds, table.samples)])
    assert accuracy >= 0.9
    assert 0.0 < head.threshold < 1.0
    assert head.calibrator.method == "platt"
    assert set(validation["per_source"]) == {s.source for s in table.samples}
    card = clf.head.card
    assert card["training"]["counts"]["per_label"] == dict(Counter(s.label for s in table.samples))
    assert card["training"]["framed_images"] == len(data.framed.samples) > 0
    assert 0 <= card["grouped_folds"]["calibration"]["ece"] <= 1
    assert len(card["grouped_folds"]["threshold_between_folds"]["all"]) == 3
    assert card["modality_head"]["classes"] and card["modality_head"]["min_probability"] >= 0.5
    named = {p.modality for p in preds if p.label == "medical"} - {None}
    assert named <= set(clf.head.modality_classes) - {"other"}


def test_feature_cache_is_used_on_the_second_run(trained, small_data: Path, extractor):
    data, _, _, cache = trained
    files = list(cache.rglob("*.npy"))
    assert len(files) == len(data.real.samples) * 2 + len(data.framed.samples)

    class CountingExtractor:
        """The real extractor, counting the images it is asked to run."""

        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def features(self, pixels, aspects):
            self.calls += len(pixels)
            return self.inner.features(pixels, aspects)

    counting = CountingExtractor(extractor)
    again = extract_features(load_dataset(small_data), counting, views=2, seed=1, cache_dir=cache, progress=False)
    assert counting.calls == 0
    np.testing.assert_array_equal(again.features, data.real.features)


def test_training_repeats_exactly(trained):
    data, head, _, _ = trained
    head2, _ = _fit(data)
    x = data.real.features[:, 0]
    np.testing.assert_array_equal(head.predict_proba(x), head2.predict_proba(x))
    assert head.threshold == head2.threshold


def test_unreadable_images_are_skipped_and_counted(tmp_path: Path, data_items: list[DataItem], extractor):
    for label in ("medical", "non-medical"):
        (tmp_path / label / "kind").mkdir(parents=True)
        good = next(i for i in data_items if i.label == label)
        shutil.copy(good.path, tmp_path / label / "kind" / good.path.name)
    (tmp_path / "medical" / "kind" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "non-medical" / "kind" / "empty.png").write_bytes(b"")
    table = extract_features(load_dataset(tmp_path), extractor, views=1, progress=False)
    assert len(table.samples) == 2
    assert sorted(Path(p).name for p, _ in table.skipped) == ["broken.jpg", "empty.png"]


def _sample(label: str, modality: str, source: str) -> Sample:
    return Sample(Path("x"), label, modality, source)


def test_weights_balance_labels_and_temper_big_sources():
    samples = (
        [_sample("medical", "fundus", "big")] * 100
        + [_sample("medical", "xray", "small")] * 4
        + [_sample("non-medical", "photo", "p")] * 30
    )
    w = sample_weights(samples)
    med = w[:104].sum()
    assert med == pytest.approx(w[104:].sum())
    fundus_share = w[:100].sum() / med
    assert 0.5 < fundus_share < 100 / 104  # heavier than xray, but far from its raw 96 %


def test_grouped_folds_keep_each_group_on_one_side():
    groups = ["a"] * 10 + ["b"] * 3 + ["c"] * 5 + ["d"] * 2 + ["e"] * 7
    folds = grouped_folds(groups, 3)
    seen = set()
    for fold in folds:
        names = {groups[i] for i in fold}
        assert not names & seen
        seen |= names
    assert sorted(np.concatenate(folds)) == list(range(len(groups)))


def test_modality_classes_merge_families_and_send_one_source_kinds_to_other():
    samples = [
        _sample("medical", "xray", "a"), _sample("medical", "mammography", "b"), _sample("medical", "ct", "c"),
        _sample("medical", "ct", "d"), _sample("medical", "dermoscopy", "e"), _sample("medical", "dermoscopy", "e"),
    ]
    classes, names = modality_names(samples)
    assert classes == ["ct", "xray", "other"]
    assert names == ["xray", "xray", "ct", "ct", "other", "other"]


def test_naming_rule_names_only_clearly_medical_images_the_head_is_sure_of():
    classes = ["ct", "xray", "other"]
    # rows: (p medical, modality probabilities, truth); None = non-medical
    rows = [
        (0.99, [0.9, 0.05, 0.05], "ct"), (0.97, [0.1, 0.8, 0.1], "xray"), (0.95, [0.7, 0.2, 0.1], "ct"),
        (0.9, [0.4, 0.35, 0.25], "xray"),   # unsure head: naming it would be wrong
        (0.6, [0.95, 0.03, 0.02], None),    # a non-medical image the binary head half believes
        (0.55, [0.9, 0.05, 0.05], None),
    ]
    proba = np.array([r[0] for r in rows])
    modality = np.array([r[1] for r in rows])
    rule = choose_naming_rule(proba, modality, [r[2] for r in rows], classes)
    names = rule.names(proba, modality, classes)
    assert names[:3] == ["ct", "xray", "ct"]
    assert names[3:] == [None, None, None]


def test_naming_rule_puts_a_name_on_at_most_its_share_of_non_medical_images():
    """Right-minus-wrong alone would name a confident false positive to win two right names; the
    cap on names for non-medical images forbids that, at the cost of those names."""
    classes = ["ct", "xray", "other"]
    rng = np.random.default_rng(0)
    # 100 non-medical images, two of them confident false positives the modality head is sure of
    non = [(0.3, [0.5, 0.3, 0.2], None)] * 98 + [(0.97, [0.95, 0.03, 0.02], None)] * 2
    medical = [(0.96 + 0.03 * rng.random(), [0.9, 0.05, 0.05], "ct") for _ in range(10)]
    rows = non + medical
    proba = np.array([r[0] for r in rows])
    modality = np.array([r[1] for r in rows])
    truth = [r[2] for r in rows]
    free = choose_naming_rule(proba, modality, truth, classes, max_named_non_medical=1.0)
    assert sum(n is not None for n in free.names(proba, modality, classes)[:100]) == 2  # 10 right - 2 wrong wins
    capped = choose_naming_rule(proba, modality, truth, classes)  # at most 1 %: one of 100
    names = capped.names(proba, modality, classes)
    assert sum(n is not None for n in names[:100]) <= 1
    assert all(n in ("ct", None) for n in names[100:])


def test_leave_sources_out_reports_every_source_and_framed_copies(trained):
    data, _, _, _ = trained
    keep = {"pydicom-data", "nilearn-mni152", "idrid-codras", "charts-sklearn-data", "tango-icons", "tuxpaint-stamps",
            "debian-htmldocs-screens"}
    sub = TrainingSet(data.real.subset([i for i, s in enumerate(data.real.samples) if s.source in keep]),
                      data.framed.subset([i for i, s in enumerate(data.framed.samples) if s.sources <= keep]))
    report = leave_sources_out(sub, seed=1, progress=False)
    assert set(report["per_source"]) == {s.source for s in sub.real.samples}
    assert 0.0 <= report["balanced_accuracy"] <= 1.0 and 0.0 <= report["calibration"]["ece"] <= 1.0
    assert len(report["probabilities"]) == len(sub.real.samples)
    assert all(0.0 <= p <= 1.0 for p in report["probabilities"])
    assert report["framed"] and report["framed_accuracy"] is not None
    only = leave_sources_out(sub, seed=1, progress=False, only={"tango-icons"})
    assert set(only["per_source"]) == {"tango-icons"}
    assert only["per_source"]["tango-icons"] == report["per_source"]["tango-icons"]
