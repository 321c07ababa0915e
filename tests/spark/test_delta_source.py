"""The ``lenga_delta`` streaming source over real delta-rs tables: every appended row exactly once."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lenga.io.delta_source import AddedFile, DeltaDataSource, added_files, balanced_tasks

SCHEMA = pa.schema([("candid", pa.int64()), ("mag", pa.float64()), ("night", pa.int32())])


def append(path, first: int, n: int, nights=(20250101, 20250102)) -> None:
    candid = list(range(first, first + n))
    table = pa.table({"candid": candid, "mag": [c / 10 for c in candid],
                      "night": [nights[c % len(nights)] for c in candid]}, schema=SCHEMA)
    write_deltalake(str(path), table, mode="append", partition_by=["night"])


def drain(spark, path, checkpoint, **options) -> tuple[list[tuple], int]:
    """Run an availableNow query from ``checkpoint``; the rows it saw and its batch count."""
    spark.dataSource.register(DeltaDataSource)
    seen: list[tuple] = []
    batches: list[int] = []

    def collect(df, batch_id):
        batches.append(batch_id)
        seen.extend((r.candid, r.mag, r.night) for r in df.collect())

    reader = spark.readStream.format("lenga_delta").option("path", str(path))
    for key, value in options.items():
        reader = reader.option(key, value)
    query = (reader.load().writeStream.foreachBatch(collect).option("checkpointLocation", str(checkpoint))
             .trigger(availableNow=True).start())
    query.awaitTermination()
    return seen, len(batches)


def expected(first: int, n: int) -> list[tuple]:
    return [(c, c / 10, (20250101, 20250102)[c % 2]) for c in range(first, first + n)]


def test_every_appended_row_once_across_restarts(spark, tmp_path):
    table = tmp_path / "detections"
    append(table, 0, 10)
    append(table, 10, 5)
    first, _ = drain(spark, table, tmp_path / "ck")
    assert sorted(first) == expected(0, 15)

    again, _ = drain(spark, table, tmp_path / "ck")  # nothing new: nothing read
    assert again == []

    append(table, 15, 7)
    append(table, 22, 3, nights=(20250103,))
    DeltaTable(str(table)).optimize.compact()  # a rewrite without data change is not re-read
    later, _ = drain(spark, table, tmp_path / "ck")
    assert sorted(later) == sorted(expected(15, 7) + [(c, c / 10, 20250103) for c in range(22, 25)])


def test_max_versions_per_trigger_splits_batches(spark, tmp_path):
    table = tmp_path / "t"
    for i in range(5):
        append(table, 10 * i, 10)
    rows, batches = drain(spark, table, tmp_path / "ck", maxVersionsPerTrigger=2)
    assert sorted(rows) == expected(0, 50)
    assert batches == 3  # versions 0-1, 2-3, 4


def test_a_removal_fails_loudly(tmp_path):
    table = tmp_path / "t"
    append(table, 0, 4)
    DeltaTable(str(table)).delete("candid = 1")
    assert len(added_files(str(table), -1, 0)) == 2
    with pytest.raises(ValueError, match="version 1 .* removes data"):
        added_files(str(table), 0, 1)


def test_a_narrow_schema_reads_only_its_columns(spark, tmp_path):
    table = tmp_path / "t"
    append(table, 0, 6)
    spark.dataSource.register(DeltaDataSource)
    seen = []
    query = (spark.readStream.format("lenga_delta").schema("candid long").option("path", str(table)).load()
             .writeStream.foreachBatch(lambda df, _: seen.extend(r.candid for r in df.collect()))
             .option("checkpointLocation", str(tmp_path / "ck")).trigger(availableNow=True).start())
    query.awaitTermination()
    assert sorted(seen) == list(range(6))


def test_several_tables_in_one_source(spark, tmp_path):
    """One source over two tables: the union of their columns (null where a table lacks one), each
    row tagged with its table, every row once across restarts; each table keeps its own version."""
    first, second = tmp_path / "first", tmp_path / "second"
    append(first, 0, 4)
    write_deltalake(str(second), pa.table({"candid": [100, 101], "kind": ["upper_limit", "forced"],
                                           "night": [20250101, 20250101]}).cast(
        pa.schema([("candid", pa.int64()), ("kind", pa.string()), ("night", pa.int32())])), partition_by=["night"])
    spark.dataSource.register(DeltaDataSource)

    def drain_both():
        seen = []
        query = (spark.readStream.format("lenga_delta").option("paths", f"{first},{second}")
                 .option("tableColumn", "table").load()
                 .writeStream.foreachBatch(lambda df, _: seen.extend(
                     (r.table, r.candid, r.mag, r.kind, r.night) for r in df.collect()))
                 .option("checkpointLocation", str(tmp_path / "ck")).trigger(availableNow=True).start())
        query.awaitTermination()
        return sorted(seen)

    assert drain_both() == sorted([("first", c, m, None, n) for c, m, n in expected(0, 4)]
                                  + [("second", 100, None, "upper_limit", 20250101),
                                     ("second", 101, None, "forced", 20250101)])
    append(first, 4, 2)
    assert drain_both() == [("first", c, m, None, n) for c, m, n in expected(4, 2)]
    assert drain_both() == []


def test_a_column_of_two_types_is_refused(spark, tmp_path):
    append(tmp_path / "first", 0, 2)
    write_deltalake(str(tmp_path / "second"), pa.table({"candid": ["a"], "night": pa.array([20250101], pa.int32())}))
    spark.dataSource.register(DeltaDataSource)
    with pytest.raises(Exception, match="candid.*int64 in first but string in second"):
        spark.readStream.format("lenga_delta").option("paths", f"{tmp_path / 'first'},{tmp_path / 'second'}").load()


def test_tasks_get_about_as_many_rows():
    files = [AddedFile("t", f"f{i}", (), 0, rows) for i, rows in enumerate([300, 10, 120, 90, 80, 20])]
    groups = balanced_tasks(files, 2)
    assert sorted(sum(f.rows for f in g) for g in groups) == [310, 310]
    assert sorted(f.path for g in groups for f in g) == sorted(f.path for f in files)
    assert len(balanced_tasks(files[:1], 4)) == 1


def test_an_offset_of_the_one_table_format_still_resumes(tmp_path):
    """A checkpoint written when the source read one table (``{"version": N}``) resumes at N."""
    from lenga.io.delta_source import DeltaStreamReader

    append(tmp_path / "t", 0, 3)
    reader = DeltaStreamReader({"path": str(tmp_path / "t")}, SCHEMA)
    assert reader.latestOffset({"version": 0}, None) == {"versions": {"t": 0}}
    append(tmp_path / "t", 3, 2)
    assert reader.latestOffset({"version": 0}, None) == {"versions": {"t": 1}}
    assert [f.version for f in reader.partitions({"version": 0}, {"versions": {"t": 1}})[0].files] == [1]
