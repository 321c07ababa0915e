"""Spark wrappers of :func:`lenga.decode.decode_record_batch` for ``DataFrame.mapInArrow``.

    decoded = kafka_df.mapInArrow(decode_batches, DECODED_SPARK_SCHEMA)
    ingested = kafka_df.mapInArrow(decode_and_write_alerts(alerts_root, batch_id), INGESTED_SPARK_SCHEMA)

The input has the columns of Spark's Kafka source. :func:`decode_batches` returns one row per
message with the schema :data:`lenga.schema.DECODED` (alerts columns, nested detections and
non_detections, quarantine reason and raw bytes).

:func:`decode_and_write_alerts` is the ingest's single pass over the messages: it also writes the
valid alerts, cutouts included, as Parquet files of the ``alerts`` table (uncommitted until the
driver commits their add actions) and returns the same rows *without* the cutouts, plus one row per
file written. The cutouts, most of an alert's bytes, thus cross from the decoding Python worker to
disk once and never enter the JVM: no Arrow→row conversion, no cached copy, no second Python
worker to write them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql.pandas.types import from_arrow_schema

from lenga.decode import decode_record_batch
from lenga.io.lake import ADD_ACTION_FIELDS, PartitionedFileWriter
from lenga.schema import ALERTS, CUTOUT_COLUMNS, DECODED, PARTITION_COLUMN

#: Spark schema of the decoded rows, derived from the Arrow schema (one definition of the columns).
DECODED_SPARK_SCHEMA = from_arrow_schema(DECODED)

#: Column of :data:`INGESTED` holding an alerts file's add action (null on message rows).
ALERT_FILE = "alert_file"
#: Output of :func:`decode_and_write_alerts`: the decoded rows without cutouts, and the files written.
INGESTED = pa.schema([
    *(f for f in DECODED if f.name not in CUTOUT_COLUMNS),
    pa.field(ALERT_FILE, pa.struct(list(ADD_ACTION_FIELDS))),
])
INGESTED_SPARK_SCHEMA = from_arrow_schema(INGESTED)


def decode_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: decode each Arrow batch of Kafka messages (empty batches included)."""
    for batch in batches:
        yield decode_record_batch(batch)


def decode_and_write_alerts(alerts_root: str, batch_id: int
                            ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """mapInArrow function: decode, write the valid alerts under ``alerts_root``, yield :data:`INGESTED`."""
    file_struct = INGESTED.field(ALERT_FILE).type

    def ingest(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        writer = PartitionedFileWriter(alerts_root, ALERTS, [PARTITION_COLUMN])
        for batch in batches:
            decoded = pa.Table.from_batches([decode_record_batch(batch, batch_id)])
            writer.write(decoded.filter(pc.is_null(decoded["quarantine_reason"])).select(ALERTS.names))
            thin = decoded.drop_columns(list(CUTOUT_COLUMNS))
            thin = thin.append_column(INGESTED.field(ALERT_FILE), pa.nulls(thin.num_rows, file_struct))
            yield from thin.cast(INGESTED).to_batches()
        files = writer.close()
        if files.num_rows:
            file_rows = {name: pa.nulls(files.num_rows, field.type) for name, field in zip(
                INGESTED.names, INGESTED, strict=True)}
            file_rows[ALERT_FILE] = pa.StructArray.from_arrays(files.columns, fields=list(file_struct))
            yield pa.RecordBatch.from_pydict(file_rows, schema=INGESTED)

    return ingest
