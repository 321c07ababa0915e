"""``Lake.merge`` on the delta-rs backend: upsert by key, partition pruning, replay skipped."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from lenga.io.lake import DeltaRsLake, TableSpec, merge_condition

SCHEMA = pa.schema([("survey", pa.string()), ("objectId", pa.string()), ("ndet", pa.int64()), ("hpx", pa.int64())])
SPEC = TableSpec("objects", SCHEMA, keys=("survey", "objectId"), partition_by=("hpx",))


def frame(spark, rows):
    return spark.createDataFrame(rows, "survey string, objectId string, ndet long, hpx long")


def table(lake) -> dict:
    rows = pl.read_delta(lake.path("objects")).to_dicts()
    return {(r["survey"], r["objectId"]): (r["ndet"], r["hpx"]) for r in rows}


def test_merge_upserts_prunes_partitions_and_skips_replays(spark, tmp_path):
    lake = DeltaRsLake(spark, tmp_path)
    first = lake.merge(SPEC, frame(spark, [("ztf", f"o{i}", 1, i) for i in range(10)]), "app", 0)
    assert first.rows == 10 and first.files == 10
    assert table(lake) == {("ztf", f"o{i}"): (1, i) for i in range(10)}

    # o3 gains a detection (same pixel), o'x is new; only pixel 3's file is read.
    second = lake.merge(SPEC, frame(spark, [("ztf", "o3", 2, 3), ("ztf", "o'x", 1, 3)]), "app", 1)
    assert second.rows == 2 and second.extra["files_skipped"] + second.extra["files_scanned"] <= 10
    assert second.extra["files_scanned"] == 1
    assert table(lake)[("ztf", "o3")] == (2, 3) and table(lake)[("ztf", "o'x")] == (1, 3)

    # A row moving to a neighbour pixel is found when its old pixel is in the target.
    lake.merge(SPEC, frame(spark, [("ztf", "o4", 5, 5)]), "app", 2, target_partitions={"hpx": [4, 5]})
    assert table(lake)[("ztf", "o4")] == (5, 5) and len(table(lake)) == 11

    before = table(lake)
    replay = lake.merge(SPEC, frame(spark, [("ztf", "o1", 99, 1)]), "app", 2)
    assert replay.skipped and table(lake) == before


def test_merge_condition_quotes_identifiers_and_literals():
    condition = merge_condition(SPEC, {"hpx": [3, 1, 3]}, quote='"')
    assert condition == 't."survey" = s."survey" AND t."objectId" = s."objectId" AND t."hpx" IN (1, 3)'
    night = TableSpec("x", SCHEMA, keys=("objectId",), partition_by=("survey",))
    assert merge_condition(night, {"survey": ["it's"]}, quote="`").endswith("t.`survey` IN ('it''s')")
    with pytest.raises(ValueError, match="no key columns"):
        merge_condition(TableSpec("y", SCHEMA), {}, quote='"')
    with pytest.raises(ValueError, match="only int and str"):
        merge_condition(SPEC, {"hpx": [1.5]}, quote='"')
