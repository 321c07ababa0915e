"""The streaming query: alerts source → vectorized decode → four Delta tables, per micro-batch.

    Kafka (or a directory of alert files)
      └─ foreachBatch(MicroBatchWriter)
           └─ mapInArrow(decode, write files)     one pass over the messages (udfs.decode): alerts
                │                                 with cutouts → Parquet, history → staged Parquet
                │                                 (de-duplicated per task), thin rows out (with
                │                                 lenga's Kafka source and delta-rs, the reading
                │                                 task does it: lenga_kafka_ingest)
                ├─ alerts           files committed as they are, (survey, candid) unique
                ├─ detections       every detection once, from the alert and its history
                ├─ non_detections   upper limits and forced photometry, once
                └─ quarantine       undecodable messages with raw bytes and the reason

Why this shape (measured, see the ingest section of the README): a ZTF alert is ~82 kB, ~50 kB of
it cutouts, and carries ~50 history rows, most of them already seen in earlier alerts; every
crossing of those bytes and rows between the JVM and Python cost more CPU than decoding them. So
the decode pass writes the wide ``alerts`` rows and stages the history rows itself, and only the
thin message rows (alert keys, provenance, quarantine) enter the JVM and are cached. One Spark
job materialises that cache and returns everything the commits need (counts, nights, the files);
the history tables are then one stage of one task per (table, night) that reads the night's
staged files, de-duplicates them against the lake and writes the new rows
(:meth:`lenga.io.lake.DeltaRsLake.append_staged`). With delta-spark (no executor-side file commits)
the decoded batch is cached whole and each table appended with ``Lake.append_new``.

Each table gets one Delta transaction tagged with (query id, batch id): a batch replayed after a
crash is skipped table by table, so a kill -9 at any point loses nothing and writes nothing twice.
Alerts files written by a batch that never committed are invisible (readers follow the Delta log)
and removed by ``VACUUM``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from rich.console import Console
from rich.table import Table

from lenga import schema
from lenga.config import Config, SourceConfig
from lenga.decode import STAGE as DECODE_STAGE
from lenga.io.checkpoint import query_app_id
from lenga.io.lake import Lake, open_lake, remove_staging, spark_schema, staging_dir
from lenga.io.session import await_query, build_session, chained_query, kafka_format, start_in_pool
from lenga.schema import PARTITION_COLUMN
from lenga.stream.file_source import AlertFileDataSource
from lenga.stream.ingest_source import IngestingKafkaDataSource
from lenga.stream.steps.base import BatchContext, BatchStep
from lenga.tables import KAFKA_ROW_ID, TABLE_SPECS, WriteResult
from udfs.decode import (
    DECODED_SPARK_SCHEMA,
    FILE,
    FILE_TABLE,
    HISTORY_TABLES,
    INGESTED_SPARK_SCHEMA,
    decode_and_write,
    decode_batches,
)


def read_alert_stream(spark: SparkSession, source: SourceConfig, ingest_into: tuple[str, str, str] | None = None
                      ) -> DataFrame:
    """The raw message stream with the columns of Spark's Kafka source, from Kafka or files.

    ``ingest_into`` = (alerts table root, staging root, query checkpoint): where lenga's own Kafka source is used,
    read with ``lenga_kafka_ingest`` instead, which decodes in the reading task, writes the alerts
    files and yields :data:`udfs.decode.INGESTED` rows (see :class:`MicroBatchWriter`).
    """
    spark.dataSource.register(AlertFileDataSource)
    spark.dataSource.register(IngestingKafkaDataSource)
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
    source_format = kafka_format(spark)
    reader = spark.readStream
    if ingest_into is not None and source_format == "lenga_kafka":
        source_format = "lenga_kafka_ingest"
        alerts_path, staging_path, checkpoint = ingest_into
        reader = (reader.option("alertsPath", alerts_path).option("stagingPath", staging_path)
                  .option("checkpointLocation", checkpoint))
    reader = (reader.format(source_format)
              .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
              .option("subscribe", ",".join(kafka.topics))
              .option("startingOffsets", kafka.starting_offsets)
              # One task per core: more only adds files and a second wave of tasks (measured with
              # 2 Kafka partitions on 2 cores: 4.8 s -> 4.4 s for 10,000 alerts with 2 tasks, not 4).
              .option("minPartitions", kafka.min_partitions or spark.sparkContext.defaultParallelism)
              .option("failOnDataLoss", "true"))
    if kafka.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", kafka.max_offsets_per_trigger)
    for key, value in kafka.options.items():
        reader = reader.option(key, value)
    return reader.load()


def decode_stream(raw: DataFrame) -> DataFrame:
    """One vectorized Arrow step: every message → one decoded row (see lenga.decode)."""

    return raw.mapInArrow(decode_batches, DECODED_SPARK_SCHEMA)


def split_tables(decoded: DataFrame) -> dict[str, DataFrame]:
    """The four lake tables of a decoded micro-batch, history rows before de-duplication."""
    valid = decoded.where(F.col("quarantine_reason").isNull())
    return {
        "alerts": valid.select(*schema.ALERTS.names),
        "detections": valid.select(F.explode("detections").alias("row")).select("row.*"),
        "non_detections": valid.select(F.explode("non_detections").alias("row")).select("row.*"),
        "quarantine": quarantine_rows(decoded),
    }


def quarantine_rows(decoded: DataFrame) -> DataFrame:
    """``quarantine`` rows of decoded messages (with or without cutouts and history)."""
    return (decoded.where(F.col("quarantine_reason").isNotNull())
            .withColumn("reason", F.col("quarantine_reason"))
            .withColumn("stage", F.lit(DECODE_STAGE))
            .select(*schema.QUARANTINE.names))


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


class MicroBatchWriter:
    """The ``foreachBatch`` function over the raw messages: decode once, append the four tables,
    then run the enrichment steps in order.

    With a lake whose executors can write files for the driver to commit (delta-rs), the decode
    pass itself writes the ``alerts`` files and stages the history (:func:`udfs.decode.decode_and_write`),
    and only the thin message rows are cached; otherwise (delta-spark)
    the whole decoded batch is cached and each table written with ``Lake.append_new``. When the
    stream comes from ``lenga_kafka_ingest`` that pass already ran in the reading tasks and the
    batch arrives as thin rows.
    """

    def __init__(self, lake: Lake, config: Config, steps: list[BatchStep] | None = None):
        self.lake = lake
        self.config = config
        self.checkpoint = config.stream.checkpoint
        self.steps = steps or []
        self.reports: list[BatchReport] = []
        self._app_id: str | None = None

    def __call__(self, raw: DataFrame, batch_id: int) -> None:
        if self._app_id is None:
            self._app_id = query_app_id(self.checkpoint)
        write = self._write_with_alert_files if self.lake.commits_executor_files else self._write_decoded
        write(raw, batch_id)

    def _write_decoded(self, raw: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        decoded = decode_stream(raw).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            input_rows = decoded.count()
            decoded_at = time.perf_counter()
            tables = split_tables(decoded)
            results = {
                name: self.lake.append_new(TABLE_SPECS[name], table, self._app_id, batch_id)
                for name, table in tables.items()
            }
            self._finish(BatchReport(batch_id, input_rows, decoded_at - started,
                                     time.perf_counter() - decoded_at, results), tables)
        finally:
            decoded.unpersist()

    def _write_with_alert_files(self, raw: DataFrame, batch_id: int) -> None:

        started = time.perf_counter()
        staging = staging_dir(self.lake.staging_root(), self._app_id, batch_id)
        if FILE not in raw.columns:  # not read by lenga_kafka_ingest, which already did this
            raw = raw.mapInArrow(decode_and_write(self.lake.path("alerts"), staging, batch_id), INGESTED_SPARK_SCHEMA)
        ingested = raw.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            # One job reads Kafka, decodes, writes the alerts and staged history files, fills the
            # cache and returns what the commits need: no later step re-reads Kafka.
            message = F.col(FILE_TABLE).isNull()
            summary = ingested.agg(
                F.count(F.when(message, 1)).alias("messages"),
                F.count("quarantine_reason").alias("quarantined"),
                F.collect_list(F.when(~message, F.struct(FILE_TABLE, FILE))).alias("files"),
                F.collect_set(F.when(message & F.col("quarantine_reason").isNull(), F.col(PARTITION_COLUMN)))
                 .alias("nights"),
            ).first()
            decoded_at = time.perf_counter()
            files = {name: [row[FILE] for row in summary["files"] if row[FILE_TABLE] == name]
                     for name in ("alerts", *HISTORY_TABLES)}
            messages = ingested.where(message)
            alerts_result, committed = self._commit_alerts(messages, files["alerts"], summary["nights"], batch_id)
            results = {"alerts": alerts_result}
            results.update(self.lake.append_staged([TABLE_SPECS[name] for name in HISTORY_TABLES], staging, files,
                                                   self._app_id, batch_id))
            remove_staging(staging)
            tables = {"quarantine": quarantine_rows(messages)}
            results["quarantine"] = (
                self.lake.append_new(TABLE_SPECS["quarantine"], tables["quarantine"], self._app_id, batch_id)
                if summary["quarantined"] else WriteResult("quarantine"))
            tables["alerts"] = self._stored_alerts(messages, summary["nights"], committed)
            self._finish(BatchReport(batch_id, summary["messages"], decoded_at - started,
                                     time.perf_counter() - decoded_at, results), tables)
        finally:
            ingested.unpersist()

    def _stored_alerts(self, messages: DataFrame, nights: list[int], committed: list[str] | None) -> DataFrame:
        """The batch's alerts as stored, for the steps (cutouts included, read only if a step needs
        them): the files this batch committed. On a replay whose alerts commit was already done,
        the alerts of the batch's nights with its messages' Kafka row ids: a night of ZTF alerts is
        ~80 GB with cutouts, so that scan is kept for this rare case."""
        spec = TABLE_SPECS["alerts"]
        if committed is not None:
            return (self.lake.read_files(spec, committed) if committed
                    else self.lake.spark.createDataFrame([], spark_schema(spec)))
        return (self.lake.read(spec, nights)
                .join(F.broadcast(messages.select(*KAFKA_ROW_ID)), list(KAFKA_ROW_ID), "left_semi"))

    def _commit_alerts(self, messages: DataFrame, files: list, nights: list[int],
                       batch_id: int) -> tuple[WriteResult, list[str] | None]:
        """Commit the alerts files the decode pass wrote, without alerts already in the lake or
        repeated in the batch (a producer re-sending a message); returns the result and the paths
        committed (None when the batch was already committed: a replay).

        Duplicates are found on the thin rows; only in the rare case that there are some are the
        files of the nights concerned read back and rewritten without them.
        """
        spec = TABLE_SPECS["alerts"]
        started = time.perf_counter()
        if self.lake.replayed(spec, self._app_id, batch_id):
            return WriteResult(spec.name, skipped=True, seconds=time.perf_counter() - started), None
        row_id = list(spec.row_id)
        narrow = messages.where(F.col("quarantine_reason").isNull()).select(*spec.keys, *row_id, PARTITION_COLUMN)
        losers = self.lake.repeated_rows(spec, narrow, nights)
        if losers:
            nights_hit = {str(r[PARTITION_COLUMN]) for r in losers}
            hit = [f for f in files if json.loads(f["partition_values"])[PARTITION_COLUMN] in nights_hit]
            dropped = self.lake.spark.createDataFrame([tuple(r[c] for c in row_id) for r in losers],
                                                      narrow.select(*row_id).schema)
            kept = self.lake.read_files(spec, [f["path"] for f in hit]).join(F.broadcast(dropped), row_id, "left_anti")
            files = [f for f in files if f not in hit] + self.lake.write_files(spec, kept)
        result = self.lake.commit_files(spec, files, self._app_id, batch_id)
        result.seconds = time.perf_counter() - started
        return result, [f["path"] for f in files]

    def _finish(self, report: BatchReport, tables: dict[str, DataFrame]) -> None:
        """Run the enrichment steps on the batch's tables and keep the batch report."""
        context = BatchContext(self.lake.spark, self.lake, self._app_id, report.batch_id, tables, self.config)
        for step in self.steps:
            step_started = time.perf_counter()
            report.tables.update(step(context))
            report.step_seconds[step.name] = time.perf_counter() - step_started
        self.reports.append(report)


def start_stream(spark: SparkSession, config: Config, lake: Lake,
                 steps: list[BatchStep] | None = None) -> tuple[StreamingQuery, MicroBatchWriter]:
    """Start the streaming query described by ``config``; returns it with its batch writer."""
    stream = config.stream
    Path(stream.checkpoint).mkdir(parents=True, exist_ok=True)
    for spec in TABLE_SPECS.values():
        lake.ensure(spec)
    writer = MicroBatchWriter(lake, config, steps)
    ingest_into = (lake.path("alerts"), lake.staging_root(), stream.checkpoint) if lake.commits_executor_files else None
    raw = read_alert_stream(spark, config.source, ingest_into)
    builder = chained_query(raw, stream.query_name, writer, stream.checkpoint, stream.trigger,
                            stream.processing_time)
    return start_in_pool(builder, "ingest"), writer


@dataclass
class RunSummary:
    """A finished (or stopped) streaming run."""

    lake_root: str
    backend: str
    wall_s: float
    batches: list[BatchReport] = field(default_factory=list)
    table_rows: dict[str, int] = field(default_factory=dict)

    @property
    def alerts_in(self) -> int:
        return sum(b.input_rows for b in self.batches)

    def step_rate(self, step: str) -> float:
        """Alerts/s through one enrichment step (its own time only)."""
        seconds = sum(b.step_seconds.get(step, 0.0) for b in self.batches)
        return self.alerts_in / seconds if seconds else float("inf")

    def written(self, table: str) -> int:
        return sum(b.tables[table].rows for b in self.batches if table in b.tables)

    @property
    def alerts_per_s(self) -> float:
        return self.alerts_in / self.wall_s if self.wall_s > 0 else 0.0

    def latency(self, quantile: float) -> float:
        seconds = [b.seconds for b in self.batches if b.input_rows]
        return float(np.quantile(seconds, quantile)) if seconds else 0.0


def default_steps(config: Config, lake: Lake) -> list[BatchStep]:
    """The steps run after the core tables, in order: cross-match, stamp classifier. Each is skipped
    when it has nothing to do (no catalog ingested, no stamp model trained or the step disabled)."""
    # Imported here: the stamp step loads torch, which a query without steps never needs.
    from lenga.stream.steps.stamps import build_step as build_stamp_classifier
    from lenga.stream.steps.xmatch import build_step as build_crossmatch

    builders = (build_crossmatch, build_stamp_classifier)
    return [step for step in (build(config, lake) for build in builders) if step is not None]


def run_stream(config: Config, app_name: str = "lenga-stream", spark=None,
               steps: list[BatchStep] | None = None) -> RunSummary:
    """Start the configured query, wait for it (AvailableNow drains and stops), return a summary.

    ``steps`` defaults to :func:`default_steps`; pass ``[]`` for the core tables only.
    """
    spark = spark or build_session(app_name, config.spark)
    lake = open_lake(spark, config.lake.root, config.lake.backend)
    if steps is None:
        steps = default_steps(config, lake)
    started = time.perf_counter()
    query, writer = start_stream(spark, config, lake, steps)
    await_query(query)
    wall = time.perf_counter() - started
    tables = list(TABLE_SPECS) + sorted({t for b in writer.reports for t in b.tables} - set(TABLE_SPECS))
    return RunSummary(str(lake.root), type(lake).__name__, wall, writer.reports,
                      {name: lake.count(name) for name in tables})


def print_summary(summary: RunSummary, published: int | None = None) -> None:
    """A human summary of the run (rich table)."""
    table = Table(title=f"lenga run: lake {summary.lake_root} ({summary.backend})")
    table.add_column("table")
    table.add_column("rows written this run", justify="right")
    table.add_column("rows in lake", justify="right")
    for name, total in summary.table_rows.items():
        table.add_row(name, f"{summary.written(name):,}", f"{total:,}")
    console = Console()
    console.print(table)
    if published is not None:
        console.print(f"alerts published: {published:,}")
    console.print(
        f"messages in: {summary.alerts_in:,}   quarantined: {summary.written('quarantine'):,}   "
        f"micro-batches: {len(summary.batches)}   wall: {summary.wall_s:.1f} s   "
        f"throughput: {summary.alerts_per_s:,.0f} alerts/s   "
        f"batch latency p50/p95: {summary.latency(0.5):.2f}/{summary.latency(0.95):.2f} s")
