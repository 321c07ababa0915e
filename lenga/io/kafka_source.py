"""A Spark 4.2 Python streaming data source over Kafka (``format("lenga_kafka")``).

Why it exists: on a cluster lenga uses Spark's built-in ``kafka`` source (spark-sql-kafka jar via
``--packages``), but that jar cannot be fetched everywhere (air-gapped sites, this project's CI).
This source yields exactly the built-in source's columns (``key, value, topic, partition, offset,
timestamp, timestampType``) and understands the same options, so the rest of the job does not
know which one it reads:

- ``kafka.bootstrap.servers``, ``subscribe`` (comma-separated topics), ``startingOffsets``
  (``earliest``, ``latest`` or Spark's JSON ``{"topic": {"0": 42}}``), ``maxOffsetsPerTrigger``,
  ``minPartitions`` (split large offset ranges so both cores work on a one-partition topic),
  and any other ``kafka.*`` option passed through to librdkafka.

Design:
- Offsets are Spark's own Kafka-source shape ``{topic: {partition: next_offset}}`` and live only
  in the Spark checkpoint: the consumer uses ``assign()`` (no consumer group, no 5 s group join, no
  broker-side commits). Restarting from a checkpoint therefore resumes exactly where the last
  committed micro-batch ended.
- The end of a partition is read from the high watermark that the broker reports in a *fetch*
  response, not from ``get_watermark_offsets`` alone: the Tansu broker's ListOffsets answer is the
  base offset of the last record batch + 1, which would silently lose the last batch. Fetching one
  record just below that mark and then reading the cached watermark is right for Tansu and for
  Apache Kafka alike.
- ``Trigger.AvailableNow`` is supported (``SupportsTriggerAvailableNow``): the end offsets are
  frozen when the query starts, so a demo or a batch job drains the topic and stops.
- Option keys reach Python lower-cased (``maxoffsetspertrigger``): every lookup here is lower-case.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)

# The built-in Kafka source's schema, column for column.
KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, "
    "timestamp timestamp, timestampType int"
)
KAFKA_ARROW_SCHEMA = pa.schema([
    ("key", pa.binary()), ("value", pa.binary()), ("topic", pa.string()), ("partition", pa.int32()),
    ("offset", pa.int64()), ("timestamp", pa.timestamp("us", tz="UTC")), ("timestampType", pa.int32()),
])

# How long a task waits for records it knows exist before failing the batch (never skip data).
FETCH_DEADLINE_S = 120.0
METADATA_TIMEOUT_S = 10.0
# Records per consume() call and per output Arrow batch: large enough to amortise the calls, small
# enough to bound a task's memory (250 ZTF alerts are ~20 MB, copied a few times while decoded).
# Measured on 20,000 ZTF alerts in 10,000-alert batches: 2,000 held ~0.9 GB per reader worker;
# 500 → 250 cut the workers' peak from 2.2 to 1.9 GB and their kernel time (fewer fresh pages) at
# the same user CPU; 100 saves 0.2 GB more but costs more user CPU per chunk.
CONSUME_CHUNK = 250
ARROW_BATCH_ROWS = 250

Offsets = dict[str, dict[str, int]]


def _client_config(options: dict[str, str]) -> dict[str, object]:
    """librdkafka settings from the ``kafka.*`` options (without the prefix)."""
    config: dict[str, object] = {
        key[len("kafka."):]: value for key, value in options.items() if key.startswith("kafka.")
    }
    if "bootstrap.servers" not in config:
        raise ValueError("lenga_kafka: option 'kafka.bootstrap.servers' is required")
    config.setdefault("group.id", "lenga-unused")  # required by the client; assign() never joins it
    config["enable.auto.commit"] = False
    config["enable.partition.eof"] = False
    config.setdefault("fetch.message.max.bytes", 16 * 1024 * 1024)
    # Tasks only ask for records known to exist: do not let the broker hold a fetch open waiting
    # for more (measured with Tansu: 1,840 → 2,921 msg/s of 80 KB with 1 MB producer batches).
    config.setdefault("fetch.wait.max.ms", 10)
    # A task decodes between two consume() calls while librdkafka prefetches; once its queue is
    # full (queued.max.messages.kbytes, 64 MB = ~800 alerts) librdkafka >= 2.3 postpones the next
    # fetch by fetch.queue.backoff.ms, 1 s by default, and the task then waits for it. Measured on
    # 10,000 ZTF alerts read and decoded in one task: 10.3 s wall with the default, 3.9 s with 10 ms.
    config.setdefault("fetch.queue.backoff.ms", 10)
    config.setdefault("log_level", 3)
    return config


def _topics(options: dict[str, str]) -> list[str]:
    topics = [t.strip() for t in options.get("subscribe", "").split(",") if t.strip()]
    if not topics:
        raise ValueError("lenga_kafka: option 'subscribe' (comma-separated topics) is required")
    return topics


@dataclass(frozen=True)
class OffsetRange(InputPartition):
    """One Spark task's share of one Kafka partition: offsets [start, end); for
    :class:`IngestingKafkaStreamReader` also the micro-batch id and the batch's staging directory."""

    topic: str
    partition: int
    start: int
    end: int
    batch_id: int | None = None
    staging: str | None = None


class KafkaOffsets:
    """Driver-side helper: list partitions and find their true start/end offsets."""

    def __init__(self, options: dict[str, str]):
        from confluent_kafka import Consumer

        self._topics = _topics(options)
        self._consumer = Consumer(_client_config(options))

    def partitions(self) -> list[tuple[str, int]]:
        result = []
        for topic in self._topics:
            meta = self._consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S).topics.get(topic)
            if meta is None or meta.error is not None:
                # A topic that does not exist yet has no data yet: nothing to read.
                continue
            result.extend((topic, p) for p in sorted(meta.partitions))
        return result

    def earliest(self) -> Offsets:
        from confluent_kafka import TopicPartition

        out: Offsets = {}
        for topic, partition in self.partitions():
            low, _ = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=METADATA_TIMEOUT_S)
            out.setdefault(topic, {})[str(partition)] = max(low, 0)
        return out

    def latest(self) -> Offsets:
        """True end offsets: fetch one record below the reported mark, then trust the fetch's mark."""
        from confluent_kafka import TopicPartition

        reported: dict[tuple[str, int], tuple[int, int]] = {}
        for topic, partition in self.partitions():
            reported[(topic, partition)] = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=METADATA_TIMEOUT_S)
        probe = [TopicPartition(t, p, hi - 1) for (t, p), (lo, hi) in reported.items() if hi > lo]
        ends = {tp: hi for tp, (_lo, hi) in reported.items()}
        if probe:
            self._consumer.assign(probe)
            pending = {(tp.topic, tp.partition) for tp in probe}
            deadline = time.monotonic() + METADATA_TIMEOUT_S
            while pending and time.monotonic() < deadline:
                for message in self._consumer.consume(num_messages=len(pending), timeout=0.5):
                    if message.error() is None:
                        pending.discard((message.topic(), message.partition()))
            if pending:
                raise RuntimeError(f"lenga_kafka: no fetch answer for {sorted(pending)}")
            for tp in probe:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), cached=True)
                ends[(tp.topic, tp.partition)] = max(high, ends[(tp.topic, tp.partition)])
            self._consumer.unassign()
        out: Offsets = {}
        for (topic, partition), end in ends.items():
            out.setdefault(topic, {})[str(partition)] = end
        return out

    def close(self) -> None:
        self._consumer.close()


def limit_offsets(start: Offsets, end: Offsets, max_rows: int) -> Offsets:
    """Cap the range start→end to ``max_rows`` records, shared across partitions by their backlog.

    Shares are rounded by largest remainder, so a batch takes exactly ``max_rows`` records: flooring
    each share left a few records per partition behind, and draining them cost the stream a whole
    extra micro-batch (~1.5 s of fixed cost for 4 alerts). Every partition with a backlog advances
    by at least one record, so a small limit cannot stall (it may then exceed the limit slightly).
    """
    backlog = {
        (t, p): max(end[t][p] - start.get(t, {}).get(p, 0), 0) for t in end for p in end[t]
    }
    total = sum(backlog.values())
    if total <= max_rows:
        return end
    exact = {key: max_rows * pending / total for key, pending in backlog.items()}
    shares = {key: min(pending, max(1, math.floor(exact[key]))) if pending else 0
              for key, pending in backlog.items()}
    by_remainder = sorted(backlog, key=lambda key: exact[key] - math.floor(exact[key]), reverse=True)
    for key in by_remainder[:max(0, max_rows - sum(shares.values()))]:
        shares[key] += shares[key] < backlog[key]
    capped: Offsets = {}
    for (topic, partition), share in shares.items():
        capped.setdefault(topic, {})[partition] = start.get(topic, {}).get(partition, 0) + share
    return capped


def split_ranges(start: Offsets, end: Offsets, min_partitions: int) -> list[OffsetRange]:
    """Offset ranges for Spark tasks: one per Kafka partition, split evenly up to ``min_partitions``."""
    ranges = [
        (topic, int(partition), start.get(topic, {}).get(partition, 0), stop)
        for topic in end for partition, stop in end[topic].items()
        if stop > start.get(topic, {}).get(partition, 0)
    ]
    total = sum(stop - begin for *_, begin, stop in ranges)
    out: list[OffsetRange] = []
    for topic, partition, begin, stop in ranges:
        pieces = max(1, round(min_partitions * (stop - begin) / total)) if min_partitions > len(ranges) else 1
        step = math.ceil((stop - begin) / pieces)
        out.extend(OffsetRange(topic, partition, lo, min(lo + step, stop)) for lo in range(begin, stop, step))
    return out


def read_range(options: dict[str, str], part: OffsetRange) -> Iterator[pa.RecordBatch]:
    """Read exactly the records [start, end) of one partition as Arrow batches (executor side)."""
    for columns in read_columns(options, part):
        yield pa.RecordBatch.from_pydict(columns, schema=KAFKA_ARROW_SCHEMA)


def read_columns(options: dict[str, str], part: OffsetRange) -> Iterator[dict[str, list]]:
    """Read exactly the records [start, end) of one partition, in chunks of up to
    :data:`ARROW_BATCH_ROWS` records as Python lists per column of :data:`KAFKA_ARROW_SCHEMA`."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(_client_config(options))
    try:
        consumer.assign([TopicPartition(part.topic, part.partition, part.start)])
        next_offset = part.start
        rows: dict[str, list] = {name: [] for name in KAFKA_ARROW_SCHEMA.names}
        deadline = time.monotonic() + FETCH_DEADLINE_S
        while next_offset < part.end:
            wanted = min(CONSUME_CHUNK, part.end - next_offset)
            messages = consumer.consume(num_messages=wanted, timeout=1.0)
            if not messages and time.monotonic() > deadline:
                raise RuntimeError(
                    f"lenga_kafka: {part.topic}[{part.partition}] stopped at offset {next_offset}, "
                    f"expected records up to {part.end} (deleted or compacted?)")
            for message in messages:
                if message.error() is not None:
                    raise RuntimeError(f"lenga_kafka: {message.error()}")
                offset = message.offset()
                if offset < next_offset or offset >= part.end:
                    continue
                timestamp_type, timestamp_ms = message.timestamp()
                rows["key"].append(message.key())
                rows["value"].append(message.value())
                rows["topic"].append(message.topic())
                rows["partition"].append(message.partition())
                rows["offset"].append(offset)
                rows["timestamp"].append(timestamp_ms * 1000 if timestamp_ms >= 0 else None)
                # librdkafka: 1 = CreateTime, 2 = LogAppendTime; Spark: 0 and 1.
                rows["timestampType"].append(timestamp_type - 1 if timestamp_ms >= 0 else None)
                next_offset = offset + 1
                deadline = time.monotonic() + FETCH_DEADLINE_S
            if len(rows["offset"]) >= ARROW_BATCH_ROWS or (next_offset >= part.end and rows["offset"]):
                yield rows
                rows = {name: [] for name in KAFKA_ARROW_SCHEMA.names}
    finally:
        consumer.close()


class KafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Micro-batch reader; see the module docstring."""

    def __init__(self, options: dict[str, str]):
        self.options = {k.lower(): v for k, v in options.items()}
        _topics(self.options)
        _client_config(self.options)
        self._max_rows = int(self.options["maxoffsetspertrigger"]) if "maxoffsetspertrigger" in self.options else None
        self._min_partitions = int(self.options.get("minpartitions", "1"))
        self._target: Offsets | None = None
        self._kafka: KafkaOffsets | None = None

    @property
    def kafka(self) -> KafkaOffsets:
        if self._kafka is None:
            self._kafka = KafkaOffsets(self.options)
        return self._kafka

    def initialOffset(self) -> Offsets:
        starting = self.options.get("startingoffsets", "earliest").strip()
        if starting == "earliest":
            return self.kafka.earliest()
        if starting == "latest":
            return self.kafka.latest()
        try:
            given = json.loads(starting)
        except json.JSONDecodeError as exc:
            raise ValueError(f"lenga_kafka: startingOffsets must be earliest, latest or JSON: {exc}") from exc
        earliest = self.kafka.earliest()
        for topic, parts in given.items():
            for partition, offset in parts.items():
                if offset >= 0:  # -2/-1 mean earliest/latest in Spark's JSON; earliest is the default
                    earliest.setdefault(topic, {})[str(partition)] = int(offset)
        return earliest

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxRows(self._max_rows) if self._max_rows else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = self.kafka.latest()

    def latestOffset(self, start: Offsets, limit: ReadLimit) -> Offsets:
        end = self._target if self._target is not None else self.kafka.latest()
        # Partitions that appeared after the query started are read from their beginning.
        merged: Offsets = {t: dict(p) for t, p in start.items()}
        for topic, parts in end.items():
            for partition, stop in parts.items():
                begin = merged.setdefault(topic, {}).setdefault(partition, 0)
                merged[topic][partition] = max(begin, stop)
        if isinstance(limit, ReadMaxRows):
            return limit_offsets(start, merged, limit.max_rows)
        return merged

    def partitions(self, start: Offsets, end: Offsets) -> list[OffsetRange]:
        return split_ranges(start, end, self._min_partitions)

    def read(self, partition: OffsetRange) -> Iterator[pa.RecordBatch]:
        return read_range(self.options, partition)

    def commit(self, end: Offsets) -> None:
        """Offsets live in Spark's checkpoint; nothing is committed to the broker."""

    def stop(self) -> None:
        if self._kafka is not None:
            self._kafka.close()
            self._kafka = None


class KafkaDataSource(DataSource):
    """``spark.readStream.format("lenga_kafka")``: Kafka without the spark-sql-kafka jar."""

    @classmethod
    def name(cls) -> str:
        return "lenga_kafka"

    def schema(self) -> str:
        return KAFKA_SCHEMA

    def streamReader(self, schema) -> KafkaStreamReader:
        return KafkaStreamReader(dict(self.options))
