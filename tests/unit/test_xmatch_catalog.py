"""Catalog specs, readers and preparation: documented errors, NaN accounting, index and sort."""

from pathlib import Path

import astropy.units as u
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.time import Time
from deltalake import write_deltalake
from pyarrow import csv

from lenga.healpix import hpx_index
from lenga.xmatch.catalog import CatalogSpec, load_catalog_specs, prepare_catalog, read_catalog

REPO = Path(__file__).resolve().parents[2]

BASE = {
    "name": "vsx",
    "path": "unused",
    "format": "parquet",
    "ra_column": "RAJ2000",
    "dec_column": "DEJ2000",
    "id_column": "OID",
    "radius_arcsec": 2.0,
    "mode": "all",
    "version": "2025-01",
    "columns": ["Name", "Period"],
}


def _table(ra, dec):
    n = len(ra)
    return pa.table(
        {
            "OID": pa.array(np.arange(100, 100 + n), pa.int64()),
            "RAJ2000": pa.array(ra, pa.float64()),
            "DEJ2000": pa.array(dec, pa.float64()),
            "Name": [f"V{i}" for i in range(n)],
            "Period": np.linspace(0.1, 1.0, n),
            "Unused": np.zeros(n),
        }
    )


def test_from_dict_builds_spec():
    spec = CatalogSpec.from_dict(BASE)
    assert spec.columns == ("Name", "Period")
    assert spec.order == 15
    assert spec.source_columns == ["RAJ2000", "DEJ2000", "OID", "Name", "Period"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "votable"}, "format must be one of"),
        ({"mode": "best"}, "mode must be one of"),
        ({"radius_arcsec": "2"}, "radius_arcsec must be a number"),
        ({"radius_arcsec": -1}, "positive number"),
        ({"radius_arcsec": 200_000}, "exceeds"),
        ({"ra_column": ""}, "ra_column must be a non-empty string"),
        ({"columns": "Name"}, "columns must be a list"),
        ({"columns": ["sep_arcsec"]}, r"columns \['sep_arcsec'\] clash"),
        ({"radius": 2}, r"unknown keys \['radius'\]"),
        ({"epoch": 2016.0, "pmra_column": "pmRA"}, r"missing \['target_epoch', 'pmdec_column'\]"),
    ],
)
def test_from_dict_rejects_bad_config(change, message):
    with pytest.raises(ValueError, match=message) as err:
        CatalogSpec.from_dict({**BASE, **change})
    assert "'vsx'" in str(err.value)


def test_from_dict_missing_keys():
    config = {k: v for k, v in BASE.items() if k not in ("id_column", "version")}
    with pytest.raises(ValueError, match=r"catalog 'vsx': missing keys \['id_column', 'version'\]"):
        CatalogSpec.from_dict(config)


def test_prepare_drops_nan_counts_and_sorts_by_hpx():
    rng = np.random.default_rng(3)
    ra, dec = rng.uniform(0, 360, 500), rng.uniform(-90, 90, 500)
    ra[[3, 10]] = np.nan
    dec[[10, 42]] = np.nan
    table = _table(ra, dec)
    # An Arrow null is as unusable as NaN.
    table = table.set_column(1, "RAJ2000", pa.array([None if i == 7 else v for i, v in enumerate(ra)]))
    spec = CatalogSpec.from_dict(BASE)
    prepared, report = prepare_catalog(table, spec)

    assert report.rows_in == 500 and report.nan_coordinates_dropped == 4 and report.rows_out == 496
    assert report.order == spec.order and report.catalog == "vsx" and report.proper_motion_applied == 0
    assert prepared.column_names == ["RAJ2000", "DEJ2000", "OID", "Name", "Period", "hpx"]
    assert prepared.schema.field("hpx").type == pa.int64()
    assert set(prepared["OID"].to_pylist()) == set(range(100, 600)) - {103, 107, 110, 142}
    hpx = prepared["hpx"].to_numpy()
    assert (np.diff(hpx) >= 0).all()
    np.testing.assert_array_equal(hpx, hpx_index(prepared["RAJ2000"].to_numpy(), prepared["DEJ2000"].to_numpy(), 15))


@pytest.mark.parametrize(
    ("ra", "dec", "message"),
    [
        ([10.0, 360.0, 400.0, -0.5], [0.0] * 4, r"3 rows with RA outside \[0, 360\) deg, e.g. \[360.0, 400.0, -0.5\]"),
        ([10.0, 20.0], [0.0, 90.5], r"1 rows with Dec outside \[-90, 90\] deg, e.g. \[90.5\]"),
    ],
)
def test_prepare_rejects_out_of_range(ra, dec, message):
    with pytest.raises(ValueError, match=message):
        prepare_catalog(_table(ra, dec), CatalogSpec.from_dict(BASE))


def test_prepare_rejects_missing_and_non_numeric_columns():
    spec = CatalogSpec.from_dict(BASE)
    with pytest.raises(ValueError, match=r"missing columns \['OID', 'Period'\]"):
        prepare_catalog(_table([1.0], [1.0]).drop_columns(["OID", "Period"]), spec)
    text = _table([1.0], [1.0]).set_column(1, "RAJ2000", pa.array(["01:00:00"]))
    with pytest.raises(ValueError, match="column 'RAJ2000' must be numeric"):
        prepare_catalog(text, spec)


@pytest.mark.filterwarnings("ignore:ERFA function:erfa.ErfaWarning")  # the reference below has no parallax
def test_proper_motion_moves_positions_to_target_epoch():
    spec = CatalogSpec.from_dict(
        {**BASE, "epoch": 2016.0, "target_epoch": 2026.0, "pmra_column": "pmRA", "pmdec_column": "pmDE"}
    )
    # Barnard's star (Gaia DR3 values, rounded), a star without proper motion, and one near the pole.
    table = _table([269.4485, 10.0, 33.0], [4.7394, -5.0, 89.99]).append_column(
        "pmRA", pa.array([-801.55, None, 1000.0])
    ).append_column("pmDE", pa.array([10362.39, None, 0.0]))
    prepared, report = prepare_catalog(table, spec)
    assert report.proper_motion_applied == 2
    got = {oid: (r, d) for oid, r, d in zip(prepared["OID"].to_pylist(), prepared["RAJ2000"].to_pylist(),
                                             prepared["DEJ2000"].to_pylist(), strict=True)}
    start = SkyCoord(269.4485, 4.7394, unit="deg")
    moved = SkyCoord(*got[100], unit="deg")
    # 10 years at ~10.39 arcsec/yr.
    assert start.separation(moved).to_value(u.arcsec) == pytest.approx(103.9, abs=0.1)
    assert moved.dec.deg > start.dec.deg
    assert got[101] == (10.0, -5.0)
    ref = SkyCoord(33.0 * u.deg, 89.99 * u.deg, pm_ra_cosdec=1000 * u.mas / u.yr, pm_dec=0 * u.mas / u.yr,
                   obstime=Time(2016.0, format="jyear"))
    assert SkyCoord(*got[102], unit="deg").separation(
        ref.apply_space_motion(new_obstime=Time(2026.0, format="jyear"))
    ).to_value(u.arcsec) < 1e-6


def _write(fmt: str, table: pa.Table, path: Path) -> None:
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        csv.write_csv(table, path)
    elif fmt == "fits":
        Table(table.to_pydict()).write(path, format="fits")
    else:
        write_deltalake(str(path), table)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "fits", "delta"])
def test_read_catalog_formats(tmp_path, fmt):
    table = _table([1.0, 359.5, 180.0], [-89.0, 0.0, 45.0])
    path = tmp_path / f"cat.{fmt}"
    _write(fmt, table, path)
    spec = CatalogSpec.from_dict({**BASE, "format": fmt, "path": str(path)})
    read = read_catalog(spec)
    assert read.column_names == spec.source_columns  # only what is needed, "Unused" left out
    for column in spec.source_columns:
        assert read[column].to_pylist() == table[column].to_pylist()
    prepared, report = prepare_catalog(read, spec)
    assert report.rows_out == 3

    missing = CatalogSpec.from_dict({**BASE, "format": fmt, "path": str(path), "columns": ["Name", "Type"]})
    with pytest.raises(ValueError, match=r"catalog 'vsx': missing columns \['Type'\]"):
        read_catalog(missing)


def test_catalogs_yaml_loads(tmp_path):
    specs, threshold = load_catalog_specs(REPO / "conf" / "catalogs.yaml")
    assert threshold > 0
    assert {"demo", "gaia_dr3", "allwise", "vsx", "milliquas"} <= {s.name for s in specs}
    gaia = next(s for s in specs if s.name == "gaia_dr3")
    assert gaia.has_proper_motion and gaia.mode == "nearest"

    config = yaml.safe_load((REPO / "conf" / "catalogs.yaml").read_text())
    config["catalogs"].append(config["catalogs"][0])
    twice = tmp_path / "twice.yaml"
    twice.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"repeated: \['demo'\]"):
        load_catalog_specs(twice)
    config["broadcast_max_rows"] = "many"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="broadcast_max_rows must be a non-negative integer"):
        load_catalog_specs(bad)
