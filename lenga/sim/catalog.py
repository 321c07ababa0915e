"""A reference catalog of the simulated sky, so that the demo's cross-match finds real counterparts.

For the populations that ``lenga.sim.night.simulate`` draws with a given configuration, the catalog
holds what a merged Gaia + galaxy + quasar catalog (Gaia DR3, a photometric galaxy catalog,
MILLIQUAS) would list at the objects' positions, plus unrelated field sources:

* stars (RR Lyrae, long-period variables, constant stars): the star itself, Gaia-like, with a proper
  motion and a parallax, its position given at Gaia DR3's reference epoch J2016.0 (moved back from
  the alert epoch with astropy's space motion, the inverse of what ``prepare_catalog`` applies);
* supernova hosts: the host galaxy centre, offset from the supernova by the simulator's host offset,
  with the host's magnitude and the supernova's redshift;
* quasars: the quasar (type ``QSO``), at the alert position, with its redshift;
* asteroids: nothing (a moving object has no static counterpart).

Image axes follow the usual orientation of survey cutouts (north up, east left): +x is west
(decreasing RA), +y is north.  Columns: ``source_id`` (int64, Gaia convention: the level-12 nested
HEALPix index times 2**35 plus a running number), ``ra``, ``dec`` (deg, ICRS), ``pmra`` (incl.
cos dec), ``pmdec`` (mas/yr), ``parallax`` (mas; null for extragalactic sources), ``mag_g``,
``mag_r`` (AB), ``type`` (STAR, GALAXY, QSO) and ``z`` (null for stars).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import astropy.units as u
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.coordinates import SkyCoord
from astropy.time import Time

from lenga.healpix import hpx_index
from lenga.sim.night import SURVEY_CODE, SimConfig, build_population
from lenga.sim.population import SimObject
from lenga.xmatch.catalog import apply_proper_motion

# Gaia DR3 reference epoch (Julian year) of the catalog positions.
GAIA_EPOCH = 2016.0
# Gaia source_id: nested HEALPix level-12 index * 2**35 + a running number (Gaia DR3 documentation,
# "source_id" in the gaia_source data model).
SOURCE_ID_ORDER = 12
SOURCE_ID_SHIFT = 2**35
# Unrelated field sources added by default (about one per 2 square degrees: none falls within
# arcseconds of a simulated object by chance).
DEFAULT_FIELD_SOURCES = 20_000
FIELD_TYPE_MIX = {"STAR": 0.6, "GALAXY": 0.35, "QSO": 0.05}
FIELD_MAG_RANGE = (14.0, 22.0)
FIELD_GALAXY_Z = (0.02, 0.5)
FIELD_QSO_Z = (0.3, 2.5)
# Stellar proper motions: per-axis Gaussian sigma (mas/yr), the spread of G < 20 Gaia DR3 stars away
# from the Galactic plane is a few mas/yr; parallaxes of the distant survey variables (kpc): 0.05-2 mas.
STAR_PM_SIGMA_MAS_YR = 5.0
STAR_PARALLAX_MAS = (0.05, 2.0)
# g - r colour of the host galaxies (the simulator draws a single host magnitude, used as r): the
# red-sequence colour of SN Ia hosts at low redshift (Sullivan et al. 2006 hosts are g - r ~ 0.4-0.9).
HOST_G_MINUS_R = 0.7
# Survey code of the field sources in the seed (the simulated surveys use 1 and 2).
FIELD_SEED_CODE = 99
# Name of the demo catalog's declaration in the catalogs file.
DEMO_CATALOG = "demo"


def _star_rows(objects: list[SimObject], start_mjd: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Stars at J2016.0: the alert position (true at ``start_mjd``) moved back by the proper motion."""
    n = len(objects)
    pmra = rng.normal(0.0, STAR_PM_SIGMA_MAS_YR, n)
    pmdec = rng.normal(0.0, STAR_PM_SIGMA_MAS_YR, n)
    ra = np.array([o.ra for o in objects])
    dec = np.array([o.dec for o in objects])
    if n:
        ra, dec = apply_proper_motion(ra, dec, pmra, pmdec, Time(start_mjd, format="mjd"),
                                      Time(GAIA_EPOCH, format="jyear"))
    mags = np.array([o.model.reference_magnitude(np.array(["g", "r"]), o.params) for o in objects]).reshape(n, 2)
    return {"ra": ra, "dec": dec, "pmra": pmra, "pmdec": pmdec, "parallax": rng.uniform(*STAR_PARALLAX_MAS, n),
            "mag_g": mags[:, 0], "mag_r": mags[:, 1], "type": np.full(n, "STAR"), "z": np.full(n, np.nan)}


def _host_rows(objects: list[SimObject]) -> dict[str, np.ndarray]:
    """Host galaxy centres: the object position offset by its host offset (pixels; +x west, +y north)."""
    n = len(objects)
    ra = np.array([o.ra for o in objects])
    dec = np.array([o.dec for o in objects])
    if n:
        scale = np.array([o.survey.pixel_scale_arcsec for o in objects])
        offset = np.array([o.host_offset_pix for o in objects]) * scale[:, None]
        centre = SkyCoord(ra=ra * u.deg, dec=dec * u.deg).spherical_offsets_by(
            -offset[:, 0] * u.arcsec, offset[:, 1] * u.arcsec)
        ra, dec = centre.ra.wrap_at(360 * u.deg).deg, centre.dec.deg
    mag_r = np.array([o.host_mag for o in objects])
    return {"ra": ra, "dec": dec, "pmra": np.full(n, np.nan), "pmdec": np.full(n, np.nan),
            "parallax": np.full(n, np.nan), "mag_g": mag_r + HOST_G_MINUS_R, "mag_r": mag_r,
            "type": np.full(n, "GALAXY"), "z": np.array([o.params["z"] for o in objects])}


def _quasar_rows(objects: list[SimObject]) -> dict[str, np.ndarray]:
    """Quasars at the alert position, with their mean (reference) magnitudes and redshifts."""
    n = len(objects)
    mags = np.array([o.model.reference_magnitude(np.array(["g", "r"]), o.params) for o in objects]).reshape(n, 2)
    return {"ra": np.array([o.ra for o in objects]), "dec": np.array([o.dec for o in objects]),
            "pmra": np.full(n, np.nan), "pmdec": np.full(n, np.nan), "parallax": np.full(n, np.nan),
            "mag_g": mags[:, 0], "mag_r": mags[:, 1], "type": np.full(n, "QSO"),
            "z": np.array([o.params["z"] for o in objects])}


def _field_rows(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Unrelated sources uniform on the sphere, with the type mix of FIELD_TYPE_MIX."""
    kinds = np.array(list(FIELD_TYPE_MIX))
    weights = np.array(list(FIELD_TYPE_MIX.values()))
    kind = rng.choice(kinds, size=n, p=weights / weights.sum())
    star = kind == "STAR"
    mag_r = rng.uniform(*FIELD_MAG_RANGE, n)
    z = np.where(kind == "GALAXY", rng.uniform(*FIELD_GALAXY_Z, n), rng.uniform(*FIELD_QSO_Z, n))
    return {
        "ra": rng.uniform(0.0, 360.0, n),
        "dec": np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n))),
        "pmra": np.where(star, rng.normal(0.0, STAR_PM_SIGMA_MAS_YR, n), np.nan),
        "pmdec": np.where(star, rng.normal(0.0, STAR_PM_SIGMA_MAS_YR, n), np.nan),
        "parallax": np.where(star, rng.uniform(*STAR_PARALLAX_MAS, n), np.nan),
        "mag_g": mag_r + np.where(star, rng.uniform(0.0, 1.5, n), HOST_G_MINUS_R),
        "mag_r": mag_r,
        "type": kind,
        "z": np.where(star, np.nan, z),
    }


def demo_catalog(config: SimConfig, n_field: int = DEFAULT_FIELD_SOURCES) -> pa.Table:
    """The catalog of the objects ``config`` simulates (all its surveys) plus ``n_field`` field sources."""
    if n_field < 0:
        raise ValueError(f"n_field must be >= 0, got {n_field}")
    parts = []
    for survey in config.surveys:
        # An object whose field the schedule never observes gets no parameters (it never alerts,
        # so no alert needs it matched) and no catalog row.
        objects = [o for o in build_population(config, survey) if o.params]
        rng = np.random.default_rng((config.seed, SURVEY_CODE[survey], FIELD_SEED_CODE))
        parts += [
            _star_rows([o for o in objects if o.model.host == "star"], config.start_mjd, rng),
            _host_rows([o for o in objects if o.model.host == "galaxy" and o.model.stamp_class != "AGN"]),
            _quasar_rows([o for o in objects if o.model.stamp_class == "AGN"]),
        ]
    parts.append(_field_rows(n_field, np.random.default_rng((config.seed, FIELD_SEED_CODE))))
    columns = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    hpx12 = hpx_index(columns["ra"], columns["dec"], SOURCE_ID_ORDER)
    source_id = hpx12 * SOURCE_ID_SHIFT + np.arange(hpx12.size, dtype=np.int64)
    nullable = {name: pa.array(values, from_pandas=True) for name, values in columns.items()}
    return pa.table({"source_id": source_id, **nullable})


def write_demo_catalog(config: SimConfig, path: str | Path, n_field: int = DEFAULT_FIELD_SOURCES) -> str:
    """Write ``demo_catalog`` as Parquet at ``path``; returns its version ``sim-<digest of the rows>``.

    The digest changes with anything that changes the rows (seed, objects, class mix, field sources),
    so a demo run with another configuration re-ingests the catalog instead of keeping a stale one.
    """
    table = demo_catalog(config, n_field)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target)
    digest = hashlib.sha1()
    for name in ("source_id", "ra", "dec"):
        digest.update(table.column(name).to_numpy().tobytes())
    return f"sim-{digest.hexdigest()[:12]}"
