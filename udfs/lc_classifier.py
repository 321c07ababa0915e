"""Spark wrapper of :func:`lenga.lc_classifier.inference.classify` (``mapInArrow`` over feature rows).

The model travels as a broadcast of its UBJSON boosters and metadata (a few MB, sent once per
executor); each Python worker deserialises it once and keeps it for later batches and micro-batches
(:func:`_model`, keyed by classifier version), so no task reads model files or unpickles Python objects.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pyarrow as pa

from lenga.lc_classifier.inference import ROWS_SCHEMA, classify
from lenga.lc_classifier.model import HierarchicalClassifier

#: Models deserialised in this worker process, by classifier version.
_MODELS: dict[str, HierarchicalClassifier] = {}


def _model(raw: dict[str, bytes], metadata: dict) -> HierarchicalClassifier:
    version = metadata["classifier_version"]
    if version not in _MODELS:
        _MODELS[version] = HierarchicalClassifier.from_bytes(raw, metadata, nthread=1)
    return _MODELS[version]


def classification_table(model: HierarchicalClassifier, features: pd.DataFrame, min_detections: int,
                         detection_bands: tuple[str, ...]) -> pa.Table:
    """:func:`~lenga.lc_classifier.inference.classify` as an Arrow table of ``ROWS_SCHEMA``."""
    rows = classify(model, features, min_detections, detection_bands)
    return pa.Table.from_pandas(rows, schema=ROWS_SCHEMA, preserve_index=False)


def classify_batches(broadcast, min_detections: int, detection_bands: tuple[str, ...]):
    """A ``mapInArrow`` function: feature rows → :data:`~lenga.lc_classifier.inference.ROWS_SCHEMA` rows.

    ``broadcast`` holds ``(raw boosters, metadata)`` of :meth:`HierarchicalClassifier.to_bytes`.
    """

    def compute(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = _model(*broadcast.value)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            rows = classification_table(model, batch.to_pandas(), min_detections, detection_bands)
            if rows.num_rows:
                yield from rows.to_batches()

    return compute


def classified_rows(broadcast, min_detections: int, detection_bands: tuple[str, ...], features_table: str,
                    curves: pa.Table, rows: dict[str, pa.Table]) -> pa.Table:
    """The classifier step's function in the aggregation's single pass
    (``udfs.curves.object_row_batches``): the classification rows of the features rows
    computed for the same curves (``rows[features_table]``); ``broadcast`` as in :func:`classify_batches`."""
    if features_table not in rows:
        raise RuntimeError(f"the light-curve classifier needs the {features_table!r} rows of the same pass: "
                           "run the features step before it")
    return classification_table(_model(*broadcast.value), rows[features_table].to_pandas(), min_detections,
                                detection_bands)
