"""A lake of the previous lenga version: its detections, objects and lc_classifications tables lack the columns this
version added (TableSpec.added_columns); the start-up check adds them, and older rows read them as
null."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lenga.stream.preflight import CORE_TABLES, PreflightError, check_table_schemas
from lenga.tables import DETECTIONS_TABLE, LC_CLASSIFICATIONS_TABLE, OBJECTS_TABLE, TableSpec


def previous_schema(spec: TableSpec) -> pa.Schema:
    """The table as the previous version wrote it."""
    return pa.schema([f for f in spec.schema if f.name not in spec.added_columns])


def previous_table(path, spec: TableSpec, schema: pa.Schema | None = None) -> None:
    schema = schema or previous_schema(spec)
    row = {f.name: pa.nulls(1, f.type) if f.nullable else pa.array(["x"] if pa.types.is_string(f.type) else [0], f.type)
           for f in schema}
    row.update(survey=pa.array(["ztf"]), objectId=pa.array(["ZTF1"]))
    row.update({column: pa.array([7], schema.field(column).type) for column in spec.partition_by})
    write_deltalake(str(path), pa.table(row, schema=schema), partition_by=list(spec.partition_by))


@pytest.mark.parametrize(("table", "some_added"), [
    (DETECTIONS_TABLE, {"magnr", "sigmagnr", "distnr", "corrected", "magpsf_corr", "stellar"}),
    (OBJECTS_TABLE, {"corrected", "stellar", "ndubious_g", "magmean_corr_r"}),
    (LC_CLASSIFICATIONS_TABLE, {"out_of_domain"}),
])
def test_previous_table_gets_the_new_columns_and_old_rows_read_null(tmp_path, table, some_added):
    spec = CORE_TABLES[table]
    assert set(spec.added_columns) >= some_added
    previous_table(tmp_path / table, spec)
    assert check_table_schemas(tmp_path, CORE_TABLES) == {table: list(spec.added_columns)}
    delta = DeltaTable(str(tmp_path / table))
    stored = pa.schema(delta.schema().to_arrow())
    assert stored.names == spec.schema.names  # the added columns are the schema's last
    assert all(stored.field(c).metadata == spec.schema.field(c).metadata for c in spec.added_columns)
    (old,) = delta.to_pyarrow_table().to_pylist()
    assert old["objectId"] == "ZTF1" and all(old[name] is None for name in spec.added_columns)
    assert check_table_schemas(tmp_path, CORE_TABLES) == {}  # done once


def test_a_table_lacking_other_columns_too_is_still_refused(tmp_path):
    spec = CORE_TABLES[DETECTIONS_TABLE]
    previous_table(tmp_path / DETECTIONS_TABLE, spec, pa.schema([f for f in previous_schema(spec) if f.name != "mjd"]))
    with pytest.raises(PreflightError, match=r"lacks column\(s\) mjd, magnr, .*incompatible lenga version"):
        check_table_schemas(tmp_path, CORE_TABLES)
    assert "magnr" not in DeltaTable(str(tmp_path / DETECTIONS_TABLE)).schema().to_arrow().names


def test_added_columns_must_be_nullable():
    schema = pa.schema([pa.field("candid", pa.int64(), nullable=False)])
    with pytest.raises(ValueError, match="must be nullable"):
        TableSpec("things", schema, added_columns=("candid",))
