"""Spark wrapper of :func:`lenga.decode.decode_record_batch` for ``DataFrame.mapInArrow``.

    decoded = kafka_df.mapInArrow(decode_batches, DECODED_SPARK_SCHEMA)

The input has the columns of Spark's Kafka source; the output has one row per message with the
schema :data:`lenga.schema.DECODED` (alerts columns, nested detections/non_detections, quarantine
reason and raw bytes).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql.pandas.types import from_arrow_schema

from lenga.decode import decode_record_batch
from lenga.schema import DECODED

#: Spark schema of the decoded rows, derived from the Arrow schema (one definition of the columns).
DECODED_SPARK_SCHEMA = from_arrow_schema(DECODED)


def decode_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: decode each Arrow batch of Kafka messages (empty batches included)."""
    for batch in batches:
        yield decode_record_batch(batch)
