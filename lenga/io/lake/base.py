"""The lake's interface: what the stream, the jobs and the notebooks ask of a Delta lake, whatever
the backend (:mod:`lenga.io.lake` explains the two)."""

from __future__ import annotations

import functools
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType

from lenga.tables import PARTITION_COLUMN, TableSpec, WriteResult

#: Under the lake root: files staged by executors for the driver to read back (not a table).
STAGING_DIR = "_staging"


def spark_schema(spec: TableSpec) -> StructType:
    """The Spark schema of a table (derived from its Arrow schema: one definition of the columns)."""
    return from_arrow_schema(spec.schema)


#: The column naming each row's table in a stream or a union of several tables.
TABLE_COLUMN = "table"


def tagged_union(frames: dict[str, DataFrame]) -> DataFrame:
    """Rows of several tables (name → DataFrame) as one DataFrame: the union of their columns, null
    where a table lacks one, and :data:`TABLE_COLUMN` naming each row's table."""
    tagged = [df.withColumn(TABLE_COLUMN, F.lit(name)) for name, df in frames.items()]
    return functools.reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), tagged)


class Lake(ABC):
    """The storage interface the stream, the jobs and the notebooks use."""

    #: True when executors may write a table's Parquet files and the driver commit them
    #: (``write_files``/``commit_files``): the ingest then writes the wide ``alerts`` rows straight
    #: from its decode pass, so cutouts never enter the JVM.
    commits_executor_files = False
    #: True when lenga's Python streaming sources (:mod:`lenga.io.delta_source` and the sources
    #: built on it) read the tables' files: a query may then do its own work in the reading tasks.
    python_table_sources = False

    def __init__(self, spark: SparkSession, root: str | os.PathLike):
        self.spark = spark
        self.root = Path(root).resolve()

    @abstractmethod
    def stream_appends(self, reads: dict[TableSpec, list[str]], max_versions: int | None = None) -> DataFrame:
        """A streaming read of the rows appended to several tables (spec → the columns read), as
        one DataFrame: the union of the columns and :data:`TABLE_COLUMN` naming each row's table.
        ``max_versions`` caps the table versions (or files) read per micro-batch."""

    def path(self, table: str) -> str:
        return str(self.root / table)

    @abstractmethod
    def exists(self, table: str) -> bool: ...

    @abstractmethod
    def ensure(self, spec: TableSpec) -> None:
        """Create the table empty if it does not exist, so readers always find every table."""

    @abstractmethod
    def committed_batch(self, table: str, app_id: str) -> int | None:
        """The last batch id committed to ``table`` under ``app_id`` (None if none)."""

    @abstractmethod
    def _append(self, spec: TableSpec, df: DataFrame, app_id: str, batch_id: int) -> WriteResult: ...

    @abstractmethod
    def read(self, spec: TableSpec, nights: list[int] | None = None) -> DataFrame:
        """The table as a Spark DataFrame, reading only the given night partitions if any."""

    def replayed(self, spec: TableSpec, app_id: str, batch_id: int) -> bool:
        """True when ``batch_id`` (or a later batch) of ``app_id`` is already committed to the table."""
        done = self.committed_batch(spec.name, app_id)
        return done is not None and done >= batch_id

    def append(self, spec: TableSpec, df: DataFrame, app_id: str, batch_id: int) -> WriteResult:
        """Append ``df`` as one transaction tagged (app_id, batch_id); a no-op on replay."""
        return self._timed_append(spec, lambda: df, app_id, batch_id)

    def append_new(self, spec: TableSpec, df: DataFrame, app_id: str, batch_id: int,
                   nights: list[int] | None = None) -> WriteResult:
        """Append only rows whose key is not in the lake yet (nor twice in ``df``).

        The same detection reaches lenga many times (in its own alert and in the history of every
        later alert of the object), so ``detections``/``non_detections`` are de-duplicated on their
        keys. The anti-join reads only the night partitions the batch touches and only the key
        columns, which Parquet's column pruning makes cheap. ``nights`` (the distinct nights of
        ``df``) saves a Spark job when the caller already knows them.
        """
        return self._timed_append(spec, lambda: self.new_rows(spec, df, nights), app_id, batch_id)

    def new_rows(self, spec: TableSpec, df: DataFrame, nights: list[int] | None = None) -> DataFrame:
        """The rows of ``df`` to append: one per key, none whose key is already in the table.

        A key's night is a function of the row (a detection's night is that of its time), so only
        the partitions of ``nights`` (default: computed from ``df``) can hold an existing key.
        """
        keys = list(spec.keys)
        row_id = list(spec.row_id)
        narrow = df.select(*keys, *row_id, PARTITION_COLUMN) if row_id else df
        unique = narrow.dropDuplicates(keys)
        if self.exists(spec.name):
            if nights is None:
                nights = df.agg(F.collect_set(PARTITION_COLUMN)).first()[0]
            if nights:
                existing = self.read(spec, sorted(nights)).select(*keys)
                unique = unique.join(existing, on=keys, how="left_anti")
        if row_id:
            # One winner per key, known by its row id: a broadcast semi-join keeps the wide rows local.
            unique = df.join(F.broadcast(unique.select(*row_id)), on=row_id, how="left_semi")
        return unique

    def repeated_rows(self, spec: TableSpec, df: DataFrame, nights: list[int] | None = None) -> list:
        """Row ids (``spec.row_id`` and night) of the rows of ``df`` that :meth:`new_rows` would
        drop: keys already in the table, or repeated in ``df`` (all but one copy)."""
        row_id = [*spec.row_id, PARTITION_COLUMN]
        return df.join(self.new_rows(spec, df, nights).select(*spec.row_id), list(spec.row_id), "left_anti") \
            .select(*row_id).collect()

    def _timed_append(self, spec: TableSpec, rows: Callable[[], DataFrame], app_id: str,
                      batch_id: int) -> WriteResult:
        """Skip a replayed batch before any Spark work, else append ``rows()`` and time it all."""
        started = time.perf_counter()
        if self.replayed(spec, app_id, batch_id):
            return WriteResult(spec.name, skipped=True, seconds=time.perf_counter() - started)
        result = self._append(spec, rows().select(*spec.schema.names), app_id, batch_id)
        result.seconds = time.perf_counter() - started
        return result

    @abstractmethod
    def count(self, table: str) -> int:
        """Rows in a table (0 for a table that was never written)."""

    @abstractmethod
    def overwrite_arrow(self, spec: TableSpec, table: pa.Table, app_id: str, batch_id: int) -> WriteResult:
        """Replace the whole table by an Arrow table built on the driver (reference tables such as
        cross-match catalogs), in one transaction tagged (app_id, batch_id); a no-op on replay.

        Rows are written in the given order, so a table sorted on the driver stays sorted in its
        files (what a join on a sorted key and file statistics need). The schema may change.
        """

    @abstractmethod
    def merge(self, spec: TableSpec, df: DataFrame, app_id: str, batch_id: int,
              target_partitions: dict[str, list] | None = None) -> WriteResult:
        """Upsert ``df`` into the table on ``spec.keys`` (update every column of a matching row,
        insert the others) in one transaction tagged (app_id, batch_id); a no-op on replay.

        The MERGE reads only the target partitions in ``target_partitions`` (column -> values; by
        default the partition values present in ``df``), so its cost follows the partitions a batch
        touches, not the table size. A row may move partition: list its old partition too.
        """


def source_partitions(df: DataFrame, spec: TableSpec) -> dict[str, list]:
    """The distinct partition values of a DataFrame, per partition column of ``spec``."""
    row = df.agg(*[F.collect_set(c).alias(c) for c in spec.partition_by]).first()
    return {c: list(row[c]) for c in spec.partition_by}


def partition_column(spec: TableSpec) -> str:
    """The one column ``spec`` is partitioned by (what the delta-rs backend's per-partition work needs)."""
    if len(spec.partition_by) != 1:
        raise ValueError(f"table {spec.name} must be partitioned by one column, "
                         f"not {list(spec.partition_by)}")
    return spec.partition_by[0]


def merge_condition(spec: TableSpec, partitions: dict[str, list], quote: str) -> str:
    """``t.k = s.k AND ... AND t.p IN (...)``: key equality, target restricted to ``partitions``
    (literals, so both Delta engines prune files before the join). ``quote`` quotes identifiers
    (delta-rs: ``"``, Spark SQL: backtick) since lenga's columns are camel-case."""
    if not spec.keys:
        raise ValueError(f"table {spec.name} has no key columns to MERGE on")

    def literal(value) -> str:
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"partition value {value!r} of {spec.name}: only int and str are supported")
        return str(value)

    terms = [f"t.{quote}{k}{quote} = s.{quote}{k}{quote}" for k in spec.keys]
    for column, values in partitions.items():
        if values:
            terms.append(f"t.{quote}{column}{quote} IN ({', '.join(literal(v) for v in sorted(set(values)))})")
    return " AND ".join(terms)
