"""Score the shipped classifiers on a labelled real set (``./spark-submit.sh evaluate``).

The set has the layout of ``../shared/data/real`` (``labels.csv``, ``lightcurves.parquet``,
``stamps.parquet``; either data file may be absent). Stamps are read as ``alerts`` rows
(:func:`lenga.stamps.realset.read_stamp_set`) and classified by the configured ZTF stamp model
with the stream's own inference (:func:`lenga.stamps.realset.score_stamps`): per class, balanced
recall, the same on first detections (ALeRCE's use), known variable stars called bogus, ECE.
Light curves take the production path: the
ZTF curves become the aggregation's curve rows (:mod:`lenga.lc_classifier.realset`), the stream's
feature function computes their features, and :func:`lenga.lc_classifier.inference.classify`
classifies the objects the stream would classify (``min_detections`` in one of
``detection_bands``); the predicted class of a level is its ranking-1 row, as a user reading
``lc_classifications`` would take it.

The report (JSON) holds, per level, ``per_class.<class>.{n, recall, precision}``, the balanced
recall over classes with at least :data:`lenga.scores.MIN_CLASS_SIZE` examples and the expected
calibration error; confusion matrices are written as PNG files beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from lenga.config import PROJECT_ROOT, Config
from lenga.features import FeatureConfig
from lenga.features.config import load_feature_config
from lenga.lc_classifier.evaluate import plot_confusion
from lenga.lc_classifier.inference import classify
from lenga.lc_classifier.model import BRANCH_OF, LEAF_CLASSES, TOP_CLASSES, HierarchicalClassifier
from lenga.lc_classifier.realset import (
    LIGHTCURVES_FILE,
    ZTF,
    RealSetError,
    labelled_features,
    read_labels,
    read_lightcurves,
)
from lenga.lc_classifier.settings import LCClassifierSettings
from lenga.scores import calibration, class_report
from lenga.stamps.inference import StampClassifier
from lenga.stamps.realset import STAMPS_FILE, read_stamp_set, score_stamps
from lenga.stream.steps.stamps import StampSettings

LEVELS = {"top": TOP_CLASSES, "leaf": LEAF_CLASSES}


def predictions(rows: pd.DataFrame, level: str) -> pd.DataFrame:
    """Per object: the ranking-1 class of ``level`` in classification rows and its probability."""
    best = rows[(rows["level"] == level) & (rows["ranking"] == 1)]
    return best.set_index("objectId")[["class_name", "probability"]]


def score_light_curves(directory: str | Path, settings: LCClassifierSettings, features_config: FeatureConfig,
                       figures: Path | None = None) -> dict:
    """``light_curves`` section of the report (see the module docstring); confusion PNGs written to
    ``<figures>_lc_{top,leaf}.png`` when ``figures`` is given."""
    labels, curves = read_labels(directory), read_lightcurves(directory)
    labelled = set(labels.dropna(subset=["label"])["object_id"])
    ztf_objects = set(curves.loc[curves["survey"] == ZTF, "object_id"].astype(str)) & labelled
    features = labelled_features(labels, curves, features_config)
    report = {"n_objects": len(ztf_objects), "n_classified": 0, "model": str(settings.model_path)}
    if features.empty:
        return report
    model = HierarchicalClassifier.load(settings.model_path)
    report["classifier_version"] = model.metadata.get("classifier_version")
    rows = classify(model, features, settings.min_detections, tuple(settings.detection_bands))
    truth = features.set_index("objectId")["class_name"]
    report["n_classified"] = int(rows["objectId"].nunique())
    for level, classes in LEVELS.items():
        best = predictions(rows, level)
        true = truth.loc[best.index].to_numpy()
        if level == "top":
            true = np.array([BRANCH_OF[c] for c in true], dtype=object)
        predicted = best["class_name"].to_numpy()
        report[level] = {**class_report(true, predicted, classes),
                         "calibration": calibration(best["probability"].to_numpy(), true == predicted)}
        if figures is not None and len(true):
            matrix = confusion_matrix(true, predicted, labels=list(classes), normalize="true")
            plot_confusion(np.nan_to_num(matrix), classes,
                           f"{level} level, real set: balanced recall {report[level]['balanced_recall']:.3f}",
                           figures.parent / f"{figures.name}_lc_{level}.png")
    return report


def score_stamp_set(directory: Path, settings: StampSettings, figures: Path | None = None) -> dict:
    """``stamps`` section of the report; confusion PNG written to ``<figures>_stamps.png``."""
    try:
        rows = read_stamp_set(directory)
    except ValueError as error:
        raise RealSetError(str(error)) from None
    model = settings.models.get("ztf")
    if model is None:
        raise RealSetError("stamp_classifier.models.ztf is null: no ZTF stamp model to evaluate")
    scores = score_stamps(StampClassifier.load(PROJECT_ROOT / model), rows)
    if figures is not None and scores["n"]:
        counts = np.array(scores["confusion_matrix"]["counts"], dtype=float)
        matrix = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        plot_confusion(matrix, tuple(scores["confusion_matrix"]["classes"]),
                       f"stamps, real set: balanced recall {_fmt(scores['balanced_recall'])}",
                       figures.parent / f"{figures.name}_stamps.png")
    return {"model": str(model), **scores}


def evaluate_real_set(directory: Path, config: Config, figures: Path | None = None) -> dict:
    """The whole report of a labelled real set: ``stamps`` and ``light_curves`` for the data it has."""
    if not directory.is_dir():
        raise RealSetError(f"labelled real set {directory} is not a directory")
    report: dict = {"real_set": str(directory.resolve())}
    if (directory / STAMPS_FILE).exists():
        report["stamps"] = score_stamp_set(directory, StampSettings.from_config(config), figures)
    if (directory / LIGHTCURVES_FILE).exists():
        report["light_curves"] = score_light_curves(directory, LCClassifierSettings.from_config(config),
                                                    load_feature_config(config.section("features")), figures)
    if len(report) == 1:
        raise RealSetError(f"{directory} has neither {LIGHTCURVES_FILE} nor {STAMPS_FILE} to score")
    return report


def summary_lines(report: dict) -> list[str]:
    """One line per scored level: balanced recall, number of objects, calibration error."""
    lines = []
    stamps = report.get("stamps")
    if stamps:
        lines.append(f"stamps: {stamps['n']} alerts, balanced recall {_fmt(stamps['balanced_recall'])} over "
                     f"{', '.join(stamps['balanced_over'])}; first detections "
                     f"{_fmt(stamps['first_detection']['balanced_recall'])}; known variable stars called bogus "
                     f"{_fmt(stamps['known_vs_called_bogus'])}; ECE {_fmt(stamps['ece'])}")
    curves = report.get("light_curves")
    if curves:
        lines.append(f"light curves: {curves['n_classified']} of {curves['n_objects']} labelled ZTF objects classified "
                     "(the others have too few detections)")
        for level in LEVELS:
            if level in curves:
                part = curves[level]
                lines.append(f"  {level}: balanced recall {_fmt(part['balanced_recall'])} over classes with "
                             f">= {part['min_class_size']} objects; ECE {_fmt(part['calibration']['ece'])}")
    return lines


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
