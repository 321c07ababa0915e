"""A Spark Python streaming data source over a Delta table written by delta-rs (``format("lenga_delta")``).

lenga chains its streaming queries through Delta (medallion style: the ingest query appends
``detections``, the aggregation query reads what was appended). With the delta-spark jar present
Spark's own ``readStream.format("delta")`` does this; without it (local runs, this machine) this
source does, reading the Delta log directly (protocol: github.com/delta-io/delta PROTOCOL.md):

- an offset is ``{"version": N}``: everything committed up to table version N has been planned;
- ``latestOffset`` is the table's current version (``maxVersionsPerTrigger`` caps how many
  commits one micro-batch takes);
- ``partitions(start, end)`` are the files *added* by commits ``start+1 .. end``, one task per
  group of files; each commit is read from its JSON log entry ``_delta_log/<version>.json``;
- ``read`` yields the Parquet files as Arrow batches, with the partition columns (``night``)
  restored from the add action's ``partitionValues`` (Delta does not store them in the files).
  Only the columns of the query's schema are read: ``.schema(...)`` with a few columns of a wide
  table (``alerts`` and its cutouts) reads just those columns of each file.

Only appends are expected: a commit that removes data (``remove`` with ``dataChange: true``: a
delete, an overwrite, a MERGE) fails the query with a message naming the version, because its rows
would otherwise silently stay in the downstream state. Rewrites that do not change data
(``OPTIMIZE``, ``dataChange: false``) are skipped. A log entry already cleaned up by log retention
fails loudly too (restart the downstream query from a fresh checkpoint and an initial state).

Options: ``path`` (required), ``maxVersionsPerTrigger``, ``startingVersion`` (default: -1, i.e.
from the table's creation).
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
FILES_PER_TASK = 64


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
    """A data file added by a commit: path relative to the table, and its partition values."""

    path: str
    partition_values: tuple[tuple[str, str | None], ...]
    version: int


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
                files.append(AddedFile(unquote(add["path"]), values, version))
    return files


@dataclass(frozen=True)
class DeltaFiles(InputPartition):
    table: str
    files: tuple[AddedFile, ...]
    schema_bytes: bytes


def _partition_value(text: str | None, kind: pa.DataType) -> pa.Scalar:
    """A Delta partition value (always a string in the log; null is null) as a typed scalar."""
    return pa.scalar(None, kind) if text is None else pa.array([text]).cast(kind)[0]


def read_files(part: DeltaFiles) -> Iterator[pa.RecordBatch]:
    schema = pa.ipc.read_schema(pa.py_buffer(part.schema_bytes))
    for added in part.files:
        partition = {k: v for k, v in added.partition_values if k in schema.names}
        stored = [f for f in schema if f.name not in partition]
        parquet = pq.ParquetFile(os.path.join(part.table, added.path))
        for batch in parquet.iter_batches(columns=[f.name for f in stored]):
            table = pa.Table.from_batches([batch]).cast(pa.schema(stored))
            for name, text in partition.items():
                kind = schema.field(name).type
                table = table.append_column(schema.field(name),
                                            pa.repeat(_partition_value(text, kind), table.num_rows))
            yield from table.select(schema.names).to_batches()


class DeltaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options: dict[str, str], schema: pa.Schema):
        self.options = {k.lower(): v for k, v in options.items()}
        if "path" not in self.options:
            raise ValueError("lenga_delta: option 'path' (a Delta table directory) is required")
        self.path = os.path.abspath(self.options["path"])
        max_versions = self.options.get("maxversionspertrigger")
        self._max_versions = int(max_versions) if max_versions else None
        if self._max_versions is not None and self._max_versions < 1:
            raise ValueError("lenga_delta: maxVersionsPerTrigger must be >= 1")
        self._starting = int(self.options.get("startingversion", NO_VERSION))
        self._schema_bytes = schema.serialize().to_pybytes()
        self._target: int | None = None

    def initialOffset(self) -> dict:
        return {"version": self._starting}

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = table_version(self.path)

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        end = self._target if self._target is not None else table_version(self.path)
        if self._max_versions is not None:
            end = min(end, start["version"] + self._max_versions)
        return {"version": max(end, start["version"])}

    def partitions(self, start: dict, end: dict) -> list[DeltaFiles]:
        files = added_files(self.path, start["version"], end["version"])
        return [DeltaFiles(self.path, tuple(files[i:i + FILES_PER_TASK]), self._schema_bytes)
                for i in range(0, len(files), FILES_PER_TASK)]

    def read(self, partition: DeltaFiles) -> Iterator[pa.RecordBatch]:
        return read_files(partition)


class DeltaDataSource(DataSource):
    """``spark.readStream.format("lenga_delta").option("path", TABLE)``; the schema is the table's
    own unless one is given (``.schema(...)``: needed when the table does not exist yet)."""

    @classmethod
    def name(cls) -> str:
        return "lenga_delta"

    def _arrow_schema(self) -> pa.Schema:
        path = self.options.get("path")
        if not path:
            raise ValueError("lenga_delta: option 'path' (a Delta table directory) is required")
        if table_version(path) == NO_VERSION:
            raise ValueError(f"lenga_delta: {path} is not a Delta table; create it or pass a schema")
        return table_arrow_schema(path)

    def schema(self):
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(self._arrow_schema())

    def streamReader(self, schema) -> DeltaStreamReader:
        from pyspark.sql.pandas.types import to_arrow_schema

        return DeltaStreamReader(dict(self.options), to_arrow_schema(schema, timezone="UTC"))
