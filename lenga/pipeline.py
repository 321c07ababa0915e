"""The streaming query: alerts source → vectorized decode → four Delta tables, per micro-batch.

    Kafka (or a directory of alert files)
      └─ mapInArrow(decode)                one row per message: alert + nested history, or a reason
           └─ foreachBatch(MicroBatchWriter)
                ├─ alerts           (survey, candid) unique
                ├─ detections       every detection once, from the alert and its history
                ├─ non_detections   upper limits and forced photometry, once
                └─ quarantine       undecodable messages with raw bytes and the reason

The decoded micro-batch is persisted once so the four writes do not re-read Kafka nor re-decode.
Each table gets one Delta transaction tagged with (query id, batch id): a batch replayed after a
crash is skipped table by table, so a kill -9 at any point loses nothing and writes nothing twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from lenga import schema
from lenga.config import Config, SourceConfig
from lenga.decode import STAGE as DECODE_STAGE
from lenga.io.lake import Lake, TableSpec, WriteResult
from lenga.io.session import kafka_format

# Each alert and each quarantined message is one Kafka record: its coordinates identify the row.
KAFKA_ROW_ID = ("topic", "partition", "offset")
TABLE_SPECS = {
    name: TableSpec(name, table, tuple(schema.TABLE_KEYS[name]),
                    row_id=KAFKA_ROW_ID if name in ("alerts", "quarantine") else ())
    for name, table in schema.TABLES.items()
}


def read_alert_stream(spark: SparkSession, source: SourceConfig) -> DataFrame:
    """The raw message stream with the columns of Spark's Kafka source, from Kafka or files."""
    if source.kind == "files":
        if not source.files.path:
            raise ValueError("source.files.path is required when source.kind is 'files'")
        reader = spark.readStream.format("lenga_files").option("path", source.files.path)
        if source.files.max_files_per_trigger:
            reader = reader.option("maxFilesPerTrigger", source.files.max_files_per_trigger)
        return reader.load()
    kafka = source.kafka
    if not kafka.bootstrap_servers:
        raise ValueError("source.kafka.bootstrap_servers is not set (the demo starts an embedded broker)")
    reader = (spark.readStream.format(kafka_format(spark))
              .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
              .option("subscribe", ",".join(kafka.topics))
              .option("startingOffsets", kafka.starting_offsets)
              .option("minPartitions", kafka.min_partitions)
              .option("failOnDataLoss", "true"))
    if kafka.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", kafka.max_offsets_per_trigger)
    for key, value in kafka.options.items():
        reader = reader.option(key, value)
    return reader.load()


def decode_stream(raw: DataFrame) -> DataFrame:
    """One vectorized Arrow step: every message → one decoded row (see lenga.decode)."""
    from udfs.decode import DECODED_SPARK_SCHEMA, decode_batches

    return raw.mapInArrow(decode_batches, DECODED_SPARK_SCHEMA)


def split_tables(decoded: DataFrame) -> dict[str, DataFrame]:
    """The four lake tables of a decoded micro-batch."""
    valid = decoded.where(F.col("quarantine_reason").isNull())
    rejected = decoded.where(F.col("quarantine_reason").isNotNull())
    return {
        "alerts": valid.select(*schema.ALERTS.names),
        "detections": valid.select(F.explode("detections").alias("row")).select("row.*"),
        "non_detections": valid.select(F.explode("non_detections").alias("row")).select("row.*"),
        "quarantine": rejected.withColumn("reason", F.col("quarantine_reason"))
                              .withColumn("stage", F.lit(DECODE_STAGE))
                              .select(*schema.QUARANTINE.names),
    }


@dataclass
class BatchContext:
    """What an enrichment step sees of a micro-batch after the four core tables are committed.

    ``tables`` holds this batch's rows (decoded, not re-read from the lake); ``app_id`` and
    ``batch_id`` must tag every Delta commit the step makes so that replays stay idempotent.
    """

    spark: SparkSession
    lake: Lake
    app_id: str
    batch_id: int
    tables: dict[str, DataFrame]
    config: Config


class BatchStep(Protocol):
    """An enrichment stage run after the core tables (cross-match, aggregation, classifiers...).

    Returns the write results of the tables it appended to, keyed by table name.
    """

    name: str

    def __call__(self, batch: BatchContext) -> dict[str, WriteResult]: ...


@dataclass
class BatchReport:
    """What one micro-batch did, for the demo summary and the benchmark."""

    batch_id: int
    input_rows: int
    decode_s: float
    write_s: float
    tables: dict[str, WriteResult] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.decode_s + self.write_s + sum(self.step_seconds.values())


def query_app_id(checkpoint: str) -> str:
    """The Delta application id of a streaming query: ``lenga-<query id>``.

    The query id is written by Spark in ``<checkpoint>/metadata`` before the first batch and stays
    the same across restarts from that checkpoint, which is what replay detection needs.
    """
    with open(Path(checkpoint) / "metadata") as handle:
        return "lenga-" + json.loads(handle.readline())["id"]


class MicroBatchWriter:
    """The ``foreachBatch`` function: persist the decoded batch once, append the four tables,
    then run the enrichment steps in order."""

    def __init__(self, lake: Lake, config: Config, steps: list[BatchStep] | None = None):
        self.lake = lake
        self.config = config
        self.checkpoint = config.stream.checkpoint
        self.steps = steps or []
        self.reports: list[BatchReport] = []
        self._app_id: str | None = None

    def __call__(self, decoded: DataFrame, batch_id: int) -> None:
        if self._app_id is None:
            self._app_id = query_app_id(self.checkpoint)
        started = time.perf_counter()
        decoded = decoded.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            input_rows = decoded.count()
            decoded_at = time.perf_counter()
            tables = split_tables(decoded)
            results = {
                name: self.lake.append_new(TABLE_SPECS[name], table, self._app_id, batch_id)
                for name, table in tables.items()
            }
            report = BatchReport(batch_id, input_rows, decoded_at - started,
                                 time.perf_counter() - decoded_at, results)
            context = BatchContext(decoded.sparkSession, self.lake, self._app_id, batch_id, tables, self.config)
            for step in self.steps:
                step_started = time.perf_counter()
                report.tables.update(step(context))
                report.step_seconds[step.name] = time.perf_counter() - step_started
        finally:
            decoded.unpersist()
        self.reports.append(report)


def start_stream(spark: SparkSession, config: Config, lake: Lake,
                 steps: list[BatchStep] | None = None) -> tuple[StreamingQuery, MicroBatchWriter]:
    """Start the streaming query described by ``config``; returns it with its batch writer."""
    stream = config.stream
    Path(stream.checkpoint).mkdir(parents=True, exist_ok=True)
    for spec in TABLE_SPECS.values():
        lake.ensure(spec)
    writer = MicroBatchWriter(lake, config, steps)
    decoded = decode_stream(read_alert_stream(spark, config.source))
    builder = (decoded.writeStream.queryName(stream.query_name).foreachBatch(writer)
               .option("checkpointLocation", stream.checkpoint))
    if stream.trigger == "available_now":
        builder = builder.trigger(availableNow=True)
    else:
        builder = builder.trigger(processingTime=stream.processing_time)
    return builder.start(), writer
