"""A batch's alerts to xmatch and xmatch_objects rows in Arrow (lenga.xmatch.objects, lenga.xmatch.tables)."""

import astropy.units as u
import numpy as np
import pyarrow as pa
import pytest
from astropy.coordinates import SkyCoord, search_around_sky

from lenga.xmatch.catalog import CatalogSpec, prepare_catalog
from lenga.xmatch.objects import ALERT_COLUMNS, alert_objects
from lenga.xmatch.tables import XMATCH, XMATCH_OBJECTS, crossmatch_batch

NIGHT = 20250501


def _alerts(rows):
    """An alerts table from dicts giving survey, objectId, ra, dec and optionally night and flag inputs."""
    columns = {c: [r.get(c) for r in rows] for c in ALERT_COLUMNS}
    columns["night"] = [r.get("night", NIGHT) for r in rows]
    types = {"ra": pa.float64(), "dec": pa.float64(), "night": pa.int32(), "ssObjectId": pa.int64(),
             "ssdistnr": pa.float32(), "ssmagnr": pa.float32(), "sgscore1": pa.float32(), "distpsnr1": pa.float32()}
    return pa.table({c: pa.array(v, types.get(c, pa.string())) for c, v in columns.items()})


def test_alert_objects_mean_direction_first_night_and_any_flag():
    alerts = _alerts([
        {"survey": "ztf", "objectId": "A", "ra": 359.9999, "dec": 10.0, "night": NIGHT + 1},
        {"survey": "ztf", "objectId": "A", "ra": 0.0001, "dec": 10.0002, "ssdistnr": 2.0, "ssmagnr": 19.0},
        {"survey": "lsst", "objectId": "B", "ra": 120.0, "dec": -89.9999, "ssObjectId": 0},
        {"survey": "lsst", "objectId": "B", "ra": 300.0, "dec": -89.9999},
        {"survey": "lsst", "objectId": "C", "ra": 10.0, "dec": 5.0, "ssObjectId": 123},
        {"survey": "ztf", "objectId": "D", "ra": 20.0, "dec": 5.0, "sgscore1": 0.9, "distpsnr1": 0.4},
        {"survey": "ztf", "objectId": "D", "ra": 20.0, "dec": 5.0, "sgscore1": -999.0, "distpsnr1": -999.0,
         "ssdistnr": -999.0, "ssmagnr": -999.0},
        {"survey": "ztf", "objectId": "E", "ra": float("nan"), "dec": 5.0},
    ])
    objects = {r["objectId"]: r for r in alert_objects(alerts).to_pylist()}
    assert sorted(objects) == ["A", "B", "C", "D", "E"]
    a, b, c, d, e = (objects[k] for k in "ABCDE")
    assert min(a["ra"], 360 - a["ra"]) < 1e-9 and a["dec"] == pytest.approx(10.0001, abs=1e-8)
    assert a["night"] == NIGHT and a["known_sso"] and not a["probable_star"]
    assert b["dec"] == pytest.approx(-90.0, abs=1e-6) and not b["known_sso"]  # opposite sides of the pole
    assert c["known_sso"] and (c["ra"], c["dec"]) == pytest.approx((10.0, 5.0), abs=1e-12)
    assert d["probable_star"] and not d["known_sso"]
    assert np.isnan(e["ra"])


def test_alert_objects_names_missing_columns():
    with pytest.raises(ValueError, match=r"alerts lack the columns \['ssObjectId'\]"):
        alert_objects(_alerts([{"survey": "ztf", "objectId": "A", "ra": 1.0, "dec": 1.0}]).drop_columns("ssObjectId"))


def _catalog(rng, n):
    ra = rng.uniform(10.0, 10.5, n)
    dec = rng.uniform(-0.25, 0.25, n)
    mag = rng.uniform(14, 20, n)
    return pa.table({
        "source_id": np.arange(n, dtype=np.int64), "ra": ra, "dec": dec,
        "mag": pa.array(mag, mask=np.arange(n) % 3 == 0),  # nulls among the kept values
        "variable": np.arange(n) % 2 == 0, "type": np.where(np.arange(n) % 2 == 0, "STAR", "QSO"),
    })


@pytest.mark.parametrize("mode", ["all", "nearest"])
def test_crossmatch_batch_rows_equal_astropy_and_skip_registered_objects(mode):
    rng = np.random.default_rng(3)
    spec = CatalogSpec(name="cat", path="unused", format="parquet", ra_column="ra", dec_column="dec",
                       id_column="source_id", radius_arcsec=20.0, mode=mode, version="v1",
                       columns=("mag", "variable", "type"))
    source = _catalog(rng, 5_000)
    prepared, _ = prepare_catalog(source, spec)
    n = 400
    ra, dec = rng.uniform(10.0, 10.5, n), rng.uniform(-0.25, 0.25, n)
    ids = [f"O{k}" for k in range(n)]
    # Two alerts per object at the same position, the second one night later.
    alerts = _alerts([{"survey": "ztf", "objectId": i, "ra": r, "dec": d, "night": NIGHT + k}
                      for i, r, d in zip(ids, ra, dec, strict=True) for k in (0, 1)])
    registered = pa.table({"survey": ["ztf", "ztf"], "objectId": ["O0", "O1"], "catalog": ["cat", "cat"],
                           "catalog_version": ["v1", "v0"]})  # O1 was matched against an older version only
    matches, registry = crossmatch_batch(alerts, [(spec, prepared)], registered, batch_id=7)
    assert matches.schema == XMATCH.schema and registry.schema == XMATCH_OBJECTS.schema

    objects = SkyCoord(ra[1:], dec[1:], unit="deg")  # O0 is skipped
    catalog = SkyCoord(source["ra"].to_numpy(), source["dec"].to_numpy(), unit="deg")
    i_obj, i_cat, sep, _ = search_around_sky(objects, catalog, spec.radius_arcsec * u.arcsec)
    expected = {}
    for o, c, s in zip(i_obj, i_cat, sep.arcsec, strict=True):
        expected.setdefault(ids[o + 1], []).append((s, c))
    if mode == "nearest":
        expected = {o: [min(pairs)] for o, pairs in expected.items()}
    got = {}
    for row in matches.to_pylist():
        got.setdefault(row["objectId"], []).append((row["sep_arcsec"], int(row["source_id"])))
        k = int(row["source_id"])
        mag = source["mag"][k].as_py()
        assert dict(row["properties"]) == {"mag": mag, "variable": 1.0 if k % 2 == 0 else 0.0}
        assert dict(row["labels"]) == {"type": "STAR" if k % 2 == 0 else "QSO"}
        assert (row["catalog"], row["catalog_version"], row["night"]) == ("cat", "v1", NIGHT)
    assert sorted(got) == sorted(expected)
    for object_id, pairs in expected.items():
        found = sorted(got[object_id], key=lambda p: p[1])
        pairs = sorted(pairs, key=lambda p: p[1])
        assert [c for _, c in found] == [c for _, c in pairs]
        np.testing.assert_allclose([s for s, _ in found], [s for s, _ in pairs], atol=1e-6)

    rows = {r["objectId"]: r for r in registry.to_pylist()}
    assert sorted(rows) == sorted(ids[1:])
    for object_id, row in rows.items():
        assert row["n_matches"] == len(expected.get(object_id, []))
        assert (row["batch"], row["night"], row["catalog_version"]) == (7, NIGHT, "v1")
    assert any(r["n_matches"] == 0 for r in rows.values()) and any(r["n_matches"] > 0 for r in rows.values())
    if mode == "all":
        assert any(r["n_matches"] > 1 for r in rows.values())
