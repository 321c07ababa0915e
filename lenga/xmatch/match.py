"""Positional cross-match of objects against a prepared catalog (HEALPix candidates + exact distance).

Candidates of an object are the catalog rows in its pixel and the 8 neighbours (prepare_catalog
sorted the catalog by ``hpx``, so each pixel is one ``searchsorted`` range); the exact angular
separation then decides.  Separations use astropy's ``angular_separation`` (Vincenty formula, stable
at all distances, poles and RA=0/360 included), the same function ``SkyCoord.separation`` uses, so
results agree with ``search_around_sky`` / ``match_to_catalog_sky`` to float64 rounding.

Modes: ``all`` keeps every catalog source within the radius (e.g. VSX: several variables may be
blended); ``nearest`` keeps the closest one (ties broken by catalog row order).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
from astropy.coordinates import angular_separation

from lenga.healpix import block_pixels
from lenga.xmatch.catalog import HPX_COLUMN, CatalogSpec, float_column

# Object columns every match input has (one row per new object, positions in degrees).
OBJECT_COLUMNS = ("survey", "objectId", "ra", "dec")

_ARCSEC_PER_RAD = math.degrees(1.0) * 3600.0


def separation_arcsec(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Angular separation in arcsec between positions in degrees (astropy's Vincenty formula)."""
    rad = np.radians
    return angular_separation(rad(ra1), rad(dec1), rad(ra2), rad(dec2)) * _ARCSEC_PER_RAD


def candidate_pairs(
    ra: np.ndarray, dec: np.ndarray, catalog_hpx: np.ndarray, order: int
) -> tuple[np.ndarray, np.ndarray]:
    """(object row, catalog row) for every catalog source in the object's pixel or its neighbours.

    ``catalog_hpx`` must be sorted (prepare_catalog does it): each pixel of an object's block is a
    run ``[left, right)`` of the catalog found by binary search, and the runs are expanded without a
    Python loop.  Objects with a NaN coordinate have no candidates.
    """
    rows, pixels = block_pixels(ra, dec, order)
    left = np.searchsorted(catalog_hpx, pixels, side="left")
    counts = np.searchsorted(catalog_hpx, pixels, side="right") - left
    total = int(counts.sum())
    # Position inside each run: global position minus the start offset of that run.
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    cat = np.repeat(left, counts) + (np.arange(total) - starts)
    return np.repeat(rows, counts), cat


def match_positions(
    ra: np.ndarray,
    dec: np.ndarray,
    catalog_ra: np.ndarray,
    catalog_dec: np.ndarray,
    catalog_hpx: np.ndarray,
    order: int,
    radius_arcsec: float,
    mode: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matched (object row, catalog row, separation arcsec), sorted by object row then separation."""
    obj, cat = candidate_pairs(ra, dec, catalog_hpx, order)
    sep = separation_arcsec(ra[obj], dec[obj], catalog_ra[cat], catalog_dec[cat])
    within = sep <= radius_arcsec
    obj, cat, sep = obj[within], cat[within], sep[within]
    by_object = np.lexsort((cat, sep, obj))
    obj, cat, sep = obj[by_object], cat[by_object], sep[by_object]
    if mode == "nearest":
        first = np.ones(len(obj), dtype=bool)
        first[1:] = obj[1:] != obj[:-1]
        obj, cat, sep = obj[first], cat[first], sep[first]
    elif mode != "all":
        raise ValueError(f"mode must be 'nearest' or 'all', got {mode!r}")
    return obj, cat, sep


def output_schema(objects: pa.Schema, catalog: pa.Schema, spec: CatalogSpec) -> pa.Schema:
    """Schema of crossmatch's result for these object and prepared-catalog schemas."""
    return pa.schema(
        [
            objects.field("survey"),
            objects.field("objectId"),
            pa.field("catalog", pa.string()),
            pa.field("catalog_version", pa.string()),
            pa.field("source_id", catalog.field(spec.id_column).type),
            pa.field("sep_arcsec", pa.float64()),
            *(catalog.field(c) for c in spec.columns),
        ]
    )


def crossmatch(objects: pa.Table, catalog: pa.Table, spec: CatalogSpec) -> pa.Table:
    """Match new objects (survey, objectId, ra, dec) against a prepared catalog.

    Returns one row per match: survey, objectId, catalog, catalog_version, source_id, sep_arcsec and
    the spec's kept columns.  Objects with NaN coordinates cannot match and give no row.
    """
    missing = [c for c in OBJECT_COLUMNS if c not in objects.column_names]
    if missing:
        raise ValueError(f"objects table lacks columns {missing}; has {objects.column_names}")
    if HPX_COLUMN not in catalog.column_names:
        raise ValueError(f"catalog {spec.name!r} is not prepared (no {HPX_COLUMN!r}): use prepare_catalog")
    obj, cat, sep = match_positions(
        float_column(objects, "ra", "objects"),
        float_column(objects, "dec", "objects"),
        catalog.column(spec.ra_column).to_numpy(),
        catalog.column(spec.dec_column).to_numpy(),
        catalog.column(HPX_COLUMN).to_numpy(),
        spec.order,
        float(spec.radius_arcsec),
        spec.mode,
    )
    schema = output_schema(objects.schema, catalog.schema, spec)
    n = len(obj)
    arrays = [
        objects.column("survey").take(obj),
        objects.column("objectId").take(obj),
        pa.array([spec.name] * n, pa.string()),
        pa.array([spec.version] * n, pa.string()),
        catalog.column(spec.id_column).take(cat),
        pa.array(sep, pa.float64()),
        *(catalog.column(c).take(cat) for c in spec.columns),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)
