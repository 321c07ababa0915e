"""Every lake table's name, and the specs of the tables the ingest writes (the table vocabulary).

A :class:`TableSpec` says what a backend of :mod:`lenga.io.lake` needs to write a table: its Arrow
schema (columns documented in field metadata, :mod:`lenga.schema`), the columns that identify a row
(appends and MERGEs de-duplicate on them) and the partition columns. The four tables the ingest
writes are specified here; the tables computed by science modules (``objects``, ``features``, the
classifications, the cross-matches) take their name from here and their schema from the module that
computes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from lenga import schema
from lenga.schema import PARTITION_COLUMN

ALERTS_TABLE = "alerts"
DETECTIONS_TABLE = "detections"
NON_DETECTIONS_TABLE = "non_detections"
QUARANTINE_TABLE = "quarantine"
OBJECTS_TABLE = "objects"
FEATURES_TABLE = "features"
LC_CLASSIFICATIONS_TABLE = "lc_classifications"
STAMP_CLASSIFICATIONS_TABLE = "stamp_classifications"
XMATCH_TABLE = "xmatch"
XMATCH_OBJECTS_TABLE = "xmatch_objects"


@dataclass(frozen=True)
class TableSpec:
    """A lake table: its Arrow schema, the columns identifying a row, and its partitioning."""

    name: str
    schema: pa.Schema
    keys: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = (PARTITION_COLUMN,)
    # Columns unique to each input row (e.g. Kafka topic/partition/offset). When given, duplicates
    # are found on the narrow key columns and the wide rows (cutouts) are never shuffled.
    row_id: tuple[str, ...] = ()
    # Nullable columns this version added to a table that earlier versions wrote without them:
    # an existing table lacking only these is given them (older rows read null), not refused.
    added_columns: tuple[str, ...] = ()

    def __post_init__(self):
        not_nullable = [name for name in self.added_columns
                        if name not in self.schema.names or not self.schema.field(name).nullable]
        if not_nullable:
            raise ValueError(f"table {self.name}: added column(s) {not_nullable} must be nullable columns of its "
                             "schema (older rows have no value)")


@dataclass
class WriteResult:
    """What one append did: rows and files committed, or skipped because already committed."""

    table: str
    rows: int = 0
    files: int = 0
    skipped: bool = False
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


# Each alert and each quarantined message is one Kafka record: its coordinates identify the row.
KAFKA_ROW_ID = ("topic", "partition", "offset")
TABLE_SPECS = {
    name: TableSpec(name, table, tuple(schema.TABLE_KEYS[name]),
                    row_id=KAFKA_ROW_ID if name in ("alerts", "quarantine") else (),
                    added_columns=schema.ADDED_COLUMNS.get(name, ()))
    for name, table in schema.TABLES.items()
}
