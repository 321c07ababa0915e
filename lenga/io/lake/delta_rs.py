"""The delta-rs backend of the lake: executors write Parquet files, the driver commits their add
actions with delta-rs (``deltalake``); no jar needed.

``deltalake`` is imported in the methods, which run on the driver: executors import this package
for :mod:`lenga.io.lake.files` and never need it.
"""

from __future__ import annotations

import json
import os
import time

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming import DataStreamReader
from pyspark.sql.types import StringType, StructField, StructType

from lenga.io.delta_source import DeltaDataSource
from lenga.io.lake.base import (
    STAGING_DIR,
    TABLE_COLUMN,
    Lake,
    merge_condition,
    partition_column,
    spark_schema,
)
from lenga.io.lake.files import (
    new_rows_writer,
    parquet_part_writer,
    repeated_rows_finder,
    staged_rows_writer,
)
from lenga.tables import PARTITION_COLUMN, TableSpec, WriteResult

#: Spark DDL of the add-action rows executors return (see ``ADD_ACTION_FIELDS``).
ADD_ACTION_SCHEMA = "path string, size long, partition_values string, modification_time long, stats string"


#: The same, tagged with the table each file belongs to, for tasks that write several tables.
TABLE_ADD_ACTION_SCHEMA = f"table string, {ADD_ACTION_SCHEMA}"


class DeltaRsLake(Lake):
    """delta-rs backend: Parquet written by the executors, one Delta commit from the driver."""

    commits_executor_files = True
    python_table_sources = True

    def lenga_reader(self, source: type, tables: list[str], max_versions: int | None = None) -> DataStreamReader:
        """A streaming reader of one of lenga's Python sources over several of the lake's tables
        (:mod:`lenga.io.delta_source`: offsets, task balancing, :data:`TABLE_COLUMN`)."""
        self.spark.dataSource.register(source)
        reader = (self.spark.readStream.format(source.name()).option("paths", ",".join(self.path(t) for t in tables))
                  .option("tableColumn", TABLE_COLUMN).option("tasks", self.spark.sparkContext.defaultParallelism))
        return reader.option("maxVersionsPerTrigger", max_versions) if max_versions else reader

    def stream_appends(self, reads: dict[TableSpec, list[str]], max_versions: int | None = None) -> DataFrame:
        """One ``lenga_delta`` source over every table: Spark starts one Python planner process per
        Python source when a query starts (~0.9 s each here) and plans each source's tasks apart,
        so one source means one planner and tasks balanced over all the batch's files."""
        fields = {}
        for spec, columns in reads.items():
            self.ensure(spec)
            fields.update({c: spark_schema(spec)[c] for c in columns if c not in fields})
        schema = StructType([*fields.values(), StructField(TABLE_COLUMN, StringType())])
        return self.lenga_reader(DeltaDataSource, [spec.name for spec in reads], max_versions).schema(schema).load()

    def exists(self, table: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.path(table))

    def ensure(self, spec: TableSpec) -> None:
        from deltalake import DeltaTable, Schema

        if not self.exists(spec.name):
            DeltaTable.create(self.path(spec.name), Schema.from_arrow(spec.schema), mode="ignore",
                              partition_by=list(spec.partition_by), name=spec.name)

    def committed_batch(self, table: str, app_id: str) -> int | None:
        from deltalake import DeltaTable

        if not self.exists(table):
            return None
        return DeltaTable(self.path(table)).transaction_version(app_id)

    def count(self, table: str) -> int:
        from deltalake import DeltaTable

        return DeltaTable(self.path(table)).count() if self.exists(table) else 0

    def overwrite_arrow(self, spec: TableSpec, table: pa.Table, app_id: str, batch_id: int) -> WriteResult:
        from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

        started = time.perf_counter()
        if self.replayed(spec, app_id, batch_id):
            return WriteResult(spec.name, skipped=True, seconds=time.perf_counter() - started)
        write_deltalake(self.path(spec.name), table, mode="overwrite", schema_mode="overwrite",
                        partition_by=list(spec.partition_by) or None, name=spec.name,
                        commit_properties=CommitProperties(app_transactions=[Transaction(app_id, batch_id)]))
        files = len(DeltaTable(self.path(spec.name)).file_uris())
        return WriteResult(spec.name, rows=table.num_rows, files=files, seconds=time.perf_counter() - started)

    def _append(self, spec: TableSpec, df: DataFrame, app_id: str, batch_id: int) -> WriteResult:
        return self.commit_files(spec, self.write_files(spec, df), app_id, batch_id)

    def write_files(self, spec: TableSpec, df: DataFrame) -> list:
        """Executors write ``df`` as Parquet files of the table; returns their add-action rows
        (uncommitted: invisible to readers until :meth:`commit_files`)."""
        writer = parquet_part_writer(self.path(spec.name), spec.schema, list(spec.partition_by))
        return df.mapInArrow(writer, ADD_ACTION_SCHEMA).collect()

    def commit_files(self, spec: TableSpec, rows: list, app_id: str, batch_id: int) -> WriteResult:
        """Commit files written by executors (add-action rows with the fields of
        :data:`ADD_ACTION_FIELDS`) as one transaction tagged (app_id, batch_id)."""
        from deltalake import CommitProperties, DeltaTable, Schema, Transaction
        from deltalake.transaction import AddAction, create_table_with_add_actions

        actions = [
            AddAction(r["path"], r["size"], json.loads(r["partition_values"]), r["modification_time"], True,
                      r["stats"])
            for r in rows
        ]
        if not actions:
            return WriteResult(spec.name)
        commit = CommitProperties(app_transactions=[Transaction(app_id, batch_id)])
        if self.exists(spec.name):
            DeltaTable(self.path(spec.name)).create_write_transaction(
                actions, mode="append", schema=Schema.from_arrow(spec.schema),
                partition_by=list(spec.partition_by), commit_properties=commit)
        else:
            create_table_with_add_actions(
                self.path(spec.name), Schema.from_arrow(spec.schema), actions, mode="append",
                partition_by=list(spec.partition_by), name=spec.name, commit_properties=commit)
        return WriteResult(spec.name, rows=sum(json.loads(a.stats)["numRecords"] for a in actions),
                           files=len(actions))

    def append_new(self, spec: TableSpec, df: DataFrame, app_id: str, batch_id: int,
                   nights: list[int] | None = None) -> WriteResult:
        """:meth:`Lake.append_new` in one Spark stage: rows are shuffled by night (every copy of a
        key shares its night), and each task de-duplicates its nights' rows against the keys of
        the same nights in the table, read with Arrow straight from the committed files, and writes
        the new rows (:func:`new_rows_writer`). Each night's existing keys are read once, by one
        task, and each night gets one file per batch."""
        started = time.perf_counter()
        if self.replayed(spec, app_id, batch_id):
            return WriteResult(spec.name, skipped=True, seconds=time.perf_counter() - started)
        if nights is None:
            nights = df.agg(F.collect_set(PARTITION_COLUMN)).first()[0]
        if not nights:
            return WriteResult(spec.name, seconds=time.perf_counter() - started)
        writer = new_rows_writer(self.path(spec.name), spec, self.files_by_partition(spec, nights))
        rows = (df.select(*spec.schema.names)
                .repartition(min(len(nights), self.spark.sparkContext.defaultParallelism), PARTITION_COLUMN)
                .mapInArrow(writer, ADD_ACTION_SCHEMA).collect())
        result = self.commit_files(spec, rows, app_id, batch_id)
        result.seconds = time.perf_counter() - started
        return result

    def staging_root(self) -> str:
        """Directory for files that executors stage for the driver (:func:`staging_dir`); not a
        table, so Delta readers never see it."""
        return str(self.root / STAGING_DIR)

    def append_staged(self, specs: list[TableSpec], staging: str, files: dict[str, list], app_id: str,
                      batch_id: int) -> dict[str, WriteResult]:
        """:meth:`append_new` for rows that executors already wrote as staged Parquet files under
        ``staging/<table>`` (``files[table]``: their add-action rows, paths relative to that
        directory), for several tables in one Spark job: one task per (table, night) reads the
        night's staged files, keeps the first row of each key, drops keys already committed and
        writes the rest into the table (:func:`staged_rows_writer`); then one commit per table.
        Why one job: each job costs ~0.3 s of scheduling and Python worker round trips whatever
        its size, and every micro-batch stages two tables. The rows never pass through the JVM; the
        staged files are left for :func:`remove_staging`. The job's time is shared evenly among the
        tables' results."""
        started = time.perf_counter()
        pending = [spec for spec in specs if not self.replayed(spec, app_id, batch_id)]
        work, tables = [], {}
        for spec in pending:
            by_night: dict[int, list[str]] = {}
            for row in files.get(spec.name, []):
                night = int(json.loads(row["partition_values"])[PARTITION_COLUMN])
                by_night.setdefault(night, []).append(os.path.join(staging, spec.name, row["path"]))
            work += [(spec.name, night, json.dumps(paths)) for night, paths in sorted(by_night.items())]
            tables[spec.name] = (self.path(spec.name), spec, self.files_by_partition(spec, list(by_night)))
        actions = []
        if work:
            actions = (self.spark.createDataFrame(work, f"table string, {PARTITION_COLUMN} int, paths string")
                       .repartition(min(len(work), self.spark.sparkContext.defaultParallelism), "table",
                                    PARTITION_COLUMN)
                       .mapInArrow(staged_rows_writer(tables), TABLE_ADD_ACTION_SCHEMA).collect())
        shared_s = (time.perf_counter() - started) / len(specs)
        results = {spec.name: WriteResult(spec.name, skipped=True, seconds=shared_s)
                   for spec in specs if spec not in pending}
        for spec in pending:  # their replay check is above: commit without reading the logs again
            committed = time.perf_counter()
            results[spec.name] = self.commit_files(spec, [a for a in actions if a["table"] == spec.name],
                                                   app_id, batch_id)
            results[spec.name].seconds = shared_s + time.perf_counter() - committed
        return results

    def commit_tables(self, specs: list[TableSpec], actions: list, app_id: str, batch_id: int
                      ) -> dict[str, WriteResult]:
        """:meth:`commit_files` for each table of ``specs`` (one transaction each), the add-action
        rows of all of them in ``actions`` told apart by their ``table`` field
        (:data:`TABLE_ADD_ACTION_SCHEMA`); a table whose batch is already committed is skipped."""
        results = {}
        for spec in specs:
            started = time.perf_counter()
            if self.replayed(spec, app_id, batch_id):
                results[spec.name] = WriteResult(spec.name, skipped=True)
            else:
                results[spec.name] = self.commit_files(spec, [a for a in actions if a["table"] == spec.name],
                                                       app_id, batch_id)
            results[spec.name].seconds = time.perf_counter() - started
        return results

    def files_by_partition(self, spec: TableSpec, values: list) -> dict[object, list[str]]:
        """Committed data files of the given values of the table's partition column (absolute
        paths), by partition value."""
        from deltalake import DeltaTable

        if not values or not self.exists(spec.name):
            return {}
        column, root = partition_column(spec), self.path(spec.name)
        files = pa.table(DeltaTable(root).get_add_actions(flatten=True))
        value = files[f"partition.{column}"]
        files = files.filter(pc.is_in(value, pa.array(list(values)).cast(value.type)))
        by_value: dict[object, list[str]] = {}
        for path, value in zip(files["path"].to_pylist(), files[f"partition.{column}"].to_pylist(), strict=True):
            by_value.setdefault(value, []).append(os.path.join(root, path))
        return by_value

    def repeated_rows(self, spec: TableSpec, df: DataFrame, nights: list[int] | None = None) -> list:
        """:meth:`Lake.repeated_rows` in one stage, like :meth:`append_new` (shuffle by night,
        Arrow anti-join against the night's committed keys); ``df`` holds keys, row id and night."""
        if nights is None:
            nights = df.agg(F.collect_set(PARTITION_COLUMN)).first()[0]
        if not nights:
            return []
        row_id = [*spec.row_id, PARTITION_COLUMN]
        out = df.select(*row_id).schema
        finder = repeated_rows_finder(spec, self.files_by_partition(spec, nights))
        return (df.select(*spec.keys, *row_id)
                .repartition(min(len(nights), self.spark.sparkContext.defaultParallelism), PARTITION_COLUMN)
                .mapInArrow(finder, out).collect())

    def read_files(self, spec: TableSpec, paths: list[str]) -> DataFrame:
        """Files of the table (paths relative to its root, committed or not) as a DataFrame with the
        table's schema, partition columns read from the paths."""
        root = self.path(spec.name)
        return (self.spark.read.schema(spark_schema(spec)).option("basePath", root)
                .parquet(*[os.path.join(root, p) for p in paths]))

    def merge(self, spec: TableSpec, df: DataFrame, app_id: str, batch_id: int,
              target_partitions: dict[str, list] | None = None) -> WriteResult:
        """delta-rs MERGE of the batch collected on the driver: meant for compact per-key rows
        (one per touched object), not for wide appends (those go through ``append``)."""
        from deltalake import CommitProperties, DeltaTable, Transaction

        started = time.perf_counter()
        if self.replayed(spec, app_id, batch_id):
            return WriteResult(spec.name, skipped=True, seconds=time.perf_counter() - started)
        self.ensure(spec)
        source = df.select(*spec.schema.names).toArrow().cast(spec.schema)
        if source.num_rows == 0:
            return WriteResult(spec.name, seconds=time.perf_counter() - started)
        partitions = target_partitions or {c: pc.unique(source[c]).to_pylist() for c in spec.partition_by}
        commit = CommitProperties(app_transactions=[Transaction(app_id, batch_id)])
        metrics = (DeltaTable(self.path(spec.name))
                   .merge(source, merge_condition(spec, partitions, quote='"'), source_alias="s",
                          target_alias="t", commit_properties=commit)
                   .when_matched_update_all().when_not_matched_insert_all().execute())
        return WriteResult(spec.name, rows=metrics["num_target_rows_updated"] + metrics["num_target_rows_inserted"],
                           files=metrics["num_target_files_added"], seconds=time.perf_counter() - started,
                           extra={"files_scanned": metrics["num_target_files_scanned"],
                                  "files_skipped": metrics["num_target_files_skipped_during_scan"]})

    def read(self, spec: TableSpec, nights: list[int] | None = None) -> DataFrame:
        from deltalake import DeltaTable

        if not self.exists(spec.name):
            return self.spark.createDataFrame([], spark_schema(spec))
        predicate = [(PARTITION_COLUMN, "in", list(nights))] if nights else None
        files = DeltaTable(self.path(spec.name)).file_uris(file_pruning_predicate=predicate)
        if not files:
            return self.spark.createDataFrame([], spark_schema(spec))
        return (self.spark.read.schema(spark_schema(spec)).option("basePath", self.path(spec.name))
                .parquet(*files))
