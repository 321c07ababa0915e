"""LSST (Rubin) alert serialiser: simulated objects to Rubin alert packets, schema v9.0 or v10.0.

Rubin distributes alerts in the Confluent wire format: byte 0 is 0, bytes 1-4 the big-endian
schema id (major * 100 + minor), then the schemaless Avro record (Rubin DMTN-093; the ids seen on
the Rubin streams are 701, 703, 900, ...). Schemas come from the installed ``lsst-alert-packet``
package, never a copy.

An alert holds the triggering ``diaSource``, ``prvDiaSources`` (detections of the last 12 months),
``prvDiaForcedSources`` (forced photometry at every epoch since the object's first detection, 12
months), the ``diaObject`` summary and plain FITS cutouts in nJy. Solar-system detections carry
``diaObjectId`` 0, no ``diaObject`` and an ``ssSource``, as in real LSSTCam alerts.
"""

from __future__ import annotations

import functools
import io
import struct
from datetime import datetime, timedelta

import fastavro
import lsst.alert.packet
import numpy as np
from astropy import units as u
from astropy.coordinates import BarycentricMeanEcliptic, SkyCoord

from lenga.sim import cutouts
from lenga.sim.population import SimObject
from lenga.sim.survey import mag_to_njy

SCHEMA_VERSIONS = ("9.0", "10.0")
# Id bases, so simulated ids look like Rubin's 64-bit ids and never collide between kinds.
DIA_OBJECT_ID_BASE = 3_000_000_000_000_000
SS_OBJECT_ID_BASE = 21_000_000_000_000_000
DIA_SOURCE_ID_BASE = 170_000_000_000_000_000
DIA_FORCED_SOURCE_ID_BASE = 180_000_000_000_000_000
N_DETECTORS = 189  # LSSTCam science detectors
DETECTOR_PIXELS = 4000
VISIT_SECONDS = 37.0  # 30 s exposure + overheads: visit sequence numbers within a night
PROCESSING_DELAY_DAYS = 90 / 86400  # alert production latency
MJD_EPOCH = datetime(1858, 11, 17)
# Rubin's night (dayobs) starts at local noon, UTC-12 h at Cerro Pachón in the dayobs convention.
DAYOBS_OFFSET_DAYS = 0.5
BANDS = ("u", "g", "r", "i", "z", "y")
# Artefacts whose stamps hold masked pixels: the diaSource's pixel flags are set.
MASKING_ARTIFACTS = frozenset({"saturated_star", "edge", "nan_region"})


def _version(version: str) -> tuple[int, int]:
    if version not in SCHEMA_VERSIONS:
        raise ValueError(f"unsupported LSST schema version {version!r}; choose one of {SCHEMA_VERSIONS}")
    major, minor = version.split(".")
    return int(major), int(minor)


def schema_id(version: str) -> int:
    """Confluent schema id of an alert schema version: major * 100 + minor."""
    major, minor = _version(version)
    return major * 100 + minor


@functools.cache
def schema(version: str) -> dict:
    """The parsed official ``lsst.vM_m.alert`` schema from the lsst-alert-packet package."""
    major, minor = _version(version)
    path = f"{lsst.alert.packet.get_schema_path(major, minor)}/lsst.v{major}_{minor}.alert.avsc"
    return fastavro.parse_schema(fastavro.schema.load_schema(path))


@functools.cache
def _record_fields(version: str, field: str) -> frozenset[str]:
    """Field names of the record type behind top-level ``field`` (to fill only what exists)."""
    top = next(f for f in schema(version)["fields"] if f["name"] == field)
    t = top["type"]
    branches = t if isinstance(t, list) else [t]
    for b in branches:
        if isinstance(b, dict):
            rec = b["items"] if b.get("type") == "array" else b
            if isinstance(rec, str):  # a named type defined earlier
                rec = schema(version)["__named_schemas"][rec]
            return frozenset(f["name"] for f in rec["fields"])
    raise ValueError(f"{field} is not a record field in lsst v{version}")


def visit_id(mjd: np.ndarray) -> np.ndarray:
    """Rubin-style visit ids ``YYYYMMDD`` * 1e5 + sequence number in the night (dayobs)."""
    dayobs = np.floor(mjd - DAYOBS_OFFSET_DAYS)
    dates = np.array([int((MJD_EPOCH + timedelta(days=float(d))).strftime("%Y%m%d")) for d in dayobs])
    seq = np.floor((mjd - DAYOBS_OFFSET_DAYS - dayobs) * 86400 / VISIT_SECONDS).astype(np.int64)
    return dates.astype(np.int64) * 100000 + seq


def prepare(objects: list[SimObject]) -> None:
    """Per-object LSST metadata: ids, visits, detectors (drawn once, reused by every alert)."""
    for o in objects:
        rng = np.random.default_rng((*o.seed, 1))
        n = len(o.epochs)
        sso = o.model.stamp_class == "asteroid"
        meta = {
            "diaObjectId": 0 if sso else DIA_OBJECT_ID_BASE + o.object_id,
            "ssObjectId": SS_OBJECT_ID_BASE + o.object_id if sso else None,
            "visit": visit_id(o.epochs.mjd),
            "detector": rng.integers(0, N_DETECTORS, n),
            "x": float(rng.uniform(20, DETECTOR_PIXELS - 20)),
            "y": float(rng.uniform(20, DETECTOR_PIXELS - 20)),
            "forced_id": DIA_FORCED_SOURCE_ID_BASE + o.object_id * 10**5 + np.arange(n),
            "radec_err": 0.1 / 3600 * rng.uniform(0.5, 2.0),
        }
        o.cache["lsst"] = meta
        o.cache["objectId"] = str(meta["ssObjectId"] if sso else meta["diaObjectId"])


def _dia_source(o: SimObject, j: int, version: str) -> dict:
    key = ("src", version, j)
    if key in o.cache:
        return o.cache[key]
    meta = o.cache["lsst"]
    flux, err = float(o.phot.flux[j]), float(o.phot.flux_err[j])
    mjd = float(o.epochs.mjd[j])
    rec = {
        "diaSourceId": int(o.source_id[j]),
        "visit": int(meta["visit"][j]),
        "detector": int(meta["detector"][j]),
        "diaObjectId": meta["diaObjectId"],
        "ssObjectId": meta["ssObjectId"],
        "parentDiaSourceId": 0,
        "midpointMjdTai": mjd,
        "ra": o.ra,
        "raErr": meta["radec_err"],
        "dec": o.dec,
        "decErr": meta["radec_err"],
        "x": meta["x"],
        "y": meta["y"],
        "centroid_flag": False,
        "apFlux": flux,
        "apFluxErr": err * 1.3,
        "isNegative": flux < 0,
        "snr": abs(flux) / err,
        "psfFlux": flux,
        "psfFluxErr": err,
        "psfFlux_flag": False,
        "scienceFlux": float(o.phot.science_flux[j]),
        "scienceFluxErr": err,
        "templateFlux": float(mag_to_njy(o.reference_mag[j])),
        "extendedness": 1.0 if o.model.host == "galaxy" else 0.0,
        "reliability": float(o.reliability[j]),
        "band": str(o.epochs.band[j]),
        "isDipole": o.artifact == "dipole",
        "timeProcessedMjdTai": mjd + PROCESSING_DELAY_DAYS,
        "pixelFlags": o.artifact in MASKING_ARTIFACTS,
    }
    o.cache[key] = rec
    return rec


def _forced_source(o: SimObject, j: int) -> dict:
    key = ("fp", j)
    if key in o.cache:
        return o.cache[key]
    meta = o.cache["lsst"]
    mjd = float(o.epochs.mjd[j])
    rec = {
        "diaForcedSourceId": int(meta["forced_id"][j]),
        "diaObjectId": meta["diaObjectId"],
        "ra": o.ra,
        "dec": o.dec,
        "visit": int(meta["visit"][j]),
        "detector": int(meta["detector"][j]),
        "psfFlux": float(o.phot.flux[j]),
        "psfFluxErr": float(o.phot.flux_err[j]),
        "midpointMjdTai": mjd,
        "scienceFlux": float(o.phot.science_flux[j]),
        "scienceFluxErr": float(o.phot.flux_err[j]),
        "band": str(o.epochs.band[j]),
        "timeProcessedMjdTai": mjd + PROCESSING_DELAY_DAYS,
        "timeWithdrawnMjdTai": None,
    }
    o.cache[key] = rec
    return rec


def _dia_object(o: SimObject, detections: np.ndarray, i: int, version: str) -> dict:
    """diaObject summary over the detections up to and including ``i`` (DPDD per-band statistics)."""
    flux, err, band = o.phot.flux[detections], o.phot.flux_err[detections], o.epochs.band[detections]
    mjd = o.epochs.mjd[detections]
    rec = {
        "diaObjectId": o.cache["lsst"]["diaObjectId"],
        "validityStartMjdTai": float(o.epochs.mjd[i] + PROCESSING_DELAY_DAYS),
        "ra": o.ra,
        "raErr": o.cache["lsst"]["radec_err"],
        "dec": o.dec,
        "decErr": o.cache["lsst"]["radec_err"],
        "nDiaSources": int(detections.size),
        "firstDiaSourceMjdTai": float(mjd[0]),
        "lastDiaSourceMjdTai": float(mjd[-1]),
    }
    for b in BANDS:
        sel = band == b
        if not sel.any():
            continue
        f, e = flux[sel], err[sel]
        w = 1.0 / e**2
        rec[f"{b}_psfFluxMean"] = float((f * w).sum() / w.sum())
        rec[f"{b}_psfFluxMeanErr"] = float(np.sqrt(1.0 / w.sum()))
        rec[f"{b}_psfFluxSigma"] = float(f.std(ddof=1)) if f.size > 1 else None
        rec[f"{b}_psfFluxNdata"] = int(f.size)
        rec[f"{b}_psfFluxMin"] = float(f.min())
        rec[f"{b}_psfFluxMax"] = float(f.max())
        rec[f"{b}_psfFluxErrMean"] = float(e.mean())
    names = _record_fields(version, "diaObject")
    return {k: v for k, v in rec.items() if k in names}


def _ss_source(o: SimObject, i: int, version: str) -> dict:
    c = SkyCoord(o.ra * u.deg, o.dec * u.deg)
    ecl = c.transform_to(BarycentricMeanEcliptic())
    gal = c.galactic
    values = {
        "diaSourceId": int(o.source_id[i]),
        "ssObjectId": o.cache["lsst"]["ssObjectId"],
        # v9.0 names / v10.0 names of the same quantities
        "eclipticLambda": ecl.lon.deg,
        "eclipticBeta": ecl.lat.deg,
        "galacticL": gal.l.deg,
        "galacticB": gal.b.deg,
        "eclLambda": ecl.lon.deg,
        "eclBeta": ecl.lat.deg,
        "galLon": gal.l.deg,
        "galLat": gal.b.deg,
    }
    names = _record_fields(version, "ssSource")
    return {k: v for k, v in values.items() if k in names}


def history(o: SimObject, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(previous detections, previous forced-photometry epochs) within 12 months before ``i``.

    Forced photometry starts at the object's first detection (Rubin DPDD); solar-system objects
    have neither.
    """
    if o.model.stamp_class == "asteroid":
        return np.empty(0, dtype=int), np.empty(0, dtype=int)
    t = o.epochs.mjd
    past = (t < t[i]) & (t >= t[i] - o.survey.history_days)
    first = o.first_detection_mjd()
    return np.flatnonzero(past & o.detected), np.flatnonzero(past & (t >= first))


def _stamps(o: SimObject, i: int) -> dict[str, bytes]:
    triplet = o.stamps(i)
    return {
        "cutoutDifference": cutouts.fits_bytes(triplet.difference, "lsst"),
        "cutoutScience": cutouts.fits_bytes(triplet.science, "lsst"),
        "cutoutTemplate": cutouts.fits_bytes(triplet.template, "lsst"),
    }


def build_record(o: SimObject, i: int, version: str) -> dict:
    """The ``lsst.vM_m.alert`` record of detection ``i`` of object ``o`` (a plain dict)."""
    if not o.detected[i]:
        raise ValueError(f"epoch {i} of object {o.cache.get('objectId')} is not a detection: no alert")
    prv, forced = history(o, i)
    sso = o.model.stamp_class == "asteroid"
    record = {
        "diaSourceId": int(o.source_id[i]),
        "observation_reason": None,
        "target_name": None,
        "diaSource": _dia_source(o, i, version),
        "prvDiaSources": None if sso else [_dia_source(o, j, version) for j in prv],
        "prvDiaForcedSources": None if sso else [_forced_source(o, j) for j in forced],
        "diaObject": None if sso else _dia_object(o, np.append(prv, i), i, version),
        "ssSource": _ss_source(o, i, version) if sso else None,
    }
    record.update(_stamps(o, i))
    return record


def encode(record: dict, version: str) -> bytes:
    """Confluent wire format: magic byte 0, 4-byte big-endian schema id, schemaless Avro record.

    Array unions are named with fastavro's tuple notation (see :func:`lenga.sim.ztf.encode`).
    """
    hinted = dict(record)
    for name in ("prvDiaSources", "prvDiaForcedSources"):
        if record[name] is not None:
            hinted[name] = ("array", record[name])
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, schema_id(version)))
    fastavro.schemaless_writer(buf, schema(version), hinted)
    return buf.getvalue()


def truth(o: SimObject, i: int) -> dict:
    """What alert ``i`` of ``o`` contains: detections by diaSourceId, forced photometry by
    diaForcedSourceId (LSST alerts carry no upper limits)."""
    prv, forced = history(o, i)
    return {
        "object_id": o.cache["objectId"],
        "candid": int(o.source_id[i]),
        "detections": tuple(int(o.source_id[j]) for j in prv) + (int(o.source_id[i]),),
        "upper_limits": (),
        "forced": tuple(int(o.cache["lsst"]["forced_id"][j]) for j in forced),
    }
