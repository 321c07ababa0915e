"""The Kafka sink used by the distribution query, against a real broker (Tansu)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition

from lenga.io.broker import free_port
from lenga.io.kafka import create_topics
from lenga.io.kafka_sink import SINK_NAME, SINK_SCHEMA, write_messages


def consume(bootstrap: str, topic: str, partitions: int) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "sink-tests", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    try:
        while messages := consumer.consume(num_messages=500, timeout=1.5):
            out += [(m.topic(), m.key(), m.value(), m.headers()) for m in messages if m.error() is None]
    finally:
        consumer.close()
    return out


def test_every_message_reaches_its_topic_with_key_and_headers(spark, kafka_broker, topic_name):
    topics = [f"{topic_name}_a", f"{topic_name}_b"]
    create_topics(kafka_broker.bootstrap_servers, topics, partitions=2)
    rows = [(topics[i % 2], f"obj{i % 7}".encode(), bytes([i % 256]) * (i + 1), [("candid", str(i).encode())])
            for i in range(300)]
    frame = spark.createDataFrame(rows, SINK_SCHEMA).repartition(3)  # three tasks, three producers
    assert write_messages(frame, kafka_broker.bootstrap_servers) == SINK_NAME
    got = consume(kafka_broker.bootstrap_servers, topics[0], 2) + consume(kafka_broker.bootstrap_servers, topics[1], 2)
    assert sorted(got) == sorted(rows)


def test_undeliverable_messages_fail_the_write(spark, topic_name):
    """No broker: the task's flush reports the failures and the Spark job fails, so the micro-batch
    is not committed (and is replayed on restart) instead of silently losing messages."""
    frame = spark.createDataFrame([(topic_name, b"k", b"v", [])], SINK_SCHEMA)
    with pytest.raises(Exception, match="KafkaDeliveryError: 1 of 1 messages failed"):
        write_messages(frame, f"127.0.0.1:{free_port()}", {"kafka.message.timeout.ms": 3000})
