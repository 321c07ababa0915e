"""Spark-facing cross-match of new objects against a prepared catalog (lenga.xmatch underneath).

Two strategies give the same rows (survey, objectId, catalog, catalog_version, source_id,
sep_arcsec, kept columns):

* ``broadcast``: a small catalog (at most ``broadcast_max_rows`` rows, conf/catalogs.yaml) is
  collected once as an Arrow table and broadcast (``broadcast_catalog``; a stream does it once, not
  per micro-batch), and every batch of objects is matched inside a ``mapInArrow`` by the pure
  ``lenga.xmatch.match.crossmatch``: no shuffle at all.
* ``partitioned``: a catalog too large for every executor's memory stays distributed.  Objects are
  exploded to the 9 pixels of their HEALPix block (``block_pixels``), equi-joined with the catalog on
  its ``hpx`` column, the exact separation is computed by a pandas UDF around the same astropy
  formula, and ``nearest`` keeps the first row of a window per object ordered by (sep, source_id).
  The exploded objects are the broadcast side of that join (the new objects of a micro-batch are
  few), so the catalog is scanned where it lies and never shuffled.

``batch_objects`` turns a micro-batch of alerts into the objects to match: one position per object
and the alert-context flags (``lenga.xmatch.objects``).

``crossmatch_batch_writer`` is the stream's one-job form (delta-rs lake): one ``mapInArrow`` over
the batch's alerts shuffled by object turns them into objects, drops those already matched, matches
the rest against broadcast Arrow tables and writes the ``xmatch`` and ``xmatch_objects`` files, for
the driver to commit.  Each Spark job costs fixed scheduling and Python-worker time that exceeds the
matching itself (10^4 objects take milliseconds), so a micro-batch is one job rather than one per
step.  A partitioned catalog takes part through ``catalog_slice``: the rows in the HEALPix blocks of
the batch's objects, selected by a semi-join with the blocks' pixels as its broadcast side (the
catalog is scanned where it lies, never shuffled) and broadcast for that batch only.  They are the
same candidates ``crossmatch`` finds in the whole catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark import Broadcast
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import LongType, StructField, StructType

from lenga.healpix import block_pixels
from lenga.io.lake.files import PartitionedFileWriter, with_table
from lenga.xmatch.catalog import HPX_COLUMN, CatalogSpec, float_column
from lenga.xmatch.match import OBJECT_COLUMNS, crossmatch, output_schema, separation_arcsec
from lenga.xmatch.objects import ALERT_COLUMNS, OBJECT_KEYS, OBJECTS_SCHEMA, alert_objects
from lenga.xmatch.tables import (
    MATCH_SCHEMA,
    REGISTRY_KEYS,
    XMATCH,
    XMATCH_OBJECTS,
    crossmatch_batch,
    match_rows,
)

# Internal names of the two positions of a candidate pair in the partitioned join (the catalog's own
# coordinate columns may also be kept columns, and may be called ra/dec like the objects').
_OBJ_RA, _OBJ_DEC, _CAT_RA, _CAT_DEC = "_obj_ra", "_obj_dec", "_cat_ra", "_cat_dec"


def choose_strategy(catalog_rows: int, broadcast_max_rows: int) -> str:
    """``broadcast`` for catalogs of at most ``broadcast_max_rows`` rows, else ``partitioned``."""
    return "broadcast" if catalog_rows <= broadcast_max_rows else "partitioned"


def crossmatch_objects(
    objects: DataFrame,
    catalog: DataFrame | Broadcast,
    spec: CatalogSpec,
    broadcast_max_rows: int,
    catalog_rows: int | None = None,
) -> DataFrame:
    """Cross-match new objects with a prepared catalog: a DataFrame with ``hpx`` (e.g. its Delta
    table), or the result of ``broadcast_catalog`` for a small catalog shared across calls.

    ``catalog_rows`` saves a count when the caller knows it (from the Delta log).
    """
    if isinstance(catalog, Broadcast):
        rows = catalog.value.num_rows if catalog_rows is None else catalog_rows
    else:
        rows = catalog.count() if catalog_rows is None else catalog_rows
    if choose_strategy(rows, broadcast_max_rows) == "broadcast":
        return broadcast_crossmatch(objects, catalog, spec)
    if isinstance(catalog, Broadcast):
        raise ValueError(f"catalog {spec.name!r}: {rows} rows exceed broadcast_max_rows={broadcast_max_rows}; "
                         "pass its DataFrame for the partitioned join, not a broadcast table")
    return partitioned_crossmatch(objects, catalog, spec)


def broadcast_catalog(spark: SparkSession, catalog: DataFrame | pa.Table, spec: CatalogSpec) -> Broadcast:
    """Collect a prepared catalog once, sorted by ``hpx`` (a Delta table's files come back in any
    order), and broadcast it to the executors."""
    table = catalog if isinstance(catalog, pa.Table) else catalog.toArrow()
    if HPX_COLUMN not in table.column_names:
        raise ValueError(f"catalog {spec.name!r} has no {HPX_COLUMN!r} column: write it with prepare_catalog")
    return spark.sparkContext.broadcast(table.sort_by(HPX_COLUMN))


def _check_objects(objects: DataFrame) -> None:
    missing = [c for c in OBJECT_COLUMNS if c not in objects.columns]
    if missing:
        raise ValueError(f"objects DataFrame lacks columns {missing}; has {objects.columns}")


def broadcast_crossmatch(objects: DataFrame, catalog: DataFrame | Broadcast, spec: CatalogSpec) -> DataFrame:
    """Match inside ``mapInArrow`` against the whole catalog broadcast as one hpx-sorted Arrow table.

    ``catalog`` is either already broadcast (``broadcast_catalog``) or a DataFrame collected now.
    """
    _check_objects(objects)
    shared = catalog if isinstance(catalog, Broadcast) else broadcast_catalog(objects.sparkSession, catalog, spec)
    objects = objects.select(*OBJECT_COLUMNS)
    schema = output_schema(to_arrow_schema(objects.schema), shared.value.schema, spec)

    def match(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        prepared = shared.value
        for batch in batches:
            yield from crossmatch(pa.Table.from_batches([batch]), prepared, spec).to_batches()

    return objects.mapInArrow(match, from_arrow_schema(schema))


def partitioned_crossmatch(objects: DataFrame, catalog: DataFrame, spec: CatalogSpec) -> DataFrame:
    """Equi-join objects exploded to their HEALPix block (broadcast) with the catalog on ``hpx``."""
    _check_objects(objects)
    if HPX_COLUMN not in catalog.columns:
        raise ValueError(f"catalog {spec.name!r} has no {HPX_COLUMN!r} column: write it with prepare_catalog")
    order = spec.order
    objects = objects.select("survey", "objectId", F.col("ra").alias(_OBJ_RA), F.col("dec").alias(_OBJ_DEC))
    # A new StructType: .add() would modify the DataFrame's cached schema in place.
    exploded_schema = StructType([*objects.schema.fields, StructField(HPX_COLUMN, LongType(), nullable=False)])

    def explode(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            table = pa.Table.from_batches([batch])
            rows, pixels = block_pixels(
                float_column(table, _OBJ_RA, "objects"), float_column(table, _OBJ_DEC, "objects"), order
            )
            yield from table.take(rows).append_column(HPX_COLUMN, pa.array(pixels, pa.int64())).to_batches()

    @F.pandas_udf("double")
    def separation(ra1: pd.Series, dec1: pd.Series, ra2: pd.Series, dec2: pd.Series) -> pd.Series:
        return pd.Series(separation_arcsec(ra1.to_numpy(), dec1.to_numpy(), ra2.to_numpy(), dec2.to_numpy()))

    candidates = catalog.select(
        HPX_COLUMN,
        F.col(spec.ra_column).alias(_CAT_RA),
        F.col(spec.dec_column).alias(_CAT_DEC),
        F.col(spec.id_column).alias("source_id"),
        *spec.columns,
    )
    pairs = (
        F.broadcast(objects.mapInArrow(explode, exploded_schema))
        .join(candidates, on=HPX_COLUMN)
        .withColumn("sep_arcsec", separation(_OBJ_RA, _OBJ_DEC, _CAT_RA, _CAT_DEC))
        .where(F.col("sep_arcsec") <= float(spec.radius_arcsec))
    )
    if spec.mode == "nearest":
        closest_first = Window.partitionBy("survey", "objectId").orderBy("sep_arcsec", "source_id")
        pairs = pairs.withColumn("_rank", F.row_number().over(closest_first)).where(F.col("_rank") == 1)
    return pairs.select(
        "survey",
        "objectId",
        F.lit(spec.name).alias("catalog"),
        F.lit(spec.version).alias("catalog_version"),
        "source_id",
        "sep_arcsec",
        *spec.columns,
    )



def batch_objects(alerts: DataFrame) -> DataFrame:
    """One row per (survey, objectId) of a micro-batch's alerts (``lenga.xmatch.objects.alert_objects``):
    the alerts are shuffled by object, so that each object's alerts meet in one task."""
    schema = from_arrow_schema(OBJECTS_SCHEMA)

    def objects(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        received = list(batches)
        if received:
            yield from alert_objects(pa.Table.from_batches(received)).to_batches()

    return alerts.select(*ALERT_COLUMNS).repartition(*OBJECT_KEYS).mapInArrow(objects, schema)


def as_match_rows(found: DataFrame, numeric: list[str], text: list[str]) -> DataFrame:
    """``crossmatch_objects`` rows in the ``xmatch`` columns (``lenga.xmatch.tables.match_rows``)."""

    def convert(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from match_rows(pa.Table.from_batches([batch]), numeric, text).to_batches()

    return found.mapInArrow(convert, from_arrow_schema(MATCH_SCHEMA))


def crossmatch_batch_writer(
    catalogs: list[tuple[CatalogSpec, Broadcast]],
    registry_files: list[str],
    lake_paths: dict[str, str],
    batch_id: int,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A ``mapInArrow`` function for a batch's alerts shuffled by object: matches its objects against
    the broadcast catalogs (``lenga.xmatch.tables.crossmatch_batch``), writes the ``xmatch`` and
    ``xmatch_objects`` Parquet files under ``lake_paths[table]`` and yields their add actions
    (:data:`lenga.io.lake.TABLE_ADD_ACTION_SCHEMA`), for the driver to commit table by table.

    Objects already in the committed ``registry_files`` (those of ``xmatch_objects``) are skipped;
    only the rows of the task's own objects are read from them.
    """

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        received = list(batches)
        if not received:
            return
        alerts = pa.Table.from_batches(received)
        registered = None
        if registry_files:
            ids = pc.unique(alerts.column("objectId").cast(pa.string()))
            registered = pq.ParquetDataset(registry_files, filters=pc.field("objectId").isin(ids)).read(
                columns=list(REGISTRY_KEYS), use_threads=False)
        tables = crossmatch_batch(alerts, [(spec, shared.value) for spec, shared in catalogs], registered, batch_id)
        for spec, rows in zip((XMATCH, XMATCH_OBJECTS), tables, strict=True):
            writer = PartitionedFileWriter(lake_paths[spec.name], spec.schema, list(spec.partition_by))
            writer.write(rows)
            actions = writer.close()
            if actions.num_rows:
                yield with_table(spec.name, actions)

    return write


def catalog_slice(catalog: DataFrame, pixels: np.ndarray) -> pa.Table:
    """The rows of a prepared catalog in ``pixels`` (HEALPix at the catalog's order), sorted by ``hpx``.

    With ``pixels`` the blocks of a batch's objects (``block_pixels``), this is the batch's share of a
    catalog too large to broadcast whole: ``crossmatch`` finds the same candidates in it as in the
    whole catalog.  The pixels are the broadcast side of a semi-join, so the catalog is scanned where
    it lies and never shuffled; only the few rows around the batch's objects reach the driver.
    """
    wanted = catalog.sparkSession.createDataFrame(pa.table({HPX_COLUMN: pa.array(np.unique(pixels), pa.int64())}))
    return catalog.join(F.broadcast(wanted), HPX_COLUMN, "left_semi").toArrow().sort_by(HPX_COLUMN)
