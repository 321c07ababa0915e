"""``Lake.merge`` on the delta-rs backend: upsert by key, partition pruning, replay skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

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
    assert (moved.rows, moved.files) == (2, 2)
    assert [moved.extra[k] for k in ("rows_updated", "rows_inserted")] == [1, 1]
    assert [moved.extra[k] for k in ("files_scanned", "files_rewritten", "files_skipped")] == [3, 2, 1]

    actions = log_actions(lake, DeltaTable(lake.path("objects")).version())
    removed = sorted(a["remove"]["path"] for a in actions if "remove" in a)
    added = sorted(a["add"]["partitionValues"]["hpx"] for a in actions if "add" in a)
    assert removed == sorted(files_before[1] + files_before[2]) and added == ["1", "2"]
    assert {"txn": {"appId": "app", "version": 1}} in [{k: {"appId": v["appId"], "version": v["version"]}}
                                                       for a in actions for k, v in a.items() if k == "txn"]
    assert files_of(lake, 0) == files_before[0] and files_of(lake, 3) == files_before[3]

    # A row leaving a pixel that keeps no row removes the pixel's file without a new one.
    lake.merge(SPEC, frame(spark, [("ztf", "o3", 1, 0), ("ztf", "o7", 1, 0), ("ztf", "o11", 1, 0)]), "app", 2,
               target_partitions={"hpx": [0, 3]})
    assert files_of(lake, 3) == []
    assert len(table(lake)) == 13 and {table(lake)[("ztf", o)] for o in ("o3", "o7", "o11")} == {(1, 0)}


def test_replayed_merge_writes_no_file(spark, tmp_path):
    lake = DeltaRsLake(spark, tmp_path)
    batch = frame(spark, [("ztf", f"o{i}", 1, i) for i in range(3)])
    lake.merge(SPEC, batch, "app", 0)
    files, version = sorted(Path(lake.path("objects")).rglob("*")), DeltaTable(lake.path("objects")).version()
    assert lake.merge(SPEC, batch, "app", 0).skipped
    assert sorted(Path(lake.path("objects")).rglob("*")) == files
    assert DeltaTable(lake.path("objects")).version() == version


def test_merge_of_repeated_keys_behaves_as_delta_rs(spark, tmp_path):
    """Two rows of a new key are both inserted; two rows of a committed key are refused."""
    lake = DeltaRsLake(spark, tmp_path)
    lake.merge(SPEC, frame(spark, [("ztf", "a", 1, 1), ("ztf", "a", 2, 1)]), "app", 0)
    assert len(pl.read_delta(lake.path("objects"))) == 2
    lake.merge(SPEC, frame(spark, [("ztf", "b", 1, 1)]), "app", 1)
    version = DeltaTable(lake.path("objects")).version()
    with pytest.raises(Exception, match="several batch rows have the key"):
        lake.merge(SPEC, frame(spark, [("ztf", "b", 2, 1), ("ztf", "b", 3, 2)]), "app", 2)
    assert DeltaTable(lake.path("objects")).version() == version


WIDE = pa.schema([
    ("survey", pa.string()), ("objectId", pa.string()), ("ndet", pa.int32()), ("meanra", pa.float64()),
    ("first", pa.timestamp("us", tz="UTC")), ("fids", pa.list_(pa.int64())), ("stamp", pa.binary()),
    ("hpx", pa.int64()),
])
WIDE_SPEC = TableSpec("objects", WIDE, keys=("survey", "objectId"), partition_by=("hpx",))


def wide_rows(rng, ids, pixels) -> pa.Table:
    n = len(ids)
    return pa.table({
        "survey": ["ztf" if i % 3 else "lsst" for i in ids], "objectId": [f"o{i}" for i in ids],
        "ndet": pa.array(rng.integers(1, 100, n), pa.int32()),
        "meanra": [None if x < 0.1 else x * 360 for x in rng.random(n)],
        "first": pa.array(rng.integers(1.7e15, 1.8e15, n), pa.timestamp("us", tz="UTC")),
        "fids": [list(rng.integers(1, 4, k)) for k in rng.integers(0, 5, n)],
        "stamp": [rng.bytes(int(k)) for k in rng.integers(0, 20, n)], "hpx": pa.array(pixels, pa.int64()),
    }, schema=WIDE)


def read_all(path: str) -> dict[str, list]:
    """The table as read by deltalake, polars and duckdb, checked identical, sorted by key."""
    import duckdb

    order = ["survey", "objectId"]
    by_deltalake = DeltaTable(path).to_pyarrow_table().select(WIDE.names).sort_by([(k, "ascending")
                                                                                   for k in order])
    by_polars = pl.read_delta(path).select(WIDE.names).sort(order).to_arrow()
    dataset = DeltaTable(path).to_pyarrow_dataset()  # noqa: F841 - read by duckdb by name
    by_duckdb = duckdb.sql(f"select {', '.join(chr(34) + c + chr(34) for c in WIDE.names)} from dataset "
                           f"order by survey, objectId").to_arrow_table()
    content = by_deltalake.to_pylist()
    assert by_polars.to_pylist() == content and by_duckdb.to_pylist() == content
    return content


def test_merge_matches_delta_rs_merge_on_a_random_batch(spark, tmp_path):
    rng = np.random.default_rng(7)
    lake = DeltaRsLake(spark, tmp_path / "executors")
    first = wide_rows(rng, range(300), rng.integers(-1, 12, 300))
    lake.merge(WIDE_SPEC, spark.createDataFrame(first), "app", 0)
    reference = tmp_path / "reference" / "objects"
    shutil.copytree(lake.path("objects"), reference)

    # Half updates (a tenth of them moving to a neighbouring pixel), half inserts.
    updated = rng.choice(300, 150, replace=False)
    pixels = first["hpx"].to_numpy()[updated] + (rng.random(150) < 0.1)
    batch = pa.concat_tables([wide_rows(rng, updated, pixels),
                              wide_rows(rng, range(300, 450), rng.integers(-1, 12, 150))])
    pixels = batch["hpx"].to_pylist()
    targets = sorted(set(pixels) | {p - 1 for p in pixels})
    result = lake.merge(WIDE_SPEC, spark.createDataFrame(batch), "app", 1, target_partitions={"hpx": targets})
    metrics = (DeltaTable(str(reference))
               .merge(batch, merge_condition(WIDE_SPEC, {"hpx": targets}, quote='"'),
                      source_alias="s", target_alias="t")
               .when_matched_update_all().when_not_matched_insert_all().execute())

    assert (result.extra["rows_updated"], result.extra["rows_inserted"]) == (
        metrics["num_target_rows_updated"], metrics["num_target_rows_inserted"]) == (150, 150)
    merged = read_all(lake.path("objects"))
    assert len(merged) == 450 and merged == read_all(str(reference))
