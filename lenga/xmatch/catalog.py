"""Local catalogs for cross-matching: configuration, readers and preparation (validate + index).

A catalog export (Gaia, AllWISE, VSX, MILLIQUAS, the simulator's demo catalog) is declared in
``conf/catalogs.yaml`` (one ``CatalogSpec`` each), read once with ``read_catalog`` and turned by
``prepare_catalog`` into the table the stream matches against: validated coordinates, the configured
columns only, an ``hpx`` column (nested HEALPix at the order the match radius needs, see
``lenga.healpix``) and rows sorted by ``hpx`` so that a pixel's sources are one contiguous run.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from astropy.coordinates import SkyCoord
from astropy.time import Time
from erfa import ErfaWarning

from lenga.config import CONF_DIR
from lenga.healpix import hpx_index, order_for_radius

FORMATS = ("parquet", "csv", "fits", "delta")
MODES = ("nearest", "all")

#: The catalog declarations a deployment uses unless told otherwise.
DEFAULT_CATALOGS_FILE = CONF_DIR / "catalogs.yaml"

# Column added by prepare_catalog, the order of that index as stored in the lake (lenga.stream.catalogs),
# and the columns every match row starts with (see lenga.xmatch.match): configured catalog columns may
# not reuse these names.
HPX_COLUMN = "hpx"
HPX_ORDER_COLUMN = "hpx_order"
MATCH_KEY_COLUMNS = ("survey", "objectId", "catalog", "catalog_version", "source_id", "sep_arcsec")

# Number of offending values quoted in validation errors.
_EXAMPLES = 3

# Placeholder for the lake root in catalog paths (files the demo writes next to its lake).
LAKE_PLACEHOLDER = "{lake}"


@dataclasses.dataclass(frozen=True)
class CatalogSpec:
    """One local catalog as declared in conf/catalogs.yaml.

    ``epoch``/``pmra_column``/``pmdec_column``/``target_epoch`` are for catalogs with proper motions
    (Gaia: positions at J2016.0, ``pmra`` already multiplied by cos(dec), mas/yr): prepare_catalog moves
    the positions to ``target_epoch`` (Julian year, e.g. the middle of the survey) so that fast movers
    still fall within the radius of their alert position.
    """

    name: str
    path: str
    format: str
    ra_column: str
    dec_column: str
    id_column: str
    radius_arcsec: float
    mode: str
    version: str
    columns: tuple[str, ...] = ()
    epoch: float | None = None
    target_epoch: float | None = None
    pmra_column: str | None = None
    pmdec_column: str | None = None

    def __post_init__(self) -> None:
        where = f"catalog {self.name!r}"
        for field in ("name", "path", "ra_column", "dec_column", "id_column", "version"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{where}: {field} must be a non-empty string, got {value!r}")
        if self.format not in FORMATS:
            raise ValueError(f"{where}: format must be one of {FORMATS}, got {self.format!r}")
        if self.mode not in MODES:
            raise ValueError(f"{where}: mode must be one of {MODES}, got {self.mode!r}")
        if isinstance(self.radius_arcsec, bool) or not isinstance(self.radius_arcsec, int | float):
            raise ValueError(f"{where}: radius_arcsec must be a number, got {self.radius_arcsec!r}")
        try:
            order_for_radius(float(self.radius_arcsec))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        reserved = sorted(set(self.columns) & {*MATCH_KEY_COLUMNS, HPX_COLUMN, HPX_ORDER_COLUMN})
        if reserved:
            raise ValueError(f"{where}: columns {reserved} clash with the match output columns")
        motion = {
            "epoch": self.epoch,
            "target_epoch": self.target_epoch,
            "pmra_column": self.pmra_column,
            "pmdec_column": self.pmdec_column,
        }
        given = [key for key, value in motion.items() if value is not None]
        if given and len(given) != len(motion):
            missing = [key for key in motion if key not in given]
            raise ValueError(f"{where}: proper motion needs {list(motion)}; missing {missing}")

    def in_lake(self, lake_root: str | Path) -> CatalogSpec:
        """This spec with ``{lake}`` in its path replaced by the lake root."""
        return dataclasses.replace(self, path=self.path.replace(LAKE_PLACEHOLDER, str(lake_root)))

    @property
    def order(self) -> int:
        """HEALPix order of the catalog's ``hpx`` index (from the match radius)."""
        return order_for_radius(float(self.radius_arcsec))

    @property
    def has_proper_motion(self) -> bool:
        return self.pmra_column is not None

    @property
    def source_columns(self) -> list[str]:
        """Columns read from the export: coordinates, id, proper motions and the kept columns."""
        wanted = [self.ra_column, self.dec_column, self.id_column]
        if self.has_proper_motion:
            wanted += [self.pmra_column, self.pmdec_column]
        return list(dict.fromkeys([*wanted, *self.columns]))

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> CatalogSpec:
        """Build a spec from one YAML entry, with messages that name the catalog and the bad key."""
        if not isinstance(config, dict):
            raise ValueError(f"a catalog entry must be a mapping, got {type(config).__name__}")
        name = config.get("name", "<unnamed>")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - set(fields))
        if unknown:
            raise ValueError(f"catalog {name!r}: unknown keys {unknown}; allowed: {sorted(fields)}")
        required = [k for k, f in fields.items() if f.default is dataclasses.MISSING]
        missing = [k for k in required if k not in config]
        if missing:
            raise ValueError(f"catalog {name!r}: missing keys {missing}")
        values = dict(config)
        columns = values.get("columns", ())
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise ValueError(f"catalog {name!r}: columns must be a list of column names, got {columns!r}")
        values["columns"] = tuple(columns)
        values["version"] = str(values["version"])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class PrepareReport:
    """What prepare_catalog did: rows in and out, NaN/null coordinates dropped, index order."""

    catalog: str
    version: str
    order: int
    rows_in: int
    rows_out: int
    nan_coordinates_dropped: int
    proper_motion_applied: int


def load_catalog_specs(path: str | Path) -> tuple[list[CatalogSpec], int]:
    """Read conf/catalogs.yaml: the catalog specs and ``broadcast_max_rows`` (Spark strategy switch)."""
    config = yaml.safe_load(Path(path).read_text())
    if not isinstance(config, dict) or "catalogs" not in config or "broadcast_max_rows" not in config:
        raise ValueError(f"{path}: expected a mapping with 'broadcast_max_rows' and 'catalogs'")
    threshold = config["broadcast_max_rows"]
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise ValueError(f"{path}: broadcast_max_rows must be a non-negative integer, got {threshold!r}")
    specs = [CatalogSpec.from_dict(entry) for entry in config["catalogs"]]
    names = [spec.name for spec in specs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"{path}: catalog names must be unique, repeated: {duplicated}")
    return specs, threshold


def read_catalog(spec: CatalogSpec) -> pa.Table:
    """Read the configured columns of a catalog export (Parquet, CSV, FITS table or Delta table)."""
    columns = spec.source_columns
    if spec.format == "parquet":
        import pyarrow.parquet as pq

        _require_columns(pq.read_schema(spec.path).names, spec)
        return pq.read_table(spec.path, columns=columns)
    if spec.format == "csv":
        from pyarrow import csv

        with csv.open_csv(spec.path) as header:  # reads the first block only
            _require_columns(header.schema.names, spec)
        return csv.read_csv(spec.path, convert_options=csv.ConvertOptions(include_columns=columns))
    if spec.format == "fits":
        from astropy.table import Table

        table = Table.read(spec.path, format="fits", character_as_bytes=False)
        _require_columns(table.colnames, spec)
        # Masked (TNULL) values become nulls through pandas' nullable dtypes.
        return pa.Table.from_pandas(table[columns].to_pandas(), preserve_index=False)
    from deltalake import DeltaTable

    delta = DeltaTable(spec.path)
    _require_columns(delta.schema().to_arrow().names, spec)
    return delta.to_pyarrow_table(columns=columns)


def _require_columns(available: list[str], spec: CatalogSpec) -> None:
    missing = [c for c in spec.source_columns if c not in available]
    if missing:
        raise ValueError(f"catalog {spec.name!r}: missing columns {missing} in {spec.path}; present: {available}")


def prepare_catalog(table: pa.Table, spec: CatalogSpec) -> tuple[pa.Table, PrepareReport]:
    """Validate a catalog table and index it for matching.

    Missing columns and coordinates outside RA [0, 360), Dec [-90, 90] raise ValueError (a catalog in
    radians or with a shifted RA convention would otherwise match silently wrong).  Rows with NaN or
    null RA/Dec cannot be placed on the sky: they are dropped and counted in the report.  The result
    keeps the spec's columns, positions moved to ``target_epoch`` when proper motions are configured,
    and an int64 ``hpx`` column; rows are sorted by ``hpx``.
    """
    where = f"catalog {spec.name!r}"
    _require_columns(table.column_names, spec)
    table = table.select(spec.source_columns)
    ra = float_column(table, spec.ra_column, where)
    dec = float_column(table, spec.dec_column, where)

    finite = np.isfinite(ra) & np.isfinite(dec)
    for label, values, bad in (
        ("RA outside [0, 360)", ra, finite & ~((ra >= 0) & (ra < 360))),
        ("Dec outside [-90, 90]", dec, finite & ~((dec >= -90) & (dec <= 90))),
    ):
        if bad.any():
            raise ValueError(
                f"{where}: {int(bad.sum())} rows with {label} deg, e.g. {values[bad][:_EXAMPLES].tolist()} "
                f"(column {spec.ra_column if label.startswith('RA') else spec.dec_column!r})"
            )

    keep = np.flatnonzero(finite)
    table, ra, dec = table.take(keep), ra[keep], dec[keep]
    moved = 0
    if spec.has_proper_motion:
        ra, dec, moved = _propagate(table, ra, dec, spec, where)
        table = table.set_column(table.schema.get_field_index(spec.ra_column), spec.ra_column, pa.array(ra))
        table = table.set_column(table.schema.get_field_index(spec.dec_column), spec.dec_column, pa.array(dec))

    hpx = hpx_index(ra, dec, spec.order)
    order = np.argsort(hpx, kind="stable")
    table = table.take(order).append_column(HPX_COLUMN, pa.array(hpx[order], type=pa.int64()))
    report = PrepareReport(
        catalog=spec.name,
        version=spec.version,
        order=spec.order,
        rows_in=len(finite),
        rows_out=table.num_rows,
        nan_coordinates_dropped=int(len(finite) - len(keep)),
        proper_motion_applied=moved,
    )
    return table, report


def float_column(table: pa.Table, name: str, where: str) -> np.ndarray:
    """A numeric column as float64 with nulls as NaN; a non-numeric column is a clear error."""
    column = table.column(name)
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise ValueError(f"{where}: column {name!r} must be numeric, got {column.type}")
    return pc.fill_null(pc.cast(column, pa.float64()), math.nan).to_numpy()


def _propagate(
    table: pa.Table, ra: np.ndarray, dec: np.ndarray, spec: CatalogSpec, where: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Move positions from ``epoch`` to ``target_epoch`` with astropy's space motion (ERFA pmsafe).

    Sources without a proper motion (null/NaN, e.g. Gaia two-parameter solutions) keep their position.
    """
    pmra = float_column(table, spec.pmra_column, where)
    pmdec = float_column(table, spec.pmdec_column, where)
    has_pm = np.isfinite(pmra) & np.isfinite(pmdec)
    if not has_pm.any():
        return ra, dec, 0
    ra, dec = ra.copy(), dec.copy()
    ra[has_pm], dec[has_pm] = apply_proper_motion(
        ra[has_pm], dec[has_pm], pmra[has_pm], pmdec[has_pm],
        Time(spec.epoch, format="jyear"), Time(spec.target_epoch, format="jyear"),
    )
    return ra, dec, int(has_pm.sum())


def apply_proper_motion(
    ra: np.ndarray, dec: np.ndarray, pmra: np.ndarray, pmdec: np.ndarray, obstime: Time, new_obstime: Time
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (deg) moved from ``obstime`` to ``new_obstime`` by their proper motions (mas/yr,
    ``pmra`` including cos(dec)), with astropy's space motion (ERFA pmsafe), RA in [0, 360)."""
    coords = SkyCoord(
        ra=ra * u.deg,
        dec=dec * u.deg,
        pm_ra_cosdec=pmra * u.mas / u.yr,
        pm_dec=pmdec * u.mas / u.yr,
        obstime=obstime,
    )
    with warnings.catch_warnings():
        # No parallax is given: ERFA places the stars at a large default distance and says so.
        warnings.simplefilter("ignore", ErfaWarning)
        moved = coords.apply_space_motion(new_obstime=new_obstime)
    return moved.ra.wrap_at(360 * u.deg).deg, moved.dec.deg
