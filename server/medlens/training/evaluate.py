"""Evaluation of a trained model on labelled data: the metrics report, a printed table and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medlens.training.calibration import reliability
from medlens.model.classifier import Classifier
from medlens.training.dataset import Sample
from medlens.training.features import extract_features
from medlens.model.labels import OTHER_MODALITY
from medlens.training.metrics import binary_report, roc_curve
from medlens.training.train import MODALITY_FAMILY


def evaluate(
    classifier: Classifier, samples: Sequence[Sample], *, threshold: float | None = None, progress: bool = True
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Report (the JSON shape of `medlens evaluate`) plus the labels and probabilities behind it."""
    table = extract_features(samples, classifier.extractor, views=1, progress=progress)
    proba = classifier.head.predict_proba(table.features[:, 0]) if len(table.samples) else np.zeros(0)
    y = table.y
    cut = classifier.threshold if threshold is None else threshold
    report = binary_report(
        y, proba, cut, [s.source for s in table.samples], [f"{s.label}/{s.modality}" for s in table.samples]
    )
    report["model"] = classifier.info
    report["calibration"] = reliability(y, proba)
    report["modality"] = _modality_report(classifier, table.samples, table.features[:, 0], proba >= cut)
    report["skipped"] = [{"path": p, "reason": r} for p, r in table.skipped]
    report["errors"] = [
        {"path": str(s.path), "label": s.label, "modality": s.modality, "source": s.source, "probability": float(p)}
        for s, p, t in zip(table.samples, proba, y)
        if int(p >= cut) != t
    ]
    return report, y, proba


def _modality_report(classifier: Classifier, samples: Sequence[Sample], features: np.ndarray, called_medical: np.ndarray) -> dict[str, Any]:
    """On medical images called medical: named right, named wrong, or left unnamed, per true kind."""
    named = classifier.head.predict_modality(features) if len(features) else []
    known = set(classifier.head.modality_classes) - {OTHER_MODALITY}
    rows: dict[str, dict[str, Any]] = {}
    for s, name, med in zip(samples, named, called_medical):
        if s.y != 1 or not med:
            continue
        truth = MODALITY_FAMILY.get(s.modality, s.modality)
        row = rows.setdefault(truth, {"n": 0, "right": 0, "null": 0, "named": {}})
        row["n"] += 1
        row["right"] += int(name == truth)
        row["null"] += int(name is None)
        if name:
            row["named"][name] = row["named"].get(name, 0) + 1
    scored = [r for k, r in rows.items() if k in known]
    total = sum(r["n"] for r in scored)
    return {
        "accuracy_known_kinds": sum(r["right"] for r in scored) / total if total else None,
        "per_kind": dict(sorted(rows.items())),
        "known_kinds": sorted(known),
    }


def format_report(report: dict[str, Any]) -> str:
    """The table a person reads in the terminal."""
    auc = report.get("roc_auc")
    auc_text = f"{auc:.4f}" if auc is not None else "n/a (one class only)"
    lines = [
        f"images {report['n']}   threshold {report['threshold']:.3f}",
        f"accuracy {report['accuracy']:.4f}   balanced accuracy {report['balanced_accuracy']:.4f}   ROC AUC {auc_text}",
        "",
        f"{'class':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}",
    ]
    for name, m in report["per_class"].items():
        lines.append(f"{name:<14}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}{m['support']:>10d}")
    c = report["confusion"]
    lines += [
        "",
        "confusion (rows: truth, columns: predicted)   non-medical   medical",
        f"  non-medical {c['tn']:>34d} {c['fp']:>9d}",
        f"  medical     {c['fn']:>34d} {c['tp']:>9d}",
    ]
    if "calibration" in report:
        lines += ["", f"expected calibration error (10 bins) {report['calibration']['ece']:.4f}"]
    mod = report.get("modality")
    if mod and mod.get("accuracy_known_kinds") is not None:
        lines += ["", f"modality named right on medical images of kinds it knows: {mod['accuracy_known_kinds']:.3f}",
                  f"  {'kind':<16}{'n':>5}{'right':>7}{'null':>6}   named as"]
        for kind, r in mod["per_kind"].items():
            names = ", ".join(f"{k} {v}" for k, v in sorted(r["named"].items(), key=lambda kv: -kv[1]))
            lines.append(f"  {kind:<16}{r['n']:>5}{r['right']:>7}{r['null']:>6}   {names}")
    for title, key in (("source", "per_source"), ("label/modality", "per_modality")):
        lines += ["", f"{title:<34}{'n':>5}{'acc':>8}{'errors':>8}{'mean p':>8}"]
        for name, m in report[key].items():
            lines.append(f"  {name:<32}{m['n']:>5d}{m['accuracy']:>8.3f}{m['errors']:>8d}{m['mean_probability']:>8.3f}")
    return "\n".join(lines)


def write_plots(report: dict[str, Any], y: np.ndarray, proba: np.ndarray, out_dir: Path) -> list[Path]:
    """ROC curve, confusion matrix and reliability diagram as PNGs next to the JSON report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if len(np.unique(y)) == 2:
        fpr, tpr = roc_curve(y, proba)
        ax.plot(fpr, tpr, label=f"AUC {report['roc_auc']:.4f}")
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (medical = positive)")
    ax.legend(loc="lower right")
    paths.append(_save(fig, out_dir / "roc.png"))

    fig, ax = plt.subplots(figsize=(4.5, 4))
    matrix = np.array(report["confusion"]["matrix"])
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", color="black", fontsize=14)
    ax.set_xticks([0, 1], ["non-medical", "medical"])
    ax.set_yticks([0, 1], ["non-medical", "medical"])
    ax.set(xlabel="predicted", ylabel="truth", title=f"confusion at threshold {report['threshold']:.3f}")
    paths.append(_save(fig, out_dir / "confusion.png"))

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    bins = reliability(y, proba)
    centres = [b["mean_probability"] for b in bins["bins"]]
    observed = [b["observed"] for b in bins["bins"]]
    counts = [b["n"] for b in bins["bins"]]
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.plot(centres, observed, marker="o")
    for x, o, n in zip(centres, observed, counts):
        ax.annotate(str(n), (x, o), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(xlabel="predicted probability of medical", ylabel="observed share medical", title=f"reliability (ECE {bins['ece']:.3f})")
    paths.append(_save(fig, out_dir / "reliability.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
