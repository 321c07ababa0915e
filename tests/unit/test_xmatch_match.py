"""Matching equals astropy's search_around_sky / match_to_catalog_sky on random catalogs.

Sources are crowded in patches (so that every object has several candidates) placed where the
HEALPix index is most likely to go wrong: across RA = 0/360, on both poles (covering the last degree),
on a corner of the 12 base pixels, plus a uniform all-sky population.
"""

import astropy.units as u
import numpy as np
import pyarrow as pa
import pytest
from astropy.coordinates import SkyCoord, search_around_sky

from lenga.xmatch.catalog import CatalogSpec, prepare_catalog
from lenga.xmatch.match import crossmatch, match_positions, separation_arcsec

N_CATALOG = 100_000
N_OBJECTS = 10_000
# (ra, dec) of the crowded patches: RA wrap on the equator and at -60, both poles, a base-pixel corner.
PATCH_CENTRES = [(0.0, 0.0), (359.9, -60.0), (0.0, 90.0), (123.0, -90.0), (45.0, 41.8103149)]
# Patch radius in units of the match radius: ~6 catalog sources per object for 1 arcsec, and >= 1 deg
# at 60 arcsec so that the polar patches cover the last degree around each pole.
PATCH_RADII = 60
RADII_ARCSEC = [1.0, 5.0, 60.0]


def _scatter(rng, centre, radius_deg, n):
    """n positions uniform in a cap around centre (area-uniform in separation)."""
    sep = radius_deg * np.sqrt(rng.uniform(0, 1, n))
    pa_ = rng.uniform(0, 360, n)
    c = SkyCoord(*centre, unit="deg").directional_offset_by(pa_ * u.deg, sep * u.deg)
    return c.ra.wrap_at(360 * u.deg).deg, c.dec.deg


def _positions(rng, n, radius_arcsec):
    per_patch = n // (len(PATCH_CENTRES) + 1)
    parts = [_scatter(rng, c, PATCH_RADII * radius_arcsec / 3600, per_patch) for c in PATCH_CENTRES]
    rest = n - per_patch * len(PATCH_CENTRES)
    parts.append((rng.uniform(0, 360, rest), np.degrees(np.arcsin(rng.uniform(-1, 1, rest)))))
    ra = np.concatenate([p[0] for p in parts]) % 360.0
    dec = np.concatenate([p[1] for p in parts])
    return ra, dec


def _spec(radius, mode="all"):
    return CatalogSpec(
        name="random",
        path="unused",
        format="parquet",
        ra_column="RAdeg",
        dec_column="DEdeg",
        id_column="source_id",
        radius_arcsec=radius,
        mode=mode,
        version="test-1",
        columns=("mag",),
    )


@pytest.fixture(scope="module", params=RADII_ARCSEC)
def case(request):
    radius = request.param
    rng = np.random.default_rng(int(radius * 1000))
    cat_ra, cat_dec = _positions(rng, N_CATALOG, radius)
    obj_ra, obj_dec = _positions(rng, N_OBJECTS, radius)
    # Objects exactly on the poles and on RA = 0.
    obj_ra[:3], obj_dec[:3] = [0.0, 0.0, 200.0], [90.0, 0.0, -90.0]
    catalog = pa.table(
        {
            "source_id": np.arange(N_CATALOG, dtype=np.int64) * 7 + 3,
            "RAdeg": cat_ra,
            "DEdeg": cat_dec,
            "mag": rng.uniform(12, 21, N_CATALOG),
        }
    )
    objects = pa.table(
        {
            "survey": ["ztf"] * N_OBJECTS,
            "objectId": [f"ZTF{i:08d}" for i in range(N_OBJECTS)],
            "ra": obj_ra,
            "dec": obj_dec,
        }
    )
    ref = search_around_sky(
        SkyCoord(obj_ra, obj_dec, unit="deg"), SkyCoord(cat_ra, cat_dec, unit="deg"), radius * u.arcsec
    )
    return radius, catalog, objects, ref


def _pairs(objects, out):
    """(object row, source_id) -> sep for a crossmatch result."""
    row_of = {oid: i for i, oid in enumerate(objects.column("objectId").to_pylist())}
    return {
        (row_of[o], s): d
        for o, s, d in zip(
            out.column("objectId").to_pylist(),
            out.column("source_id").to_pylist(),
            out.column("sep_arcsec").to_pylist(),
            strict=True,
        )
    }


def test_all_equals_search_around_sky(case):
    radius, catalog, objects, (idx_obj, idx_cat, sep2d, _) = case
    spec = _spec(radius, "all")
    prepared, _ = prepare_catalog(catalog, spec)
    out = crossmatch(objects, prepared, spec)

    ids = catalog.column("source_id").to_numpy()
    expected = dict(zip(zip(idx_obj.tolist(), ids[idx_cat].tolist(), strict=True),
                        sep2d.to_value(u.arcsec).tolist(), strict=True))
    got = _pairs(objects, out)
    assert len(expected) > 2 * N_OBJECTS  # crowded: several candidates per object
    assert got.keys() == expected.keys()
    worst = max(abs(got[k] - expected[k]) for k in expected)
    assert worst < 1e-6
    # Pole objects matched their polar patches.
    assert {0, 2} <= {k[0] for k in got}
    assert set(out.column("catalog").to_pylist()) == {"random"}
    assert set(out.column("catalog_version").to_pylist()) == {"test-1"}
    mags = dict(zip(ids.tolist(), catalog.column("mag").to_pylist(), strict=True))
    assert all(m == mags[s] for s, m in zip(out["source_id"].to_pylist(), out["mag"].to_pylist(), strict=True))


def test_nearest_equals_match_to_catalog_sky(case):
    radius, catalog, objects, _ = case
    spec = _spec(radius, "nearest")
    prepared, _ = prepare_catalog(catalog, spec)
    out = crossmatch(objects, prepared, spec)

    obj = SkyCoord(objects["ra"].to_numpy(), objects["dec"].to_numpy(), unit="deg")
    cat = SkyCoord(catalog["RAdeg"].to_numpy(), catalog["DEdeg"].to_numpy(), unit="deg")
    idx, d2d, _ = obj.match_to_catalog_sky(cat)
    within = np.flatnonzero(d2d <= radius * u.arcsec)
    ids = catalog.column("source_id").to_numpy()
    expected = dict(zip(zip(within.tolist(), ids[idx[within]].tolist(), strict=True),
                        d2d[within].to_value(u.arcsec).tolist(), strict=True))
    got = _pairs(objects, out)
    assert len(expected) > N_OBJECTS // 2
    assert got.keys() == expected.keys()
    assert max(abs(got[k] - expected[k]) for k in expected) < 1e-6


def test_nan_objects_give_no_row_and_do_not_shift_others():
    spec = _spec(5.0, "nearest")
    catalog = pa.table({"source_id": [1, 2], "RAdeg": [10.0, 10.0], "DEdeg": [20.0, 20.001], "mag": [1.0, 2.0]})
    prepared, _ = prepare_catalog(catalog, spec)
    objects = pa.table(
        {"survey": ["lsst"] * 3, "objectId": [11, 12, 13], "ra": [np.nan, 10.0, None], "dec": [20.0, 20.001, 20.0]}
    )
    out = crossmatch(objects, prepared, spec)
    assert out.column("objectId").to_pylist() == [12]
    assert out.column("source_id").to_pylist() == [2]
    assert out.column("sep_arcsec").to_pylist()[0] < 1e-6


def test_match_positions_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode must be"):
        match_positions(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1, np.int64), 10, 1.0, "best")


def test_objects_missing_columns():
    spec = _spec(1.0)
    prepared, _ = prepare_catalog(pa.table({"source_id": [1], "RAdeg": [1.0], "DEdeg": [1.0], "mag": [1.0]}), spec)
    with pytest.raises(ValueError, match=r"lacks columns \['survey'\]"):
        crossmatch(pa.table({"objectId": ["a"], "ra": [1.0], "dec": [1.0]}), prepared, spec)
    with pytest.raises(ValueError, match="not prepared"):
        crossmatch(pa.table({"survey": ["ztf"], "objectId": ["a"], "ra": [1.0], "dec": [1.0]}),
                   pa.table({"source_id": [1], "RAdeg": [1.0], "DEdeg": [1.0], "mag": [1.0]}), spec)


def test_separation_across_ra_wrap_and_pole():
    sep = separation_arcsec(np.array([359.9999, 0.0]), np.array([0.0, 89.9999]),
                            np.array([0.0001, 180.0]), np.array([0.0, 89.9999]))
    np.testing.assert_allclose(sep, [0.72, 0.72], rtol=1e-9)

