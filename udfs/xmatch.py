"""Spark-facing cross-match of new objects against a prepared catalog (lenga.xmatch underneath).

Two strategies give the same rows (survey, objectId, catalog, catalog_version, source_id,
sep_arcsec, kept columns):

* ``broadcast``: a small catalog (at most ``broadcast_max_rows`` rows, conf/catalogs.yaml) is
  collected once as an Arrow table, broadcast, and every batch of objects is matched inside a
  ``mapInArrow`` by the pure ``lenga.xmatch.match.crossmatch``: no shuffle at all.
* ``partitioned``: a catalog too large for every executor's memory stays distributed.  Objects are
  exploded to the 9 pixels of their HEALPix block (``block_pixels``), equi-joined with the catalog on
  its ``hpx`` column, the exact separation is computed by a pandas UDF around the same astropy
  formula, and ``nearest`` keeps the first row of a window per object ordered by (sep, source_id).
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import LongType, StructField, StructType

from lenga.xmatch.catalog import HPX_COLUMN, CatalogSpec, float_column
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
    catalog: DataFrame,
    spec: CatalogSpec,
    broadcast_max_rows: int,
    catalog_rows: int | None = None,
) -> DataFrame:
    """Cross-match new objects with a prepared catalog (a DataFrame with ``hpx``, e.g. its Delta table).

    ``catalog_rows`` saves a count when the caller knows it (from the Delta log).
    """
    rows = catalog.count() if catalog_rows is None else catalog_rows
    if choose_strategy(rows, broadcast_max_rows) == "broadcast":
        return broadcast_crossmatch(objects, catalog, spec)
    return partitioned_crossmatch(objects, catalog, spec)


def _check_inputs(objects: DataFrame, catalog: DataFrame, spec: CatalogSpec) -> None:
    missing = [c for c in OBJECT_COLUMNS if c not in objects.columns]
    if missing:
        raise ValueError(f"objects DataFrame lacks columns {missing}; has {objects.columns}")
    if HPX_COLUMN not in catalog.columns:
        raise ValueError(f"catalog {spec.name!r} has no {HPX_COLUMN!r} column: write it with prepare_catalog")


def broadcast_crossmatch(objects: DataFrame, catalog: DataFrame, spec: CatalogSpec) -> DataFrame:
    """Match inside ``mapInArrow`` against the whole catalog broadcast as one hpx-sorted Arrow table."""
    _check_inputs(objects, catalog, spec)
    objects = objects.select(*OBJECT_COLUMNS)
    # Files of a Delta table come back in any order: restore the sort the matcher relies on.
    table = catalog.toArrow().sort_by(HPX_COLUMN)
    shared = objects.sparkSession.sparkContext.broadcast(table)
    schema = output_schema(to_arrow_schema(objects.schema), table.schema, spec)

    def match(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        prepared = shared.value
        for batch in batches:
            yield from crossmatch(pa.Table.from_batches([batch]), prepared, spec).to_batches()

    return objects.mapInArrow(match, from_arrow_schema(schema))


def partitioned_crossmatch(objects: DataFrame, catalog: DataFrame, spec: CatalogSpec) -> DataFrame:
    """Equi-join objects exploded to their HEALPix block with the catalog on ``hpx``."""
    _check_inputs(objects, catalog, spec)
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
        objects.mapInArrow(explode, exploded_schema)
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
