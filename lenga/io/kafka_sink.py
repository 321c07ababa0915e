"""Writing a DataFrame of Kafka messages (``topic, key, value, headers``) from inside ``foreachBatch``.

- With the spark-sql-kafka jar (a cluster started by ``spark-submit.sh``): Spark's built-in ``kafka``
  batch sink.
- Without it: ``lenga_kafka_sink``, a Spark 4.2 Python data source writer (``DataSourceArrowWriter``)
  with a confluent-kafka producer per task. Each task flushes its producer and fails if any message
  was not acknowledged, *before* the task commits; the Spark job, hence the ``foreachBatch`` call,
  hence the micro-batch, succeeds only when every message is in Kafka.

Either way the delivery is **at-least-once**: a micro-batch that fails after some messages went out
(a task retry, a crash before the query's checkpoint commit) sends them again. Consumers recognise
duplicates by (key, candid) (lenga puts the candid in a header). The producer is idempotent
(``enable.idempotence``), so librdkafka's own retries add no duplicates within one task.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.datasource import DataSource, DataSourceArrowWriter, WriterCommitMessage

from lenga.io.kafka import MAX_MESSAGE_BYTES
from lenga.io.session import kafka_format

SINK_NAME = "lenga_kafka_sink"
#: The columns a message DataFrame has (those of Spark's Kafka sink).
MESSAGE_COLUMNS = ("topic", "key", "value", "headers")
SINK_SCHEMA = "topic string, key binary, value binary, headers array<struct<key: string, value: binary>>"
# How long a task waits for the broker to acknowledge its last messages before failing the batch.
FLUSH_TIMEOUT_S = 60.0
# Producer settings: acknowledged by all in-sync replicas, no duplicates from librdkafka retries,
# large batches (lenga's messages reach a few hundred KB with cutouts).
PRODUCER_DEFAULTS = {
    "acks": "all",
    "enable.idempotence": "true",
    "message.max.bytes": str(MAX_MESSAGE_BYTES),
    "batch.size": str(MAX_MESSAGE_BYTES),
    "linger.ms": "20",
}


class KafkaDeliveryError(RuntimeError):
    """Some messages of a task were not acknowledged by the broker: the micro-batch fails (and is
    replayed on restart) rather than committing with messages lost."""


@dataclass
class DeliveredMessage(WriterCommitMessage):
    messages: int


class KafkaSinkWriter(DataSourceArrowWriter):
    """One confluent-kafka producer per task; flush-and-check before the task commits."""

    def __init__(self, options: dict[str, str]):
        # Spark lower-cases option keys; librdkafka's are lower-case already.
        self.conf = {**PRODUCER_DEFAULTS,
                     **{k[len("kafka."):]: v for k, v in options.items() if k.startswith("kafka.")}}
        if "bootstrap.servers" not in self.conf:
            raise ValueError(f"{SINK_NAME}: option kafka.bootstrap.servers is required")

    def write(self, iterator: Iterator[pa.RecordBatch]) -> DeliveredMessage:
        from confluent_kafka import Producer

        producer = Producer(self.conf)
        failures: list[str] = []

        def on_delivery(err, _msg) -> None:
            if err is not None:
                failures.append(str(err))

        sent = 0
        for batch in iterator:
            for row in batch.to_pylist():
                headers = [(h["key"], h["value"]) for h in row.get("headers") or []]
                while True:
                    try:
                        producer.produce(row["topic"], value=row["value"], key=row["key"],
                                         headers=headers, on_delivery=on_delivery)
                        break
                    except BufferError:  # local queue full: serve delivery reports, then retry
                        producer.poll(0.1)
                producer.poll(0)
                sent += 1
        pending = producer.flush(FLUSH_TIMEOUT_S)
        if pending or failures:
            raise KafkaDeliveryError(
                f"{len(failures)} of {sent} messages failed and {pending} unacknowledged after "
                f"{FLUSH_TIMEOUT_S:.0f} s; first error: {failures[0] if failures else 'timeout'}")
        return DeliveredMessage(sent)


class KafkaSinkDataSource(DataSource):
    """``df.write.format("lenga_kafka_sink").option("kafka.bootstrap.servers", ...).mode("append").save()``."""

    @classmethod
    def name(cls) -> str:
        return SINK_NAME

    def schema(self) -> str:
        return SINK_SCHEMA

    def writer(self, schema, overwrite: bool) -> KafkaSinkWriter:
        return KafkaSinkWriter(dict(self.options))


def write_messages(messages: DataFrame, bootstrap_servers: str, options: dict[str, str] | None = None) -> str:
    """Write ``messages`` (``MESSAGE_COLUMNS``) to Kafka; returns the sink used (``kafka`` or
    ``lenga_kafka_sink``). Returns once every message is acknowledged (raises otherwise)."""
    spark = messages.sparkSession
    sink = "kafka" if kafka_format(spark) == "kafka" else SINK_NAME
    if sink == SINK_NAME:
        spark.dataSource.register(KafkaSinkDataSource)
    writer = (messages.select(*MESSAGE_COLUMNS).write.format(sink)
              .option("kafka.bootstrap.servers", bootstrap_servers))
    for key, value in (options or {}).items():
        writer = writer.option(key, str(value))
    writer.mode("append").save()
    return sink
