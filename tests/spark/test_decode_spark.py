"""udfs.decode in a real local Spark session (the shared ``spark`` fixture): the mapInArrow contract the
streaming job relies on."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import fastavro


def test_map_in_arrow_decodes_kafka_rows(spark, shared_data):
    from pyspark.sql import functions as F

    from lenga import schema
    from udfs.decode import DECODED_SPARK_SCHEMA, decode_batches

    files = sorted((shared_data / "ztf/boom").glob("*.avro")) + [shared_data / "lsst/boom/7912941781254298.avro"]
    values = [p.read_bytes() for p in files] + [b"garbage"]
    stamp = datetime(2025, 3, 2, 10, 0, tzinfo=UTC)
    rows = [(b"k", v, "alerts", 0, i, stamp, 0) for i, v in enumerate(values)]
    kafka = spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
              "timestampType int")
    decoded = kafka.mapInArrow(decode_batches, DECODED_SPARK_SCHEMA).cache()

    assert decoded.columns == schema.DECODED.names
    out = {r["offset"]: r for r in decoded.select("offset", "survey", "objectId", "night", "quarantine_reason",
                                                  "kafka_timestamp", F.size("detections").alias("n")).collect()}
    assert [out[i]["survey"] for i in range(4)] == ["ztf", "ztf", "lsst", None]
    assert [out[i]["objectId"] for i in range(3)] == ["ZTF18abudxnw", "ZTF18acullba", "7912941781254298"]
    assert out[3]["quarantine_reason"] == "not an Avro container or Confluent wire message"
    assert out[3]["night"] == 20250301 and out[0]["kafka_timestamp"].replace(tzinfo=UTC) == stamp
    # Each ZTF alert: its candidate plus the prv_candidates that are detections (fastavro's reading).
    expected = [1 + sum(p["candid"] is not None and p["magpsf"] is not None
                        for p in next(fastavro.reader(io.BytesIO(v)))["prv_candidates"]) for v in values[:2]]
    assert [out[0]["n"], out[1]["n"], out[2]["n"]] == [*expected, 1]
    exploded = decoded.where("quarantine_reason is null").select(F.explode("detections").alias("d")).select("d.*")
    assert exploded.columns == schema.DETECTIONS.names
    assert exploded.count() == sum(expected) + 1
