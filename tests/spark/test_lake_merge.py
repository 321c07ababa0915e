"""``Lake.merge`` on the delta-rs backend: upsert by key, partition pruning, replay skipped."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lenga.io.lake import DeltaRsLake
from lenga.io.lake.base import merge_condition
from lenga.tables import TableSpec

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


def log_actions(lake, version: int) -> list[dict]:
    """The actions of one commit of the ``objects`` table, read from its Delta log."""
    log = Path(lake.path("objects")) / "_delta_log" / f"{version:020d}.json"
    return [json.loads(line) for line in log.read_text().splitlines()]


def files_of(lake, pixel: int) -> list[str]:
    """Committed files of one pixel, relative to the table root (as delta-rs lists them)."""
    root = Path(lake.path("objects"))
    uris = DeltaTable(str(root)).file_uris(file_pruning_predicate=[("hpx", "=", pixel)])
    return sorted(str(Path(uri.removeprefix("file://")).relative_to(root)) for uri in uris)


def test_merge_moves_a_row_across_partitions_and_leaves_other_partitions_alone(spark, tmp_path):
    lake = DeltaRsLake(spark, tmp_path)
    lake.merge(SPEC, frame(spark, [("ztf", f"o{i}", 1, i % 4) for i in range(12)]), "app", 0)
    files_before = {p: files_of(lake, p) for p in range(4)}

    # o1 moves from pixel 1 to 2: pixel 1 gets no row of the batch but must lose o1; pixel 3 is a
    # target holding none of the batch's keys; pixel 0 is not a target.
    moved = lake.merge(SPEC, frame(spark, [("ztf", "o1", 2, 2), ("ztf", "new", 1, 2)]), "app", 1,
                       target_partitions={"hpx": [1, 2, 3]})
    rows = pl.read_delta(lake.path("objects"))
    assert rows.height == 13 and rows.select(["survey", "objectId"]).n_unique() == 13
    assert table(lake)[("ztf", "o1")] == (2, 2) and table(lake)[("ztf", "new")] == (1, 2)
    assert moved.rows == 2
    actions = log_actions(lake, DeltaTable(lake.path("objects")).version())
    assert {"txn": {"appId": "app", "version": 1}} in [{k: {"appId": v["appId"], "version": v["version"]}}
                                                       for a in actions for k, v in a.items() if k == "txn"]
    assert files_of(lake, 0) == files_before[0] and files_of(lake, 3) == files_before[3]

    # Every row of a pixel leaving it.
    lake.merge(SPEC, frame(spark, [("ztf", "o3", 1, 0), ("ztf", "o7", 1, 0), ("ztf", "o11", 1, 0)]), "app", 2,
               target_partitions={"hpx": [0, 3]})
    assert len(table(lake)) == 13 and {table(lake)[("ztf", o)] for o in ("o3", "o7", "o11")} == {(1, 0)}


def test_replayed_merge_writes_no_file(spark, tmp_path):
    lake = DeltaRsLake(spark, tmp_path)
    batch = frame(spark, [("ztf", f"o{i}", 1, i) for i in range(3)])
    lake.merge(SPEC, batch, "app", 0)
    files, version = sorted(Path(lake.path("objects")).rglob("*")), DeltaTable(lake.path("objects")).version()
    assert lake.merge(SPEC, batch, "app", 0).skipped
    assert sorted(Path(lake.path("objects")).rglob("*")) == files
    assert DeltaTable(lake.path("objects")).version() == version
