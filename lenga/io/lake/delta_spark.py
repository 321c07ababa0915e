"""The delta-spark backend of the lake (the delta-spark jar on the classpath: a cluster).

``delta.tables`` (2.5 s to import) is imported in the methods: executors import this package for
:mod:`lenga.io.lake.files` and never need it.
"""

from __future__ import annotations

import time

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lenga.io.lake.base import Lake, merge_condition, source_partitions, spark_schema, tagged_union
from lenga.tables import PARTITION_COLUMN, TableSpec, WriteResult


class DeltaSparkLake(Lake):
    """delta-spark backend (jar present)."""

    def stream_appends(self, reads: dict[TableSpec, list[str]], max_versions: int | None = None) -> DataFrame:
        """Delta's own streaming source per table (``maxFilesPerTrigger`` for ``max_versions``)."""
        streams = {}
        for spec, columns in reads.items():
            self.ensure(spec)
            reader = self.spark.readStream.format("delta")
            if max_versions:
                reader = reader.option("maxFilesPerTrigger", max_versions)
            streams[spec.name] = reader.load(self.path(spec.name)).select(*columns)
        return tagged_union(streams)

    def exists(self, table: str) -> bool:
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(self.spark, self.path(table))

    def ensure(self, spec: TableSpec) -> None:
        from delta.tables import DeltaTable

        (DeltaTable.createIfNotExists(self.spark).location(self.path(spec.name))
         .addColumns(spark_schema(spec)).partitionedBy(*spec.partition_by).execute())

    def committed_batch(self, table: str, app_id: str) -> int | None:
        # delta-spark checks txnAppId/txnVersion itself inside the write; nothing to pre-check.
        return None

    def _append(self, spec: TableSpec, df: DataFrame, app_id: str, batch_id: int) -> WriteResult:
        from delta.tables import DeltaTable

        (df.write.format("delta").mode("append").partitionBy(*spec.partition_by)
         .option("txnAppId", app_id).option("txnVersion", batch_id).save(self.path(spec.name)))
        last = DeltaTable.forPath(self.spark, self.path(spec.name)).history(1).collect()[0]
        metrics = last["operationMetrics"] or {}
        return WriteResult(spec.name, rows=int(metrics.get("numOutputRows", 0)),
                           files=int(metrics.get("numFiles", 0)))

    def count(self, table: str) -> int:
        return self.spark.read.format("delta").load(self.path(table)).count() if self.exists(table) else 0

    def overwrite_arrow(self, spec: TableSpec, table: pa.Table, app_id: str, batch_id: int) -> WriteResult:
        from delta.tables import DeltaTable

        started = time.perf_counter()
        writer = (self.spark.createDataFrame(table).write.format("delta").mode("overwrite")
                  .option("overwriteSchema", "true").option("txnAppId", app_id).option("txnVersion", batch_id))
        if spec.partition_by:
            writer = writer.partitionBy(*spec.partition_by)
        writer.save(self.path(spec.name))
        last = DeltaTable.forPath(self.spark, self.path(spec.name)).history(1).collect()[0]
        metrics = last["operationMetrics"] or {}
        return WriteResult(spec.name, rows=int(metrics.get("numOutputRows", 0)),
                           files=int(metrics.get("numFiles", 0)), seconds=time.perf_counter() - started)

    def read(self, spec: TableSpec, nights: list[int] | None = None) -> DataFrame:
        df = self.spark.read.format("delta").load(self.path(spec.name))
        return df.where(F.col(PARTITION_COLUMN).isin(nights)) if nights else df

    def merge(self, spec: TableSpec, df: DataFrame, app_id: str, batch_id: int,
              target_partitions: dict[str, list] | None = None) -> WriteResult:
        from delta.tables import DeltaTable

        started = time.perf_counter()
        self.ensure(spec)
        partitions = target_partitions or source_partitions(df, spec)
        condition = merge_condition(spec, partitions, quote="`")
        # Delta applies txnAppId/txnVersion session confs to DML (MERGE) idempotently (delta-io/delta#1555);
        # writer options of concurrent appends take precedence over them.
        conf = self.spark.conf
        conf.set("spark.databricks.delta.write.txnAppId", app_id)
        conf.set("spark.databricks.delta.write.txnVersion", str(batch_id))
        try:
            (DeltaTable.forPath(self.spark, self.path(spec.name)).alias("t")
             .merge(df.select(*spec.schema.names).alias("s"), condition)
             .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
        finally:
            conf.unset("spark.databricks.delta.write.txnAppId")
            conf.unset("spark.databricks.delta.write.txnVersion")
        last = DeltaTable.forPath(self.spark, self.path(spec.name)).history(1).collect()[0]
        metrics = last["operationMetrics"] or {}
        rows = int(metrics.get("numTargetRowsUpdated", 0)) + int(metrics.get("numTargetRowsInserted", 0))
        return WriteResult(spec.name, rows=rows, files=int(metrics.get("numTargetFilesAdded", 0)),
                           seconds=time.perf_counter() - started)
