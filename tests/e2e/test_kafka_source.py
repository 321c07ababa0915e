"""The Python Kafka streaming source against a real broker (embedded Tansu)."""

from __future__ import annotations

from lenga.io.kafka import create_topics, publish
from lenga.io.kafka_source import KafkaOffsets, OffsetRange, limit_offsets, split_ranges


def _publish_in_bursts(bootstrap: str, topic: str, partitions: int, bursts: list[int]) -> int:
    """Several produce calls, so every partition holds several record batches."""
    create_topics(bootstrap, [topic], partitions=partitions)
    sent = 0
    for size in bursts:
        sent += publish(((topic, str(sent + i).encode(), f"v{sent + i}".encode()) for i in range(size)), bootstrap)
    return sent


def test_latest_offsets_are_the_true_end(kafka_broker, topic_name):
    """Tansu's ListOffsets high mark is the last batch's base + 1; the source must not trust it."""
    sent = _publish_in_bursts(kafka_broker.bootstrap_servers, topic_name, 3, [700, 5, 1200])
    offsets = KafkaOffsets({"kafka.bootstrap.servers": kafka_broker.bootstrap_servers, "subscribe": topic_name})
    try:
        latest = offsets.latest()
        earliest = offsets.earliest()
    finally:
        offsets.close()
    assert sum(latest[topic_name].values()) == sent
    assert all(v == 0 for v in earliest[topic_name].values())


def test_limit_offsets_shares_the_limit_and_always_progresses():
    start = {"a": {"0": 0, "1": 10}}
    end = {"a": {"0": 1000, "1": 20}}
    capped = limit_offsets(start, end, 101)
    assert capped["a"]["0"] - 0 + capped["a"]["1"] - 10 <= 101
    assert capped["a"]["1"] > 10  # the small partition still advances
    assert limit_offsets(start, end, 10_000) == end


def test_limit_offsets_takes_exactly_the_limit():
    # Two partitions of 20,000 records and a limit of 10,000: flooring gave 4,999 + 4,999... and left
    # a tail micro-batch of a few records; the shares must add up to the limit.
    start = {"a": {"0": 0, "1": 0}}
    end = {"a": {"0": 19_999, "1": 20_001}}
    position = start
    sizes = []
    while position != end:
        capped = limit_offsets(position, end, 10_000)
        sizes.append(sum(capped["a"][p] - position["a"][p] for p in capped["a"]))
        position = capped
    assert sizes == [10_000, 10_000, 10_000, 10_000]
    assert all(capped["a"][p] <= end["a"][p] for p in end["a"])


def test_split_ranges_covers_each_offset_once():
    start = {"a": {"0": 5}, "b": {"0": 0, "1": 3}}
    end = {"a": {"0": 1005}, "b": {"0": 0, "1": 4}}
    ranges = split_ranges(start, end, 4)
    covered = sorted((r.topic, r.partition, o) for r in ranges for o in range(r.start, r.end))
    expected = sorted([("a", 0, o) for o in range(5, 1005)] + [("b", 1, 3)])
    assert covered == expected
    assert all(isinstance(r, OffsetRange) and r.end > r.start for r in ranges)
    assert len([r for r in ranges if r.topic == "a"]) > 1


def test_stream_reads_every_record_exactly_once(spark, kafka_broker, topic_name, tmp_path):
    sent = _publish_in_bursts(kafka_broker.bootstrap_servers, topic_name, 2, [900, 3, 600])
    seen: list[tuple[str, int, int, bytes]] = []
    batches: list[int] = []

    def collect(df, batch_id):
        rows = df.select("topic", "partition", "offset", "value").collect()
        batches.append(len(rows))
        seen.extend((r.topic, r.partition, r.offset, bytes(r.value)) for r in rows)

    stream = (spark.readStream.format("lenga_kafka")
              .option("kafka.bootstrap.servers", kafka_broker.bootstrap_servers)
              .option("subscribe", topic_name).option("maxOffsetsPerTrigger", 500)
              .option("minPartitions", 2).load())
    assert stream.columns == ["key", "value", "topic", "partition", "offset", "timestamp", "timestampType"]
    query = (stream.writeStream.foreachBatch(collect).trigger(availableNow=True)
             .option("checkpointLocation", str(tmp_path / "ck")).start())
    query.awaitTermination()
    keys = {(t, p, o) for t, p, o, _ in seen}
    assert len(seen) == len(keys) == sent
    assert max(batches) <= 500 and len(batches) >= sent // 500
    assert {v for *_, v in seen} == {f"v{i}".encode() for i in range(sent)}

    # A restart from the same checkpoint reads only what arrived since.
    more = publish(((topic_name, None, f"w{i}".encode()) for i in range(50)), kafka_broker.bootstrap_servers)
    seen.clear()
    query = (stream.writeStream.foreachBatch(collect).trigger(availableNow=True)
             .option("checkpointLocation", str(tmp_path / "ck")).start())
    query.awaitTermination()
    assert sorted(v for *_, v in seen) == sorted(f"w{i}".encode() for i in range(more))
