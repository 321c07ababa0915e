"""A Spark Python streaming data source over Delta tables written by delta-rs (``format("lenga_delta")``).

lenga chains its streaming queries through Delta (medallion style: the ingest query appends
``detections``, the aggregation query reads what was appended). With the delta-spark jar present
Spark's own ``readStream.format("delta")`` does this; without it (local runs, this machine) this
source does, reading the Delta log directly (protocol: github.com/delta-io/delta PROTOCOL.md):

- an offset is ``{"versions": {table: N}}``: everything committed up to version N of each table
  has been planned (a table is named by its directory's name);
- ``latestOffset`` is each table's current version (``maxVersionsPerTrigger`` caps how many
  commits of each table one micro-batch takes);
- ``partitions(start, end)`` are the files *added* by commits ``start+1 .. end`` of every table,
  each commit read from its JSON log entry ``_delta_log/<version>.json``, dealt into
  ``tasks`` tasks of about as many rows each (the add actions' ``numRecords``);
- ``read`` yields the Parquet files as Arrow batches, with the partition columns (``night``)
  restored from the add action's ``partitionValues`` (Delta does not store them in the files).
  Only the columns of the query's schema are read: ``.schema(...)`` with a few columns of a wide
  table (``alerts`` and its cutouts) reads just those columns of each file.

**Several tables in one source** (option ``paths``): one stream of the union of their columns
(null where a table lacks one; a column must have the same type in every table that has it), with
option ``tableColumn`` naming a string column that receives each row's table. Spark starts one
Python planner process per Python streaming source when a query starts (~0.9 s each on this
machine) and gives each source its own tasks, so the aggregation reads its three tables through one
source: one planner, and tasks balanced over all the batch's files.

Only appends are expected: a commit that removes data (``remove`` with ``dataChange: true``: a
delete, an overwrite, a MERGE) fails the query with a message naming the version, because its rows
would otherwise silently stay in the downstream state. Rewrites that do not change data
(``OPTIMIZE``, ``dataChange: false``) are skipped. A log entry already cleaned up by log retention
fails loudly too (restart the downstream query from a fresh checkpoint and an initial state).

Options: ``path`` (one table) or ``paths`` (comma-separated), ``tableColumn``,
``maxVersionsPerTrigger``, ``startingVersion`` (default: -1, i.e. from each table's creation),
``tasks`` (default 2: set it to the cluster's cores).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadLimit, SupportsTriggerAvailableNow

LOG_DIR = "_delta_log"
# Before the table exists (or with nothing read yet) the offset is this version.
NO_VERSION = -1
DEFAULT_TASKS = 2


def table_version(path: str) -> int:
    """Latest committed version of the Delta table at ``path``, or NO_VERSION when there is none."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(path):
        return NO_VERSION
    return DeltaTable(path).version()


def table_arrow_schema(path: str) -> pa.Schema:
    """The table's schema as a pyarrow schema (partition columns included)."""
    from deltalake import DeltaTable

    return pa.schema(DeltaTable(path).schema().to_arrow())


def table_name(path: str) -> str:
    """A table's name in offsets and in the table column: its directory's name."""
    return os.path.basename(os.path.normpath(path))


def union_schema(schemas: dict[str, pa.Schema]) -> pa.Schema:
    """Every column of the tables once, in order of first appearance; raises when a column's type
    differs between tables (the union would have to pick one silently)."""
    fields: dict[str, tuple[pa.Field, str]] = {}
    for table, schema in schemas.items():
        for f in schema:
            if f.name not in fields:
                fields[f.name] = (f, table)
            elif not fields[f.name][0].type.equals(f.type):
                first, other = fields[f.name]
                raise ValueError(f"lenga_delta: column {f.name!r} is {first.type} in {other} but {f.type} in {table}")
    return pa.schema([f for f, _ in fields.values()])


def commit_actions(path: str, version: int) -> list[dict]:
    """The actions of one commit, read from its JSON log entry."""
    entry = os.path.join(path, LOG_DIR, f"{version:020d}.json")
    if not os.path.exists(entry):
        raise FileNotFoundError(
            f"lenga_delta: log entry of version {version} of {path} is gone (log retention?); "
            "restart the reading query from a new checkpoint")
    with open(entry) as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass(frozen=True)
class AddedFile:
    """A data file added by a commit: its table, path relative to the table, partition values and
    row count (0 when the add action has no statistics)."""

    table: str
    path: str
    partition_values: tuple[tuple[str, str | None], ...]
    version: int
    rows: int = 0


def added_files(path: str, start: int, end: int) -> list[AddedFile]:
    """Files added by commits ``start+1 .. end`` with ``dataChange``; raises on a data removal."""
    files = []
    for version in range(start + 1, end + 1):
        for action in commit_actions(path, version):
            if "remove" in action and action["remove"].get("dataChange", True):
                raise ValueError(
                    f"lenga_delta: version {version} of {path} removes data ({action['remove']['path']}); "
                    "only appends can be streamed (rows would be dropped silently downstream)")
            add = action.get("add")
            if add and add.get("dataChange", True):
                values = tuple(sorted((add.get("partitionValues") or {}).items()))
                rows = json.loads(add["stats"]).get("numRecords", 0) if add.get("stats") else 0
                files.append(AddedFile(path, unquote(add["path"]), values, version, rows))
    return files


def balanced_tasks(files: list[AddedFile], tasks: int) -> list[list[AddedFile]]:
    """The files dealt into at most ``tasks`` groups of about as many rows each (largest first,
    each to the lightest group), so that no task of a micro-batch waits on one big table."""
    groups: list[list[AddedFile]] = [[] for _ in range(min(tasks, len(files)))]
    load = [0] * len(groups)
    for added in sorted(files, key=lambda f: -f.rows):
        lightest = load.index(min(load))
        groups[lightest].append(added)
        load[lightest] += max(added.rows, 1)
    return groups


@dataclass(frozen=True)
class DeltaFiles(InputPartition):
    files: tuple[AddedFile, ...]
    schema_bytes: bytes
    table_column: str | None


def read_files(part: DeltaFiles) -> Iterator[pa.RecordBatch]:
    """The rows of the task's files in the query's schema: stored columns read from Parquet,
    partition columns from the log, the table column from the file's table, other columns null."""
    schema = pa.ipc.read_schema(pa.py_buffer(part.schema_bytes))
    for added in part.files:
        constants = {name: pa.scalar(text, pa.string()) for name, text in added.partition_values}
        if part.table_column:
            constants[part.table_column] = pa.scalar(table_name(added.table), pa.string())
        parquet = pq.ParquetFile(os.path.join(added.table, added.path))
        in_file = set(parquet.schema_arrow.names)
        stored = [f for f in schema if f.name in in_file and f.name not in constants]
        for batch in parquet.iter_batches(columns=[f.name for f in stored]):
            columns = []
            for f in schema:
                if f.name in constants:
                    column = pa.repeat(constants[f.name], batch.num_rows).cast(f.type)
                elif f.name in in_file:
                    column = batch.column(f.name).cast(f.type)
                else:
                    column = pa.nulls(batch.num_rows, f.type)
                columns.append(column)
            yield pa.RecordBatch.from_arrays(columns, schema=schema)


def table_paths(options: dict[str, str]) -> list[str]:
    """The tables of the options ``path`` or ``paths`` (absolute), each with a distinct name."""
    listed = options["paths"].split(",") if options.get("paths") else [options.get("path") or ""]
    paths = [os.path.abspath(p.strip()) for p in listed if p.strip()]
    if not paths:
        raise ValueError("lenga_delta: option 'path' (a Delta table directory) or 'paths' (several) is required")
    names = [table_name(p) for p in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"lenga_delta: tables must have distinct directory names, got {names}")
    return paths


class DeltaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options: dict[str, str], schema: pa.Schema):
        self.options = {k.lower(): v for k, v in options.items()}
        self.paths = table_paths(self.options)
        max_versions = self.options.get("maxversionspertrigger")
        self._max_versions = int(max_versions) if max_versions else None
        if self._max_versions is not None and self._max_versions < 1:
            raise ValueError("lenga_delta: maxVersionsPerTrigger must be >= 1")
        self._tasks = int(self.options.get("tasks", DEFAULT_TASKS))
        if self._tasks < 1:
            raise ValueError("lenga_delta: tasks must be >= 1")
        self._starting = int(self.options.get("startingversion", NO_VERSION))
        self._table_column = self.options.get("tablecolumn")
        self._schema_bytes = schema.serialize().to_pybytes()
        self._target: dict[str, int] | None = None

    def _versions(self, offset: dict) -> dict[str, int]:
        """Each table's version in ``offset`` (a table added to the query since starts unread;
        ``{"version": N}`` is the offset of one table written before sources took several)."""
        versions = offset.get("versions") or {table_name(self.paths[0]): offset["version"]}
        return {table_name(p): versions.get(table_name(p), self._starting) for p in self.paths}

    def initialOffset(self) -> dict:
        return {"versions": {table_name(p): self._starting for p in self.paths}}

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = {table_name(p): table_version(p) for p in self.paths}

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        started = self._versions(start)
        latest = self._target or {table_name(p): table_version(p) for p in self.paths}
        ends = {}
        for name, version in started.items():
            end = latest[name]
            if self._max_versions is not None:
                end = min(end, version + self._max_versions)
            ends[name] = max(end, version)
        return {"versions": ends}

    def partitions(self, start: dict, end: dict) -> list[DeltaFiles]:
        started, ended = self._versions(start), self._versions(end)
        files = [f for p in self.paths for f in added_files(p, started[table_name(p)], ended[table_name(p)])]
        return [DeltaFiles(tuple(group), self._schema_bytes, self._table_column)
                for group in balanced_tasks(files, self._tasks)]

    def read(self, partition: DeltaFiles) -> Iterator[pa.RecordBatch]:
        return read_files(partition)


class DeltaDataSource(DataSource):
    """``spark.readStream.format("lenga_delta").option("path", TABLE)`` (or ``paths`` and
    ``tableColumn``, see the module docstring); the schema is the tables' own (their union, plus the
    table column) unless one is given (``.schema(...)``: needed when a table does not exist yet)."""

    @classmethod
    def name(cls) -> str:
        return "lenga_delta"

    def _arrow_schema(self) -> pa.Schema:
        options = {k.lower(): v for k, v in self.options.items()}
        schemas = {}
        for path in table_paths(options):
            if table_version(path) == NO_VERSION:
                raise ValueError(f"lenga_delta: {path} is not a Delta table; create it or pass a schema")
            schemas[table_name(path)] = table_arrow_schema(path)
        schema = union_schema(schemas)
        column = options.get("tablecolumn")
        return schema.append(pa.field(column, pa.string())) if column else schema

    def schema(self):
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(self._arrow_schema())

    def streamReader(self, schema) -> DeltaStreamReader:
        from pyspark.sql.pandas.types import to_arrow_schema

        return DeltaStreamReader(dict(self.options), to_arrow_schema(schema, timezone="UTC"))
