"""A lake of the previous lenga version: its detections table lacks the columns this version added
(TableSpec.added_columns); the start-up check adds them, and older rows read them as null."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lenga.stream.preflight import CORE_TABLES, PreflightError, check_table_schemas
from lenga.tables import DETECTIONS_TABLE, TABLE_SPECS, TableSpec

SPEC = TABLE_SPECS[DETECTIONS_TABLE]
#: The detections table as the previous version wrote it.
PREVIOUS_SCHEMA = pa.schema([f for f in SPEC.schema if f.name not in SPEC.added_columns])


def previous_detections(path, schema: pa.Schema = PREVIOUS_SCHEMA) -> None:
    row = {f.name: pa.nulls(1, f.type) for f in schema}
    row.update(survey=pa.array(["ztf"]), objectId=pa.array(["ZTF1"]), candid=pa.array([1], pa.int64()),
               night=pa.array([20250301], pa.int32()))
    write_deltalake(str(path), pa.table(row, schema=schema), partition_by=["night"])


def test_previous_detections_table_gets_the_new_columns_and_old_rows_read_null(tmp_path):
    assert set(SPEC.added_columns) >= {"magnr", "sigmagnr", "distnr", "corrected", "magpsf_corr"}
    previous_detections(tmp_path / DETECTIONS_TABLE)
    assert check_table_schemas(tmp_path, CORE_TABLES) == {DETECTIONS_TABLE: list(SPEC.added_columns)}
    table = DeltaTable(str(tmp_path / DETECTIONS_TABLE))
    stored = pa.schema(table.schema().to_arrow())
    assert stored.names == SPEC.schema.names
    assert stored.field("magpsf_corr").metadata == SPEC.schema.field("magpsf_corr").metadata
    (old,) = table.to_pyarrow_table().to_pylist()
    assert old["candid"] == 1 and all(old[name] is None for name in SPEC.added_columns)
    assert check_table_schemas(tmp_path, CORE_TABLES) == {}  # done once


def test_a_table_lacking_other_columns_too_is_still_refused(tmp_path):
    previous_detections(tmp_path / DETECTIONS_TABLE, pa.schema([f for f in PREVIOUS_SCHEMA if f.name != "mjd"]))
    with pytest.raises(PreflightError, match=r"lacks column\(s\) mjd, magnr, .*incompatible lenga version"):
        check_table_schemas(tmp_path, CORE_TABLES)
    assert "magnr" not in DeltaTable(str(tmp_path / DETECTIONS_TABLE)).schema().to_arrow().names


def test_added_columns_must_be_nullable():
    schema = pa.schema([pa.field("candid", pa.int64(), nullable=False)])
    with pytest.raises(ValueError, match="must be nullable"):
        TableSpec("things", schema, added_columns=("candid",))
