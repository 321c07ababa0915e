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
and the alert-context flags of ``lenga.xmatch.context``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
from pyspark import Broadcast
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import BooleanType, LongType, StructField, StructType

from lenga.xmatch.catalog import HPX_COLUMN, CatalogSpec, float_column
from lenga.xmatch.context import alert_flags
from lenga.xmatch.healpix import block_pixels
from lenga.xmatch.match import OBJECT_COLUMNS, crossmatch, output_schema, separation_arcsec

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


# A type object, not a DDL string: parsing DDL needs a session, and this module is imported before one.
_FLAGS_TYPE = StructType([StructField("known_sso", BooleanType()), StructField("probable_star", BooleanType())])


@F.pandas_udf(_FLAGS_TYPE)
def _alert_flags(
    ssdistnr: pd.Series, ssmagnr: pd.Series, ss_object_id: pd.Series, sgscore1: pd.Series, distpsnr1: pd.Series
) -> pd.DataFrame:
    known_sso, star = alert_flags(ssdistnr, ssmagnr, ss_object_id, sgscore1, distpsnr1)
    return pd.DataFrame({"known_sso": known_sso, "probable_star": star})


def batch_objects(alerts: DataFrame) -> DataFrame:
    """One row per (survey, objectId) of a micro-batch's alerts: survey, objectId, ra, dec, night,
    known_sso, probable_star.

    The position is the mean direction of the object's alerts (the normalised sum of their unit
    vectors; Fisher, Lewis & Embleton 1987, Statistical Analysis of Spherical Data, sect. 3.2.1):
    unlike an average of RA it is right across RA=0/360 and near the poles, and for one alert it is
    that alert's position.  ``night`` is the object's first night in the batch; a flag is set when
    any of its alerts sets it.
    """
    ra, dec = F.radians("ra"), F.radians("dec")
    flags = _alert_flags("ssdistnr", "ssmagnr", "ssObjectId", "sgscore1", "distpsnr1")
    grouped = (
        alerts.withColumn("_flags", flags)
        .groupBy("survey", "objectId")
        .agg(
            F.avg(F.cos(dec) * F.cos(ra)).alias("_x"),
            F.avg(F.cos(dec) * F.sin(ra)).alias("_y"),
            F.avg(F.sin(dec)).alias("_z"),
            F.min("night").alias("night"),
            F.bool_or("_flags.known_sso").alias("known_sso"),
            F.bool_or("_flags.probable_star").alias("probable_star"),
        )
    )
    return grouped.select(
        "survey",
        "objectId",
        F.pmod(F.degrees(F.atan2("_y", "_x")), F.lit(360.0)).alias("ra"),
        F.degrees(F.atan2("_z", F.sqrt(F.col("_x") ** 2 + F.col("_y") ** 2))).alias("dec"),
        "night",
        "known_sso",
        "probable_star",
    )
