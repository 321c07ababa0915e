"""Spark wrappers of :func:`lenga.decode.decode_messages` for ``DataFrame.mapInArrow``.

    decoded = kafka_df.mapInArrow(decode_batches, DECODED_SPARK_SCHEMA)
    ingested = kafka_df.mapInArrow(decode_and_write(alerts_root, staging, batch_id), INGESTED_SPARK_SCHEMA)

The input has the columns of Spark's Kafka source. :func:`decode_batches` returns one row per
message with the schema :data:`lenga.schema.DECODED` (alerts columns, nested detections and
non_detections, quarantine reason and raw bytes).

:func:`decode_and_write` is the ingest's single pass over the messages (delta-rs lake). It writes
the valid alerts, cutouts included, as Parquet files of the ``alerts`` table, and the task's
detections and non-detections, de-duplicated within the task, as *staged* Parquet files under
``staging`` (both uncommitted until the driver commits add actions). It yields the messages' thin
rows (:data:`MESSAGE_COLUMNS`: alert keys, provenance, quarantine reason and raw bytes) plus one
row per file written. Why: the cutouts are most of an alert's bytes, and the history rows (~50 per
ZTF alert, most of them repeats of earlier alerts' history) were most of the rows; neither enters
the JVM any more, nor do the alert columns, which the ``alerts`` files hold. The driver then de-duplicates the staged rows across tasks and against the lake,
night by night (:meth:`lenga.io.lake.DeltaRsLake.append_staged`).

Both decode through :func:`decode_or_quarantine`: a chunk whose decoding still raises is decoded
again message by message, and only the messages that raise are quarantined ("decoder error: ..."),
so message content never fails a micro-batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql.pandas.types import from_arrow_schema

from lenga.decode import KafkaMessages, decode_messages, message_error, quarantine_messages
from lenga.io.lake.files import ADD_ACTION_FIELDS, PartitionedFileWriter, first_per_key
from lenga.schema import ALERTS, DECODED, PARTITION_COLUMN, QUARANTINE, TABLE_KEYS, TABLES

#: Spark schema of the decoded rows, derived from the Arrow schema (one definition of the columns).
DECODED_SPARK_SCHEMA = from_arrow_schema(DECODED)

#: Tables whose rows come from the alerts' histories, staged by :func:`decode_and_write`.
HISTORY_TABLES = ("detections", "non_detections")
#: Columns of :data:`INGESTED` describing a written file (null on message rows): its table and its
#: add action (``path`` relative to the table root, or to the table's staging directory).
FILE_TABLE = "file_table"
FILE = "file"
#: Columns of a message row of :data:`INGESTED`: what the driver's commits need (the alerts' keys,
#: Kafka row id and night) and what the ``quarantine`` table stores. The alert columns themselves
#: are in the ``alerts`` files: carrying all 58 of them into the JVM (converted, cached, shuffled)
#: only to drop them cost JVM CPU in every micro-batch.
MESSAGE_COLUMNS = list(dict.fromkeys([
    *TABLE_KEYS["alerts"], *(name for name in QUARANTINE.names if name in DECODED.names), "quarantine_reason"]))
#: Output of :func:`decode_and_write`: thin message rows, and the files written.
INGESTED = pa.schema([
    *(DECODED.field(name) for name in MESSAGE_COLUMNS),
    pa.field(FILE_TABLE, pa.string()),
    pa.field(FILE, pa.struct(list(ADD_ACTION_FIELDS))),
])
INGESTED_SPARK_SCHEMA = from_arrow_schema(INGESTED)


def decode_or_quarantine(messages: KafkaMessages, batch_id: int | None = None) -> pa.RecordBatch:
    """:func:`lenga.decode.decode_messages`, with the stream's last line of defence: if decoding the
    chunk raises anyway (a decoder bug a message triggers), each message is decoded alone and the
    ones that still raise become quarantine rows with the exception as reason. The fallback costs
    nothing until a chunk raises."""
    try:
        return decode_messages(messages, batch_id)
    except BaseException as exc:
        if not message_error(exc):
            raise
        if len(messages.values) <= 1:
            reason = f"decoder error: {type(exc).__name__}: {exc}"
            return quarantine_messages(messages, [reason] * len(messages.values), batch_id)
    return pa.concat_batches([decode_or_quarantine(messages.slice(i, 1), batch_id)
                              for i in range(len(messages.values))])


def decode_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: decode each Arrow batch of Kafka messages (empty batches included)."""
    for batch in batches:
        yield decode_or_quarantine(KafkaMessages.from_record_batch(batch))


def decode_and_write(alerts_root: str, staging: str, batch_id: int
                     ) -> Callable[[Iterator[pa.RecordBatch | KafkaMessages]], Iterator[pa.RecordBatch]]:
    """mapInArrow function: decode, write alerts files under ``alerts_root`` and history files
    under ``staging/<table>``, yield :data:`INGESTED` rows (see the module docstring). Also takes
    :class:`lenga.decode.KafkaMessages` (the ``lenga_kafka_ingest`` source)."""

    def ingest(batches: Iterator[pa.RecordBatch | KafkaMessages]) -> Iterator[pa.RecordBatch]:
        alerts = PartitionedFileWriter(alerts_root, ALERTS, [PARTITION_COLUMN])
        # The task's history rows, de-duplicated once at the end: most repeats are other alerts'
        # copies of the same points, spread over the task's chunks (a ZTF alert's ~50 rows are a
        # few MB per thousand alerts, and de-duplicating each chunk too cost 7% of the task's CPU).
        history: dict[str, list[pa.Table]] = {name: [] for name in HISTORY_TABLES}
        for batch in batches:
            messages = batch if isinstance(batch, KafkaMessages) else KafkaMessages.from_record_batch(batch)
            decoded = pa.Table.from_batches([decode_or_quarantine(messages, batch_id)])
            rejected = decoded["quarantine_reason"].null_count < decoded.num_rows
            # Filtering copies every column, cutouts included: only when something was rejected.
            valid = decoded.filter(pc.is_null(decoded["quarantine_reason"])) if rejected else decoded
            alerts.write(valid.select(ALERTS.names))
            for name, tables in history.items():
                tables.append(flattened(valid[name]))
            thin = decoded.select(MESSAGE_COLUMNS)
            yield from _with_file_columns(thin).cast(INGESTED).to_batches()
        yield from _file_rows("alerts", alerts.close())
        for name, tables in history.items():
            if tables:
                writer = PartitionedFileWriter(os.path.join(staging, name), TABLES[name], [PARTITION_COLUMN])
                writer.write(first_per_key(pa.concat_tables(tables), list(TABLE_KEYS[name])))
                yield from _file_rows(name, writer.close())

    return ingest


def flattened(nested: pa.ChunkedArray) -> pa.Table:
    """The struct rows of a list<struct> column, as a table."""
    return pa.Table.from_struct_array(pc.list_flatten(nested))


def _with_file_columns(table: pa.Table, file_table: pa.Array | None = None, files: pa.Array | None = None
                       ) -> pa.Table:
    rows = table.num_rows
    table = table.append_column(INGESTED.field(FILE_TABLE),
                                pa.nulls(rows, pa.string()) if file_table is None else file_table)
    return table.append_column(INGESTED.field(FILE),
                               pa.nulls(rows, INGESTED.field(FILE).type) if files is None else files)


def _file_rows(table: str, files: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    """One :data:`INGESTED` row per file of ``table`` (message columns null)."""
    if not files.num_rows:
        return
    message_columns = [f for f in INGESTED if f.name not in (FILE_TABLE, FILE)]
    empty = pa.table({f.name: pa.nulls(files.num_rows, f.type) for f in message_columns})
    struct = pa.StructArray.from_arrays(files.columns, fields=list(INGESTED.field(FILE).type))
    out = _with_file_columns(empty, pa.array([table] * files.num_rows, pa.string()), struct)
    yield from out.cast(INGESTED).to_batches()
