"""``format("lenga_points")``: the aggregation's input, light-curve points packed per object as they
are read (lenga.curves.packing explains why).

A :class:`lenga.io.delta_source.DeltaDataSource` over several tables (options ``paths``,
``tableColumn``, ``maxVersionsPerTrigger``, ``tasks`` as there) that reads option ``columns``
(comma-separated; each table gives those it has) and yields :data:`lenga.curves.packing.PACKED_SCHEMA`
rows: each task packs the rows it read, so the points never enter the JVM one by one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from lenga.io.delta_source import (
    DeltaDataSource,
    DeltaFiles,
    DeltaStreamReader,
    read_files,
    table_arrow_schema,
    table_name,
    table_paths,
    union_schema,
)


class PackedPointsReader(DeltaStreamReader):
    """A :class:`DeltaStreamReader` of the read columns whose tasks yield packed rows."""

    def read(self, partition: DeltaFiles) -> Iterator[pa.RecordBatch]:
        # Imported here: pandas and the packer stay off the planner processes, which only plan files.
        from lenga.curves.packing import pack_batches

        return pack_batches(read_files(partition), self._table_column)


class PackedPointsSource(DeltaDataSource):
    """``spark.readStream.format("lenga_points").option("paths", ...).option("tableColumn", "table")
    .option("columns", "survey,objectId,...")``: the tables must exist (their schemas give the
    read columns' types)."""

    @classmethod
    def name(cls) -> str:
        return "lenga_points"

    def schema(self):
        from pyspark.sql.pandas.types import from_arrow_schema

        from lenga.curves.packing import PACKED_SCHEMA  # see read()

        return from_arrow_schema(PACKED_SCHEMA)

    def _read_schema(self) -> pa.Schema:
        options = {k.lower(): v for k, v in self.options.items()}
        table_column = options.get("tablecolumn")
        if not table_column or not options.get("columns"):
            raise ValueError("lenga_points: options 'tableColumn' and 'columns' are required")
        wanted = [c.strip() for c in options["columns"].split(",") if c.strip()]
        tables = {table_name(p): table_arrow_schema(p) for p in table_paths(options)}
        union = union_schema({name: pa.schema([f for f in schema if f.name in wanted]) for name, schema in tables.items()})
        missing = sorted(set(wanted) - set(union.names))
        if missing:
            raise ValueError(f"lenga_points: no table has column(s) {missing}")
        return union.append(pa.field(table_column, pa.string()))

    def streamReader(self, schema) -> PackedPointsReader:
        return PackedPointsReader(dict(self.options), self._read_schema())
