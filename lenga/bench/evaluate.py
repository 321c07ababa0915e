"""Score the shipped classifiers on a labelled real set (``./spark-submit.sh evaluate``).

The set has the layout of ``../shared/data/real`` (``labels.csv``, ``lightcurves.parquet``,
``stamps.parquet``; either data file may be absent). Light curves take the production path: the
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

from lenga.config import Config
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

LEVELS = {"top": TOP_CLASSES, "leaf": LEAF_CLASSES}


def predictions(rows: pd.DataFrame, level: str) -> pd.DataFrame:
    """Per object: the ranking-1 class of ``level`` in classification rows and its probability."""
    best = rows[(rows["level"] == level) & (rows["ranking"] == 1)]
    return best.set_index("objectId")[["class_name", "probability"]]


def score_light_curves(directory: str | Path, settings: LCClassifierSettings, features_config: FeatureConfig,
                       figures: Path | None = None) -> dict:
    """``light_curves`` section of the report (see the module docstring); confusion PNGs written to
    ``<figures>_lc_{top,leaf}.png`` when ``figures`` is given."""
    labelled = set(read_labels(directory).dropna(subset=["label"])["object_id"])
    curves = read_lightcurves(directory)
    ztf_objects = set(curves.loc[curves["survey"] == ZTF, "object_id"].astype(str)) & labelled
    features = labelled_features(directory, features_config)
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


def evaluate_real_set(directory: Path, config: Config, figures: Path | None = None) -> dict:
    """The whole report of a labelled real set (``light_curves`` when it has light curves)."""
    if not directory.is_dir():
        raise RealSetError(f"labelled real set {directory} is not a directory")
    report: dict = {"real_set": str(directory.resolve())}
    if (directory / LIGHTCURVES_FILE).exists():
        report["light_curves"] = score_light_curves(directory, LCClassifierSettings.from_config(config),
                                                    load_feature_config(config.section("features")), figures)
    if len(report) == 1:
        raise RealSetError(f"{directory} has neither {LIGHTCURVES_FILE} nor stamps to score")
    return report


def summary_lines(report: dict) -> list[str]:
    """One line per scored level: balanced recall, number of objects, calibration error."""
    lines = []
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
