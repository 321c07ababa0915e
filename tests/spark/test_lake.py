"""The Delta storage interface (delta-rs backend here: the delta-spark jar is not on this machine)."""

from __future__ import annotations

import datetime as dt
import json
import os

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from lenga.io.lake import DeltaRsLake, open_lake, remove_staging, spark_schema, staging_dir
from lenga.io.lake.files import FileStats, PartitionedFileWriter, first_per_key
from lenga.stream.preflight import CORE_TABLES, check_table_schemas
from lenga.tables import DETECTIONS_TABLE, TABLE_SPECS, TableSpec

SCHEMA = pa.schema([
    ("survey", pa.string()), ("candid", pa.int64()), ("mjd", pa.float64()),
    ("seen", pa.timestamp("us", tz="UTC")), ("night", pa.int32()), ("blob", pa.binary()),
])
SPEC = TableSpec("things", SCHEMA, keys=("survey", "candid"))
WHEN = dt.datetime(2025, 3, 2, 10, tzinfo=dt.UTC)


def rows(candids):
    """Rows whose night is a function of candid, as a detection's night is of its time."""
    return [("ztf", c, 60000.0 + c, WHEN, 20250301 + c % 3, b"\x00\x01") for c in candids]


@pytest.fixture
def lake(spark, tmp_path):
    lake = open_lake(spark, tmp_path / "lake")
    assert isinstance(lake, DeltaRsLake)  # no delta-spark jar here: the auto backend is delta-rs
    return lake


def test_append_is_one_transaction_and_replays_are_skipped(spark, lake):
    df = spark.createDataFrame(rows(range(100)), spark_schema(SPEC))
    first = lake.append_new(SPEC, df, "app-1", 0)
    assert (first.rows, first.skipped) == (100, False)
    table = DeltaTable(lake.path("things"))
    assert table.version() == 0 and table.transaction_version("app-1") == 0
    assert lake.append_new(SPEC, df, "app-1", 0).skipped  # replay of batch 0
    assert DeltaTable(lake.path("things")).version() == 0
    # Another query (another app id) may write the same batch number.
    assert lake.append(SPEC, spark.createDataFrame(rows(range(200, 210)), spark_schema(SPEC)), "app-2", 0).rows == 10


def test_append_new_removes_duplicates_within_and_across_batches(spark, lake):
    lake.append_new(SPEC, spark.createDataFrame(rows(range(50)), spark_schema(SPEC)), "app", 0)
    again = spark.createDataFrame(rows(list(range(40, 60)) * 2), spark_schema(SPEC))
    assert lake.append_new(SPEC, again, "app", 1).rows == 10
    assert lake.count("things") == 60
    assert sorted(r.candid for r in lake.read(SPEC).select("candid").collect()) == list(range(60))
    assert lake.read(SPEC, nights=[20250301]).count() == 20


def test_tables_read_back_with_deltalake_polars_and_duckdb(spark, lake):
    lake.append_new(SPEC, spark.createDataFrame(rows(range(30)), spark_schema(SPEC)), "app", 0)
    path = lake.path("things")
    assert DeltaTable(path).to_pyarrow_table().num_rows == 30
    frame = pl.read_delta(path)
    assert frame.height == 30 and frame["candid"].sort().to_list() == list(range(30))
    dataset = DeltaTable(path).to_pyarrow_dataset()  # noqa: F841 - read by duckdb by name
    assert duckdb.sql("select count(distinct candid), min(night), max(night) from dataset").fetchall() == [
        (30, 20250301, 20250303)]
    assert DeltaTable(path).metadata().partition_columns == ["night"]


def test_file_statistics_allow_skipping(tmp_path):
    """Statistics come from the Parquet footer; a column with a value no exact bound covers (a
    long string, in any row group) gets no bounds rather than wrong ones."""
    table = pa.table({"objectId": ["ZTF25b", "ZTF25a"], "mjd": [2.0, 1.0], "note": ["a", "b"],
                      "seen": pa.array([WHEN, None], pa.timestamp("us", tz="UTC"))})
    with pq.ParquetWriter(tmp_path / "f.parquet", table.schema) as writer:
        writer.write_table(table)
        writer.write_table(table.slice(1).set_column(2, "note", pa.array(["x" * 65])))
    stats = FileStats()
    stats.update(pq.read_metadata(tmp_path / "f.parquet"), table.schema)
    encoded = json.loads(stats.to_json())
    assert encoded["numRecords"] == 3
    assert encoded["minValues"] == {"objectId": "ZTF25a", "mjd": 1.0, "seen": "2025-03-02T10:00:00.000Z"}
    assert encoded["maxValues"] == {"objectId": "ZTF25b", "mjd": 2.0, "seen": "2025-03-02T10:00:00.000Z"}
    assert encoded["nullCount"] == {"objectId": 0, "mjd": 0, "note": 0, "seen": 2}


def test_first_per_key_keeps_the_first_row_of_each_key():
    table = pa.table({"survey": ["ztf", "ztf", "lsst", "ztf", "lsst"], "candid": [3, 1, 3, 3, 3],
                      "alert_candid": [10, 11, 12, 13, 14]})
    kept = first_per_key(table, ["survey", "candid"])
    assert kept.to_pydict() == {"survey": ["ztf", "ztf", "lsst"], "candid": [3, 1, 3], "alert_candid": [10, 11, 12]}


def test_append_new_accepts_spark_columns_that_differ_in_nullability(spark, lake):
    """A literal column is non-nullable in Spark's Arrow batches; the table's schema says nullable."""
    from pyspark.sql import functions as F

    df = spark.createDataFrame(rows(range(5)), spark_schema(SPEC)).withColumn("survey", F.lit("ztf"))
    assert lake.append_new(SPEC, df, "app", 0).rows == 5


def stage(lake, staging, candid_groups):
    """Stage each group of rows as one executor task would (PartitionedFileWriter under staging);
    returns the add-action rows of every staged file."""
    files = []
    for candids in candid_groups:
        writer = PartitionedFileWriter(staging, SCHEMA, ["night"])
        writer.write(pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows(candids)],
                                          schema=SCHEMA))
        files.extend(writer.close().to_pylist())
    return files


def test_append_staged_removes_duplicates_across_tasks_and_the_lake(spark, lake, tmp_path):
    lake.append_new(SPEC, spark.createDataFrame(rows(range(50)), spark_schema(SPEC)), "app", 0)
    staging = staging_dir(str(tmp_path / "staging"), "app", 1)
    files = {SPEC.name: stage(lake, os.path.join(staging, SPEC.name), [range(40, 55), range(50, 60)])}  # share 50..54
    result = lake.append_staged([SPEC], staging, files, "app", 1)[SPEC.name]
    assert result.rows == 10 and result.files == 3  # one new file per night
    assert sorted(r.candid for r in lake.read(SPEC).select("candid").collect()) == list(range(60))
    assert lake.read(SPEC).where("candid = 57").first().night == 20250301 + 57 % 3
    assert lake.append_staged([SPEC], staging, files, "app", 1)[SPEC.name].skipped  # a replay writes nothing
    remove_staging(staging)
    assert not (tmp_path / "staging" / "app" / "1").exists() and lake.count("things") == 60


def test_previous_versions_detections_keep_working_after_the_new_columns_are_added(spark, lake):
    """A detections table written without this version's added columns: the start-up check adds
    them, the keyed append writes new rows with them, and the older rows read null."""
    spec = TABLE_SPECS[DETECTIONS_TABLE]
    previous = pa.schema([f for f in spec.schema if f.name not in spec.added_columns])

    def detection(candid, **values):
        return {**dict.fromkeys(spec.schema.names), "survey": "ztf", "objectId": "ZTF1", "candid": candid,
                "mjd": 60736.2, "band": "g", "night": 20250301, **values}

    old = pa.Table.from_pylist([{k: v for k, v in detection(1).items() if k in previous.names}], schema=previous)
    DeltaTable.create(lake.path(DETECTIONS_TABLE), previous, partition_by=["night"])
    write_deltalake(lake.path(DETECTIONS_TABLE), old, mode="append")
    assert check_table_schemas(lake.root, CORE_TABLES) == {DETECTIONS_TABLE: list(spec.added_columns)}
    new = [detection(1, magnr=15.0), detection(2, magnr=15.0, corrected=True, magpsf_corr=14.5)]
    result = lake.append_new(spec, spark.createDataFrame(new, spark_schema(spec)), "app", 0)
    assert result.rows == 1  # candid 1 is already stored: the old row stays
    stored = {r.candid: r for r in lake.read(spec).collect()}
    assert (stored[1].magnr, stored[1].corrected, stored[1].magpsf_corr) == (None, None, None)
    assert (stored[2].magnr, stored[2].corrected, stored[2].magpsf_corr) == (15.0, True, 14.5)
