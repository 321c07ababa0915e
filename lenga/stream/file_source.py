"""A Spark Python streaming data source over directories of alert files (``format("lenga_files")``).

ZTF's public archive publishes each night as a tarball of ``.avro`` files (one alert each); brokers
also receive directories of alerts from colleagues or from a simulator. This source turns such a
directory into the same rows as the Kafka source (``key, value, topic, partition, offset,
timestamp, timestampType``) so the rest of the stream is identical:

- ``topic`` is the path of the file (or of the tarball) the alert came from,
- ``partition`` is the alert's position inside that file (a tar member, or a record of a
  multi-record Avro container, split into single-record containers),
- ``offset`` is the file's position in the directory listing, ``timestamp`` its modification time.

Files are taken in (modification time, name) order and the directory is assumed append-only (new
files arrive, old ones are not rewritten), like Spark's own file sources; the offset is the number
of files already planned. Options: ``path`` (required), ``pattern`` (glob, default
``*.avro`` and ``*.tar.gz``/``*.tgz``/``*.tar``), ``maxFilesPerTrigger``.
"""

from __future__ import annotations

import glob
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxFiles,
    SupportsTriggerAvailableNow,
)

from lenga.io.kafka_source import KAFKA_ARROW_SCHEMA, KAFKA_SCHEMA

DEFAULT_PATTERNS = ("*.avro", "*.avro.gz", "*.tar.gz", "*.tgz", "*.tar")
FILES_PER_TASK = 500


def list_alert_files(path: str, patterns: tuple[str, ...] = DEFAULT_PATTERNS) -> list[str]:
    """Alert files under ``path`` (recursively) in (modification time, name) order."""
    found = {f for pattern in patterns for f in glob.glob(os.path.join(path, "**", pattern), recursive=True)}
    return sorted(found, key=lambda f: (os.stat(f).st_mtime_ns, f))


def messages_of_file(path: str) -> Iterator[bytes]:
    """The alert messages a file holds: tar members, gzip-wrapped or plain Avro containers."""
    import gzip

    from lenga.decode import split_container  # here: the decoder stays off the planner processes

    if path.endswith((".tar", ".tar.gz", ".tgz")):
        with tarfile.open(path) as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".avro"):
                    yield from split_container(archive.extractfile(member).read())
        return
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        yield from split_container(handle.read())


@dataclass(frozen=True)
class FileRange(InputPartition):
    files: tuple[tuple[int, str], ...]


def read_files(part: FileRange) -> Iterator[pa.RecordBatch]:
    for index, path in part.files:
        mtime_us = os.stat(path).st_mtime_ns // 1000
        values = list(messages_of_file(path))
        n = len(values)
        yield pa.RecordBatch.from_pydict({
            "key": [None] * n, "value": values, "topic": [path] * n, "partition": list(range(n)),
            "offset": [index] * n, "timestamp": [mtime_us] * n, "timestampType": [0] * n,
        }, schema=KAFKA_ARROW_SCHEMA)


class AlertFileStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options: dict[str, str]):
        self.options = {k.lower(): v for k, v in options.items()}
        if "path" not in self.options:
            raise ValueError("lenga_files: option 'path' (a directory of alert files) is required")
        self.path = self.options["path"]
        pattern = self.options.get("pattern")
        self.patterns = (pattern,) if pattern else DEFAULT_PATTERNS
        max_files = self.options.get("maxfilespertrigger")
        self._max_files = int(max_files) if max_files else None
        self._target: int | None = None

    def _listing(self) -> list[str]:
        return list_alert_files(self.path, self.patterns)

    def initialOffset(self) -> dict:
        return {"files": 0}

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxFiles(self._max_files) if self._max_files else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = len(self._listing())

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        end = self._target if self._target is not None else len(self._listing())
        if isinstance(limit, ReadMaxFiles):
            end = min(end, start["files"] + limit.max_files)
        return {"files": max(end, start["files"])}

    def partitions(self, start: dict, end: dict) -> list[FileRange]:
        listing = self._listing()[start["files"]:end["files"]]
        indexed = list(enumerate(listing, start=start["files"]))
        return [FileRange(tuple(indexed[i:i + FILES_PER_TASK])) for i in range(0, len(indexed), FILES_PER_TASK)]

    def read(self, partition: FileRange) -> Iterator[pa.RecordBatch]:
        return read_files(partition)


class AlertFileDataSource(DataSource):
    """``spark.readStream.format("lenga_files").option("path", DIR)``."""

    @classmethod
    def name(cls) -> str:
        return "lenga_files"

    def schema(self) -> str:
        return KAFKA_SCHEMA

    def streamReader(self, schema) -> AlertFileStreamReader:
        return AlertFileStreamReader(dict(self.options))
