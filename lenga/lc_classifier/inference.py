"""Classify feature rows: the pure function behind the stream step, the report and the benchmark.

Objects are classified only when they have ``min_detections`` in one of ``detection_bands`` (ALeRCE:
6 in g or r) and their features were computed with the feature version the model was trained on;
any other object gets no row ("not enough data" is not a class). Each classified object gets one row
per class at both levels (3 top, 15 leaf), with its probability and its ranking within the level
(1 = most probable), in the layout of the ``lc_classifications`` table, and the object's
``out_of_domain`` score: the share of its features outside the training set's 1st-99th percentile
range (:func:`outside_fraction`). "Not enough information" is not a class; a high score flags a
classification made far from anything the model was trained on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from lenga.lc_classifier.model import LEAF_CLASSES, TOP_CLASSES, HierarchicalClassifier, as_matrix
from lenga.schema import described_field
from lenga.tables import LC_CLASSIFICATIONS_TABLE, TableSpec

CLASSIFIER = "lc_classifier"
#: ``out_of_domain`` above this flags a classification as out of the training domain (docs/real-sky.md).
OUT_OF_DOMAIN = 0.2
KEYS = ("survey", "objectId", "classifier", "classifier_version", "level", "class_name", "lastmjd", "ndet")
#: Per-object columns of the features rows copied to every classification row.
OBJECT_COLUMNS = ("survey", "objectId", "night", "lastmjd", "ndet")


def _field(name: str, kind: pa.DataType, description: str) -> pa.Field:
    return described_field(name, kind, description, nullable=False)


#: The ``lc_classifications`` table (partitioned by ``night``).
SCHEMA = pa.schema([
    _field("survey", pa.string(), "'ztf' or 'lsst'"),
    _field("objectId", pa.string(), "survey object id"),
    _field("night", pa.int32(), "observing night (yyyymmdd, lenga.night) of the object's last detection; partition"),
    _field("lastmjd", pa.float64(), "MJD of the last detection of the classified light curve"),
    _field("ndet", pa.int64(), "detections of the classified light curve, all bands"),
    _field("classifier", pa.string(), f"'{CLASSIFIER}'"),
    _field("classifier_version", pa.string(), "model version (models/lc_classifier/metadata.json)"),
    _field("level", pa.string(), "'top' (Periodic/Stochastic/Transient) or 'leaf' (15 ALeRCE classes)"),
    _field("class_name", pa.string(), "class"),
    _field("probability", pa.float64(), "P(class); leaf: P(branch) x P(leaf | branch)"),
    _field("ranking", pa.int32(), "rank of the class within its level for this object (1 = most probable)"),
    _field("batch_id", pa.int64(), "aggregation micro-batch that classified the light curve"),
    described_field("out_of_domain", pa.float64(), "share of the object's finite model features outside the "
                    f"training set's 1-99% range (0: typical of the training set; above {OUT_OF_DOMAIN} flagged "
                    "as out of the training domain); null in rows written before lenga had it", nullable=True),
])
#: What :func:`classify` returns (the step adds ``batch_id``).
ROWS_SCHEMA = pa.schema([f for f in SCHEMA if f.name != "batch_id"])
#: The table: rows keyed as described in lenga.stream.steps.lc_classifier; ``out_of_domain`` was added
#: after the first lakes were written (an older table gets it, null, at a job's start).
SPEC = TableSpec(LC_CLASSIFICATIONS_TABLE, SCHEMA, keys=KEYS, added_columns=("out_of_domain",))


def outside_fraction(frame: pd.DataFrame, ranges: dict[str, list[float]]) -> np.ndarray:
    """Per row, the fraction of its finite values of the ``ranges`` features (name -> [p1, p50, p99],
    the model's ``metadata["feature_ranges"]``) outside [p1, p99]; 0 for a row with no finite value."""
    names = [n for n in ranges if n in frame.columns]
    if not names:
        return np.zeros(len(frame))
    x = as_matrix(frame, names).astype(np.float64)
    low = np.array([ranges[n][0] for n in names])
    high = np.array([ranges[n][-1] for n in names])
    finite = np.isfinite(x)
    outside = finite & ((x < low) | (x > high))
    return outside.sum(axis=1) / np.maximum(finite.sum(axis=1), 1)


def eligible(features: pd.DataFrame, min_detections: int, detection_bands: tuple[str, ...]) -> np.ndarray:
    """Objects with ``min_detections`` de-duplicated detections in one of ``detection_bands``."""
    counts = [features[f"n_det_{b}"].to_numpy() for b in detection_bands if f"n_det_{b}" in features]
    if not counts:
        raise ValueError(f"features frame has no n_det_<band> column for bands {detection_bands}")
    return (np.column_stack(counts) >= min_detections).any(axis=1)


def _level_rows(objects: pd.DataFrame, proba: np.ndarray, classes: tuple[str, ...], level: str,
                out_of_domain: np.ndarray) -> dict:
    n, k = proba.shape
    order = np.argsort(-proba, axis=1, kind="stable")
    ranking = np.empty_like(order)
    np.put_along_axis(ranking, order, np.arange(1, k + 1)[None, :], axis=1)
    columns = {c: np.repeat(objects[c].to_numpy(), k) for c in OBJECT_COLUMNS}
    columns.update({"level": np.full(n * k, level, dtype=object), "class_name": np.tile(np.array(classes, dtype=object), n),
                    "probability": proba.ravel().astype(np.float64), "ranking": ranking.ravel().astype(np.int32),
                    "out_of_domain": np.repeat(out_of_domain, k)})
    return columns


def classify(model: HierarchicalClassifier, features: pd.DataFrame, min_detections: int,
             detection_bands: tuple[str, ...]) -> pd.DataFrame:
    """Classification rows (:data:`ROWS_SCHEMA`) of the eligible objects of a features frame.

    ``features`` holds feature rows (``lenga.features``) plus ``night``, ``lastmjd`` and ``ndet``;
    rows of another ``feature_version`` than the model's are not classified.
    """
    version = model.metadata.get("feature_version")
    keep = eligible(features, min_detections, detection_bands)
    if "feature_version" in features:
        keep &= (features["feature_version"] == version).to_numpy()
    objects = features.loc[keep]
    if objects.empty:
        return ROWS_SCHEMA.empty_table().to_pandas()
    top, leaf = model.predict_proba(model.matrix(objects))
    out_of_domain = outside_fraction(objects, model.metadata.get("feature_ranges", {}))
    parts = [pd.DataFrame(_level_rows(objects, top, TOP_CLASSES, "top", out_of_domain)),
             pd.DataFrame(_level_rows(objects, leaf, LEAF_CLASSES, "leaf", out_of_domain))]
    rows = pd.concat(parts, ignore_index=True)
    rows.insert(5, "classifier", CLASSIFIER)
    rows.insert(6, "classifier_version", model.metadata["classifier_version"])
    return rows.astype({"night": np.int32, "ndet": np.int64})
