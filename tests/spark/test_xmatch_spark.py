"""The Spark layer: broadcast and partitioned strategies give the pure matcher's rows."""

import astropy.units as u
import numpy as np
import pyarrow as pa
import pytest
from astropy.coordinates import SkyCoord

from lenga.xmatch.catalog import CatalogSpec, prepare_catalog
from lenga.xmatch.match import crossmatch
from udfs.xmatch import broadcast_crossmatch, choose_strategy, crossmatch_objects, partitioned_crossmatch

RADIUS_ARCSEC = 5.0


def _spec(mode):
    return CatalogSpec(
        name="demo", path="unused", format="delta", ra_column="ra", dec_column="dec", id_column="source_id",
        radius_arcsec=RADIUS_ARCSEC, mode=mode, version="sim-1", columns=("ra", "mag"),
    )


@pytest.fixture(scope="module")
def data(spark):
    """2,000 objects and 20,000 sources crowded in caps on RA=0 and on the north pole."""
    rng = np.random.default_rng(11)

    def scatter(n):
        centre = SkyCoord(ra=[0.0, 0.0], dec=[0.0, 90.0], unit="deg")[rng.integers(0, 2, n)]
        c = centre.directional_offset_by(rng.uniform(0, 360, n) * u.deg, rng.uniform(0, 300, n) * u.arcsec)
        return c.ra.wrap_at(360 * u.deg).deg, c.dec.deg

    cat_ra, cat_dec = scatter(20_000)
    obj_ra, obj_dec = scatter(2_000)
    obj_ra[0] = np.nan  # cannot be placed: no match, no error
    catalog = pa.table({"source_id": np.arange(20_000, dtype=np.int64), "ra": cat_ra, "dec": cat_dec,
                        "mag": rng.uniform(14, 20, 20_000)})
    objects = pa.table({"survey": ["lsst"] * 2_000, "objectId": np.arange(5_000, 7_000, dtype=np.int64),
                        "ra": obj_ra, "dec": obj_dec})
    prepared, _ = prepare_catalog(catalog, _spec("all"))
    # Shuffle the catalog's rows as a Delta table's files would be: the strategies may not rely on order.
    shuffled = prepared.take(rng.permutation(prepared.num_rows))
    return objects, prepared, spark.createDataFrame(objects), spark.createDataFrame(shuffled)


def _rows(table_or_df):
    table = table_or_df if isinstance(table_or_df, pa.Table) else table_or_df.toArrow()
    rows = table.to_pylist()
    return sorted((r["objectId"], r["source_id"], round(r["sep_arcsec"], 9), r["mag"], r["ra"]) for r in rows)


@pytest.mark.parametrize("mode", ["all", "nearest"])
def test_broadcast_and_partitioned_give_the_pure_rows(data, mode):
    objects, prepared, objects_df, catalog_df = data
    spec = _spec(mode)
    expected = _rows(crossmatch(objects, prepared, spec))
    broadcast = broadcast_crossmatch(objects_df, catalog_df, spec)
    partitioned = partitioned_crossmatch(objects_df, catalog_df, spec)
    assert broadcast.columns == partitioned.columns == [
        "survey", "objectId", "catalog", "catalog_version", "source_id", "sep_arcsec", "ra", "mag"]
    assert len(expected) > (2_000 if mode == "all" else 1_000)
    assert _rows(broadcast) == expected
    assert _rows(partitioned) == expected
    assert {r.catalog_version for r in partitioned.select("catalog_version").distinct().collect()} == {"sim-1"}


def test_strategy_switch(data):
    assert choose_strategy(10, 10) == "broadcast"
    assert choose_strategy(11, 10) == "partitioned"
    _, _, objects_df, catalog_df = data
    # Both paths through the dispatcher agree on the same input.
    small = crossmatch_objects(objects_df, catalog_df, _spec("nearest"), broadcast_max_rows=10**6)
    large = crossmatch_objects(objects_df, catalog_df, _spec("nearest"), broadcast_max_rows=10, catalog_rows=20_000)
    assert _rows(small) == _rows(large)


def test_catalog_without_index_is_refused(data):
    _, _, objects_df, catalog_df = data
    with pytest.raises(ValueError, match="no 'hpx' column"):
        partitioned_crossmatch(objects_df, catalog_df.drop("hpx"), _spec("all"))
    with pytest.raises(ValueError, match=r"lacks columns \['dec'\]"):
        broadcast_crossmatch(objects_df.drop("dec"), catalog_df, _spec("all"))
