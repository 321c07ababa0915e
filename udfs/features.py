"""Spark wrapper of :mod:`lenga.features` over the aggregation's curve rows (the only pyspark side of features).

The aggregation query emits one row per touched object holding its whole de-duplicated light curve
as arrays (``udfs.curves.CURVES_SCHEMA``). :func:`curve_features_batches` is the ``mapInArrow``
function of the features step: each Arrow batch (thousands of objects) is flattened to points once
and handed to :func:`lenga.features.extract_features` in one call, so the feature families run
vectorised over all its curves; no per-object Python.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from lenga.features import FeatureConfig
from lenga.features.curve_rows import feature_table


def curve_features_batches(config: FeatureConfig, schema_bytes: bytes):
    """A ``mapInArrow`` function: curve rows → feature rows of the Arrow schema in ``schema_bytes``
    (:func:`lenga.stream.steps.features.udf_schema`)."""

    def compute(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        schema = pa.ipc.read_schema(pa.py_buffer(schema_bytes))
        for batch in batches:
            if batch.num_rows == 0:
                continue
            table = feature_table(pa.Table.from_batches([batch]), config, schema)
            if table.num_rows:
                yield from table.to_batches()

    return compute
