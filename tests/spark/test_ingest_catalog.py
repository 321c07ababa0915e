"""Catalog ingest: every export format to a sorted Delta table, errors, idempotency, the job's CLI."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from astropy.table import Table
from deltalake import DeltaTable, write_deltalake

from jobs.ingest_catalog import main
from lenga.healpix import hpx_index
from lenga.io.lake import open_lake
from lenga.stream.catalogs import catalog_table, ingest_catalog, stored_catalog
from lenga.tables import TableSpec
from lenga.xmatch.catalog import CatalogSpec

N = 2_000
N_NAN = 7
RADIUS = 2.0


@pytest.fixture(scope="module")
def export():
    """A catalog with a string id, a kept magnitude, a kept label and a few NaN positions."""
    rng = np.random.default_rng(3)
    ra = rng.uniform(0, 360, N)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, N)))
    ra[:N_NAN] = np.nan
    return pa.table({"ID": [f"J{k:06d}" for k in range(N)], "RA": ra, "DEC": dec,
                     "Vmag": rng.uniform(10, 20, N), "Type": rng.choice(["EW", "RRAB", "M"], N)})


def _write(export: pa.Table, fmt: str, directory) -> str:
    if fmt == "parquet":
        pq.write_table(export, directory / "cat.parquet")
        return str(directory / "cat.parquet")
    if fmt == "csv":
        pacsv.write_csv(export, directory / "cat.csv")
        return str(directory / "cat.csv")
    if fmt == "fits":
        Table(export.to_pydict()).write(directory / "cat.fits")
        return str(directory / "cat.fits")
    write_deltalake(directory / "cat_delta", export)
    return str(directory / "cat_delta")


def _spec(path: str, fmt: str, version: str = "1", **changes) -> CatalogSpec:
    values = {"name": "vsx", "path": path, "format": fmt, "ra_column": "RA", "dec_column": "DEC", "id_column": "ID",
              "radius_arcsec": RADIUS, "mode": "all", "version": version, "columns": ["Vmag", "Type"], **changes}
    return CatalogSpec.from_dict(values)


@pytest.fixture
def lake(spark, tmp_path):
    return open_lake(spark, tmp_path / "lake")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "fits", "delta"])
def test_each_format_becomes_a_sorted_delta_table(lake, export, tmp_path, fmt):
    spec = _spec(_write(export, fmt, tmp_path), fmt)
    result = ingest_catalog(lake, spec)
    assert not result.skipped and result.write.rows == N - N_NAN
    report = result.report
    assert (report.rows_in, report.rows_out, report.nan_coordinates_dropped, report.order) == (
        N, N - N_NAN, N_NAN, spec.order)
    table = DeltaTable(lake.path("catalogs/vsx")).to_pyarrow_table()
    hpx = table.column("hpx").to_numpy()
    assert np.all(np.diff(hpx) >= 0)  # stored in the join's order
    assert np.array_equal(hpx, hpx_index(table.column("RA").to_numpy(), table.column("DEC").to_numpy(), spec.order))
    assert set(table.column("catalog_version").to_pylist()) == {"1"}
    assert set(table.column("hpx_order").to_pylist()) == {spec.order}
    kept = export.slice(N_NAN)
    assert sorted(table.column("ID").to_pylist()) == sorted(kept.column("ID").to_pylist())
    by_id = dict(zip(kept.column("ID").to_pylist(), kept.column("Vmag").to_pylist(), strict=True))
    assert all(by_id[i] == v for i, v in zip(table.column("ID").to_pylist(), table.column("Vmag").to_pylist(),
                                             strict=True))
    # Any Delta reader sees it; the stream finds it with its version, order and size.
    assert pl.read_delta(lake.path("catalogs/vsx")).height == N - N_NAN
    stored = stored_catalog(lake, spec)
    assert (stored.spec.version, stored.order, stored.rows, stored.problems(spec)) == ("1", spec.order, N - N_NAN, [])


def test_reingest_same_version_is_a_noop_new_version_replaces(lake, export, tmp_path):
    path = _write(export, "parquet", tmp_path)
    ingest_catalog(lake, _spec(path, "parquet"))
    table_path = lake.path(catalog_table("vsx"))
    (tmp_path / "cat.parquet").unlink()  # the no-op does not even read the export
    again = ingest_catalog(lake, _spec(path, "parquet"))
    assert again.skipped and again.report is None
    assert DeltaTable(table_path).version() == 0
    pq.write_table(export.slice(0, 500), tmp_path / "cat.parquet")
    replaced = ingest_catalog(lake, _spec(path, "parquet", version="2"))
    assert not replaced.skipped and replaced.write.rows == 500 - N_NAN
    assert DeltaTable(table_path).version() == 1
    assert DeltaTable(table_path).to_pyarrow_table().num_rows == 500 - N_NAN
    # Same version, but indexed for another radius: prepared again, not skipped.
    reindexed = ingest_catalog(lake, _spec(path, "parquet", version="2", radius_arcsec=20.0))
    assert not reindexed.skipped and stored_catalog(lake, _spec(path, "parquet")).order == reindexed.report.order


def test_bad_catalogs_give_the_documented_errors(lake, export, tmp_path):
    path = _write(export, "parquet", tmp_path)
    with pytest.raises(ValueError, match=r"missing columns \['Bmag'\]"):
        ingest_catalog(lake, _spec(path, "parquet", columns=["Bmag"]))
    radians = export.set_column(1, "RA", pa.array(np.radians(export.column("RA").to_numpy()) - 1.0))
    pq.write_table(radians, tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"rows with RA outside \[0, 360\) deg"):
        ingest_catalog(lake, _spec(str(tmp_path / "bad.parquet"), "parquet"))
    pq.write_table(export.slice(0, N_NAN), tmp_path / "nan.parquet")
    with pytest.raises(ValueError, match="no row with finite coordinates"):
        ingest_catalog(lake, _spec(str(tmp_path / "nan.parquet"), "parquet"))
    assert not lake.exists(catalog_table("vsx"))  # nothing written by a refused ingest


def test_overwrite_arrow_replaces_in_order_and_skips_replays(lake):
    spec = TableSpec("reference/things", pa.schema([("k", pa.int64())]), partition_by=())
    first = lake.overwrite_arrow(spec, pa.table({"k": np.arange(1000, 0, -1)}), "app", 0)
    assert (first.rows, first.skipped) == (1000, False)
    assert DeltaTable(lake.path(spec.name)).to_pyarrow_table().column("k").to_pylist() == list(range(1000, 0, -1))
    assert lake.overwrite_arrow(spec, pa.table({"k": [1]}), "app", 0).skipped  # replay
    other = TableSpec(spec.name, pa.schema([("name", pa.string())]), partition_by=())
    assert lake.overwrite_arrow(other, pa.table({"name": ["a", "b"]}), "app", 1).rows == 2
    assert DeltaTable(lake.path(spec.name)).to_pyarrow_table().to_pylist() == [{"name": "a"}, {"name": "b"}]


def test_job_ad_hoc_and_declared(spark, export, tmp_path, capsys):
    path = _write(export, "csv", tmp_path)
    lake_dir = tmp_path / "lake"
    ad_hoc = ["--name", "mine", "--lake", str(lake_dir), "--path", path, "--format", "csv", "--ra-column", "RA",
              "--dec-column", "DEC", "--id-column", "ID", "--radius", "1.5", "--mode", "nearest", "--version", "v7",
              "--columns", "Vmag,Type"]
    assert main(ad_hoc, spark=spark) == 0
    out = capsys.readouterr().out
    assert f"catalog 'mine' version 'v7' written to {lake_dir / 'catalogs' / 'mine'}" in out
    assert f"rows_in={N}, rows_out={N - N_NAN}, nan_coordinates_dropped={N_NAN}" in out
    assert main(ad_hoc, spark=spark) == 0
    assert "already in" in capsys.readouterr().out
    declared = tmp_path / "catalogs.yaml"
    declared.write_text(f"broadcast_max_rows: 10\ncatalogs:\n  - {{name: v, path: '{path}', format: csv, "
                        "ra_column: RA, dec_column: DEC, id_column: ID, radius_arcsec: 2, mode: all, version: 1}\n")
    assert main(["--name", "v", "--lake", str(lake_dir), "--catalogs", str(declared)], spark=spark) == 0
    assert DeltaTable(str(lake_dir / "catalogs" / "v")).to_pyarrow_table().num_rows == N - N_NAN
    assert main(["--name", "nope", "--lake", str(lake_dir), "--catalogs", str(declared)], spark=spark) == 2
    assert "catalog 'nope' is not declared" in capsys.readouterr().err
    assert main(["--name", "x", "--lake", str(lake_dir), "--path", path], spark=spark) == 2
    assert "an ad-hoc catalog needs ['--format'" in capsys.readouterr().err
    assert spark.range(1).count() == 1  # the given session is left running
