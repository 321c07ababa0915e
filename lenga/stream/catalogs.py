"""Prepared catalogs in the lake: ingested once, read back by the stream's cross-match step.

``ingest_catalog`` reads a catalog export (``read_catalog``), validates and indexes it
(``prepare_catalog``) and writes it to ``<lake>/catalogs/<name>``: one unpartitioned Delta table,
rows sorted by ``hpx`` so that each Parquet file and row group covers one contiguous run of pixels
(min/max statistics on ``hpx`` then let a reader skip the files an object block cannot touch).

Two constant columns record how the table was prepared, readable by any Delta reader and carried
by every copy of the table: ``catalog_version`` (the spec's version, which match rows carry) and
``hpx_order`` (the HEALPix order of ``hpx``; matching at another order would silently miss pairs).
Re-ingesting the same version at the same order, with the configured columns present, is a no-op
that does not even read the export.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame

from lenga.io.lake import Lake
from lenga.sim.catalog import DEFAULT_FIELD_SOURCES, DEMO_CATALOG, write_demo_catalog
from lenga.sim.night import SimConfig
from lenga.tables import TableSpec, WriteResult
from lenga.xmatch.catalog import (
    DEFAULT_CATALOGS_FILE,
    HPX_ORDER_COLUMN,
    CatalogSpec,
    PrepareReport,
    load_catalog_specs,
    prepare_catalog,
    read_catalog,
)

# Lake directory holding one Delta table per catalog.
CATALOG_DIR = "catalogs"
VERSION_COLUMN = "catalog_version"
ORDER_COLUMN = HPX_ORDER_COLUMN
# Application id of the ingest commits (the batch id is the Delta version the commit creates).
INGEST_APP_ID = "lenga-ingest-catalog"


def catalog_table(name: str) -> str:
    """Lake table name of a catalog: ``catalogs/<name>``."""
    return f"{CATALOG_DIR}/{name}"


@dataclass(frozen=True)
class StoredCatalog:
    """A catalog as found in the lake: its spec (with the version stored there), table and size."""

    spec: CatalogSpec
    table: TableSpec
    order: int
    rows: int

    def read(self, lake: Lake) -> DataFrame:
        """The prepared catalog as a Spark DataFrame (files in any order: sort by hpx if needed)."""
        return lake.read(self.table)

    def problems(self, spec: CatalogSpec) -> list[str]:
        """Why this stored table cannot be matched with ``spec`` as configured (empty if it can)."""
        found = []
        if self.order != spec.order:
            found.append(f"indexed at HEALPix order {self.order}, radius {spec.radius_arcsec} arcsec needs {spec.order}")
        missing = [c for c in spec.source_columns if c not in self.table.schema.names]
        if missing:
            found.append(f"lacks the configured columns {missing}")
        return found


@dataclass(frozen=True)
class IngestResult:
    """What ``ingest_catalog`` did: written (with the preparation report) or skipped."""

    catalog: str
    version: str
    table_path: str
    skipped: bool
    report: PrepareReport | None = None
    write: WriteResult | None = None


def stored_catalog(lake: Lake, spec: CatalogSpec) -> StoredCatalog | None:
    """The lake's table of the catalog named by ``spec`` (None if it was never ingested)."""
    from deltalake import DeltaTable

    name = catalog_table(spec.name)
    if not lake.exists(name):
        return None
    schema = pa.schema(DeltaTable(lake.path(name)).schema().to_arrow())
    missing = [c for c in (VERSION_COLUMN, ORDER_COLUMN) if c not in schema.names]
    if missing:
        raise ValueError(f"{lake.path(name)} is not a lenga catalog table: no {missing} column")
    table = TableSpec(name, schema, partition_by=())
    first = lake.read(table).select(VERSION_COLUMN, ORDER_COLUMN).limit(1).collect()
    if not first:
        return None  # an ingest never writes an empty catalog: treat as not ingested
    version, order = first[0]
    return StoredCatalog(dataclasses.replace(spec, version=version), table, int(order), lake.count(name))


def ingest_catalog(lake: Lake, spec: CatalogSpec) -> IngestResult:
    """Read, validate, index and write a catalog to ``<lake>/catalogs/<name>``.

    A no-op when the lake already holds ``spec.version`` prepared the way ``spec`` needs (same
    HEALPix order, configured columns present). Errors from ``read_catalog``/``prepare_catalog``
    (missing columns, RA/Dec out of range, unknown format) propagate; a catalog left without any
    placeable row is refused.
    """
    from deltalake import DeltaTable

    name = catalog_table(spec.name)
    stored = stored_catalog(lake, spec)
    if stored is not None and stored.spec.version == spec.version and not stored.problems(spec):
        return IngestResult(spec.name, spec.version, lake.path(name), skipped=True)
    prepared, report = prepare_catalog(read_catalog(spec), spec)
    if prepared.num_rows == 0:
        raise ValueError(f"catalog {spec.name!r}: no row with finite coordinates in {spec.path} ({report})")
    prepared = prepared.append_column(VERSION_COLUMN, pa.repeat(pa.scalar(spec.version, pa.string()),
                                                                prepared.num_rows))
    prepared = prepared.append_column(ORDER_COLUMN, pa.repeat(pa.scalar(spec.order, pa.int8()), prepared.num_rows))
    next_version = DeltaTable(lake.path(name)).version() + 1 if lake.exists(name) else 0
    write = lake.overwrite_arrow(TableSpec(name, prepared.schema, partition_by=()), prepared, INGEST_APP_ID,
                                 next_version)
    return IngestResult(spec.name, spec.version, lake.path(name), skipped=write.skipped, report=report, write=write)


def ingest_demo_catalog(lake: Lake, config: SimConfig, catalogs_file: str | Path | None = None,
                        n_field: int = DEFAULT_FIELD_SOURCES) -> IngestResult:
    """Write the demo catalog where the ``demo`` declaration of the catalogs file says (``{lake}``
    is ``lake``'s root) and ingest it with the digest version: the demo's matches out of the box."""
    path = catalogs_file or DEFAULT_CATALOGS_FILE
    specs, _ = load_catalog_specs(path)
    declared = [s for s in specs if s.name == DEMO_CATALOG]
    if not declared:
        raise ValueError(f"{path} declares no {DEMO_CATALOG!r} catalog")
    spec = declared[0].in_lake(lake.root)
    return ingest_catalog(lake, dataclasses.replace(spec, version=write_demo_catalog(config, spec.path, n_field)))
