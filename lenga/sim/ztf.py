"""ZTF alert serialiser: simulated objects to ZTF alert packets, schema 4.02.

A ZTF alert is one Avro object-container file holding one ``ztf.alert`` record (Patterson et al.
2019; schema 4.02 of ZwickyTransientFacility/ztf-avro-alert): the triggering ``candidate``,
``prv_candidates`` (detections of the last 30 days, plus upper limits with a null ``candid``),
``fp_hists`` (forced photometry of the last 30 days) and three gzipped FITS cutouts.

Identifiers follow the IPAC conventions seen in real packets:
``nid`` = nights since 2017-01-01 (MJD 57754); ``pid`` = nid * 1e9 + (fraction of the MJD day,
5 digits) * 1e4 + rcid * 100 + 15; ``candid`` = pid * 1e6 + 10000 + tblid (19 digits, growing
with time); ``rfid`` = field * 1e6 + 120000 + fid * 100 + rcid; objectId ``ZTF`` + two-digit
year + seven letters. Fluxes in ``fp_hists`` are in DN at each epoch's ``magzpsci``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import fastavro
import numpy as np

import lenga.survey
from lenga.photometry import AB_ZEROPOINT_NJY, MAG_ERR_PER_REL_FLUX
from lenga.sim import cutouts
from lenga.sim.population import SimObject

SCHEMA_VERSION = "4.02"
SCHEMA_PATH = Path(lenga.survey.__file__).parent / "schemas" / "ztf" / SCHEMA_VERSION / "alert.json"
PUBLISHER = "lenga.sim (simulated ZTF alerts)"
FID = {"g": 1, "r": 2, "i": 3}
# nid counts nights from 2017-01-01 (MJD 57754), as in real packets (nid 2695 on 2024-05-19).
NID_EPOCH_MJD = 57754
PROGRAM_ID = 1  # public survey
PROGRAM_PI = "Kulkarni"
RB_VERSION = "t17_f5_c3"
DRB_VERSION = "d6_m7"
EXPTIME_S = 30.0
# ZTF's magzpsci per band [mag for 1 DN in 30 s] and its epoch-to-epoch sigma (Masci et al. 2019).
MAGZPSCI = {"g": 26.3, "r": 26.2, "i": 25.9}
MAGZPSCI_SCATTER = 0.05
# Readout-channel geometry: 3072 x 3080 pixels per quadrant.
QUADRANT_PIXELS = (3072, 3080)
# Primary-grid field numbers of the ZTF public survey.
FIELD_RANGE = (245, 880)
# ZTF reference images (Masci et al. 2019): built from 15-40 frames in 2018.
REFERENCE_JD_RANGE = (2458150.0, 2458450.0)
# ndethist counts "spatially coincident detections (3-sigma)" (ZTF alert schema), not only alerts.
RAW_DETECTION_SIGMA = 3.0
SS_NONE = -999.0  # ssdistnr/ssmagnr when no known solar-system object is near
SS_NAME_NONE = "null"
MJD_TO_JD = 2400000.5
MJD_EPOCH = datetime(1858, 11, 17)
ID_LETTERS = 7


@functools.cache
def schema() -> dict:
    """The parsed ZTF 4.02 alert schema (lenga's normalised copy; see tests/unit/test_sim_schema.py)."""
    with open(SCHEMA_PATH) as fh:
        return fastavro.parse_schema(json.load(fh))


@functools.cache
def _prv_fields() -> tuple[str, ...]:
    return tuple(_union_branches("ztf.alert.prv_candidate"))


@functools.cache
def _union_branches(record_type: str) -> dict[str, str | None]:
    """Field name -> the non-null branch of its ``["null", T]`` union (None for plain fields)."""
    rec = schema()["__named_schemas"][record_type]
    return {f["name"]: (f["type"][1] if isinstance(f["type"], list) else None) for f in rec["fields"]}


def _hinted(record_type: str, rec: dict) -> dict:
    """Name each non-null union value's branch with fastavro's tuple notation, ``(type, value)``.

    History records are written once per alert that carries them; naming the branch spares
    fastavro a validation per union field (about 20% of their encoding time). fastavro.validate
    and every reader see the same record.
    """
    branches = _union_branches(record_type)
    return {k: ((branches[k], v) if branches[k] is not None and v is not None else v) for k, v in rec.items()}


def _mjd_to_datetime(mjd: float) -> datetime:
    return MJD_EPOCH + timedelta(days=float(mjd))


def object_name(rank: int, year: int, offset: int) -> str:
    """objectId ``ZTF<yy><7 letters>``: the letters spell ``offset + rank`` in base 26."""
    value = offset + rank
    letters = []
    for _ in range(ID_LETTERS):
        value, digit = divmod(value, 26)
        letters.append(chr(ord("a") + digit))
    return f"ZTF{year % 100:02d}{''.join(reversed(letters))}"


def exposure_pid(mjd: np.ndarray, rcid: int) -> np.ndarray:
    """ZTF processing id of the exposures at ``mjd`` on readout channel ``rcid``."""
    nid = np.floor(mjd).astype(np.int64) - NID_EPOCH_MJD
    frac = np.floor((mjd % 1.0) * 1e5).astype(np.int64)
    return nid * 10**9 + frac * 10**4 + rcid * 100 + 15


def assign_candids(objects: list[SimObject], offset: int) -> None:
    """Give every ZTF object its objectId, pids, candids and survey metadata (time ordered)."""
    rng_meta = {o.index: np.random.default_rng((*o.seed, 1)) for o in objects}
    tbl: dict[int, int] = {}
    detections = []
    for o in objects:
        rng = rng_meta[o.index]
        rcid = int(rng.integers(0, 64))
        n = len(o.epochs)
        meta = {
            "field": int(rng.integers(*FIELD_RANGE)),
            "rcid": rcid,
            "xpos": float(rng.uniform(20, QUADRANT_PIXELS[0] - 20)),
            "ypos": float(rng.uniform(20, QUADRANT_PIXELS[1] - 20)),
            "pid": exposure_pid(o.epochs.mjd, rcid),
            "magzpsci": np.array([MAGZPSCI[b] for b in o.epochs.band]) + rng.normal(0, MAGZPSCI_SCATTER, n),
            "drb": np.clip(o.reliability + rng.normal(0, 0.05, n), 0.0, 1.0),
            "chipsf": rng.gamma(4.0, 0.3, n),
            "jdstartref": float(rng.uniform(*REFERENCE_JD_RANGE)),
            "nframesref": int(rng.integers(15, 41)),
            "objectidps1": int(rng.integers(10**16, 2 * 10**17)),
            "sgscore1": _sgscore(o, rng),
            "neighbour_arcsec": _neighbour_distance(o, rng),
            "neighbour_mag": _neighbour_mag(o, rng),
            "nmtchps": int(rng.integers(1, 40)),
            "ssnamenr": f"{int(rng.integers(1000, 700000))}" if o.model.stamp_class == "asteroid" else SS_NAME_NONE,
            "ssdistnr": float(rng.uniform(0.1, 2.0)) if o.model.stamp_class == "asteroid" else SS_NONE,
            "candid": np.full(n, -1, dtype=np.int64),
            "neighbour_shape": _neighbour_shape(o, rng),
            "morphology": _morphology(o, rng),
        }
        o.cache["ztf"] = meta
        first = o.first_detection_mjd()
        o.cache["objectId"] = object_name(o.object_id, _mjd_to_datetime(first if np.isfinite(first) else 0).year, offset)
        for j in np.flatnonzero(o.detected):
            detections.append((o.source_id[j], o, j))
    for _, o, j in sorted(detections, key=lambda d: d[0]):
        pid = int(o.cache["ztf"]["pid"][j])
        tbl[pid] = tbl.get(pid, -1) + 1
        o.cache["ztf"]["candid"][j] = pid * 10**6 + 10000 + tbl[pid]


def _sgscore(o: SimObject, rng: np.random.Generator) -> float:
    """PS1 star/galaxy score of the nearest source: ~1 for stars, ~0 for galaxies (Tachibana &
    Miller 2018); AGN hosts are intermediate; objects without a counterpart have an unrelated
    neighbour."""
    if o.counterpart == "star":
        return float(rng.uniform(0.9, 1.0))
    if o.counterpart == "galaxy":
        return float(rng.uniform(0.0, 0.5 if o.model.stamp_class == "AGN" else 0.2))
    return float(rng.random())


def _neighbour_distance(o: SimObject, rng: np.random.Generator) -> float:
    """Distance [arcsec] from the source to the nearest catalogued source (itself, its host, or a
    random field source for objects without a counterpart)."""
    scale = o.survey.pixel_scale_arcsec
    if o.counterpart == "galaxy":
        return float(np.hypot(*o.host_offset_pix) * scale + rng.uniform(0.0, 0.3))
    if o.counterpart == "star":
        return float(rng.uniform(0.0, 0.4))
    return float(rng.uniform(3.0, 30.0))


def _neighbour_mag(o: SimObject, rng: np.random.Generator) -> float:
    if o.counterpart == "galaxy":
        return float(o.host_mag)
    if o.counterpart == "star":
        known = o.reference_mag.size and np.isfinite(o.reference_mag[0])
        return float(o.reference_mag[0]) if known else float(rng.uniform(12.0, 16.0))
    return float(rng.uniform(17.0, 21.5))


def _neighbour_shape(o: SimObject, rng: np.random.Generator) -> tuple[float, float]:
    """DAOPhot (chi, sharp) of the nearest reference-image source (Stetson 1987): a star fits the
    PSF (chi ~ 1, sharp ~ 0), a galaxy is broader than the PSF (chi of several, sharp > 0); the
    random neighbour of a source without a counterpart is either."""
    kind = o.counterpart if o.counterpart != "none" else ("star" if rng.random() < 0.5 else "galaxy")
    if kind == "star":
        return float(rng.uniform(0.5, 1.5)), float(rng.uniform(-0.05, 0.05))
    return float(rng.uniform(1.5, 8.0)), float(rng.uniform(0.1, 0.8))


# SExtractor shape of the difference-image source per artefact kind, relative to a point source:
# (FWHM factor range or None for an absolute width in pixels, elongation range, CLASS_STAR range).
# Cosmic rays and hot pixels are narrower than any PSF (1 pixel), bad columns and edges elongated,
# dipoles and saturated residuals broader (Duev et al. 2019, Fig. 2).
POINT_SHAPE = ((0.9, 1.15), (1.0, 1.3), (0.7, 1.0))
ARTIFACT_SHAPE = {
    "dipole": ((1.0, 1.6), (1.3, 2.5), (0.2, 0.9)),
    "cosmic_ray": (None, (1.0, 3.0), (0.3, 1.0)),
    "hot_pixel": (None, (1.0, 1.5), (0.3, 1.0)),
    "bad_column": ((0.8, 1.5), (2.0, 6.0), (0.0, 0.6)),
    "saturated_star": ((1.5, 3.0), (1.0, 1.5), (0.0, 0.8)),
    "edge": ((1.0, 2.0), (1.5, 4.0), (0.0, 0.7)),
    "nan_region": ((1.0, 2.0), (1.0, 2.0), (0.0, 0.8)),
}
# FWHM [pix] that SExtractor reports for a one-pixel feature.
SHARP_FWHM_PIX = (0.6, 1.2)
# Centre box in which ZTF counts bad pixels (nbad: "number of bad pixels in a 5x5 pixel stamp").
NBAD_BOX = 5


def _morphology(o: SimObject, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-epoch fwhm [pix], elong and classtar of the difference-image source, agreeing with the
    stamps: PSF-like for real sources, per-kind shapes for artefacts (:data:`ARTIFACT_SHAPE`)."""
    n = len(o.epochs)
    seeing_pix = o.epochs.seeing / o.survey.pixel_scale_arcsec
    fwhm_range, elong_range, star_range = ARTIFACT_SHAPE[o.artifact] if o.artifact else POINT_SHAPE
    fwhm = rng.uniform(*SHARP_FWHM_PIX, n) if fwhm_range is None else seeing_pix * rng.uniform(*fwhm_range, n)
    return {"fwhm": fwhm, "elong": rng.uniform(*elong_range, n), "classtar": rng.uniform(*star_range, n)}


def _nbad(o: SimObject, j: int) -> int:
    """Masked (NaN) pixels of the difference stamp in the central 5x5 box; only artefacts mask."""
    if o.artifact is None:
        return 0
    diff = o.stamps(j).difference
    c = diff.shape[0] // 2
    h = NBAD_BOX // 2
    return int(np.isnan(diff[c - h : c + h + 1, c - h : c + h + 1]).sum())


def _epoch_common(o: SimObject, j: int) -> dict:
    """Fields shared by candidate, prv_candidate and upper-limit records of epoch ``j``."""
    meta = o.cache["ztf"]
    band = o.epochs.band[j]
    pid = int(meta["pid"][j])
    date = _mjd_to_datetime(o.epochs.mjd[j]).strftime("%Y%m%d")
    frac = int((o.epochs.mjd[j] % 1.0) * 1e6)
    return {
        "jd": float(o.epochs.mjd[j] + MJD_TO_JD),
        "fid": FID[band],
        "pid": pid,
        "diffmaglim": float(o.epochs.depth[j]),
        "pdiffimfilename": f"ztf_{date}{frac:06d}_{meta['field']:06d}_z{band}_c{meta['rcid'] // 4 + 1:02d}"
        f"_o_q{meta['rcid'] % 4 + 1}_scimrefdiffimg.fits",
        "programpi": PROGRAM_PI,
        "programid": PROGRAM_ID,
        "nid": pid // 10**9,
        "rcid": meta["rcid"],
        "field": meta["field"],
        "magzpsci": float(meta["magzpsci"][j]),
        "magzpsciunc": 1e-5,
        "magzpscirms": 0.03,
        "rbversion": RB_VERSION,
    }


def _detection(o: SimObject, j: int) -> dict:
    """The full candidate record of detection ``j`` (prv_candidates use the subset they define)."""
    key = ("det", j)
    if key in o.cache:
        return o.cache[key]
    meta = o.cache["ztf"]
    rec = _epoch_common(o, j)
    flux, err = float(o.phot.flux[j]), float(o.phot.flux_err[j])
    mag = AB_ZEROPOINT_NJY - 2.5 * np.log10(abs(flux))
    sig = MAG_ERR_PER_REL_FLUX * err / abs(flux)
    shape = meta["morphology"]
    fwhm_pix = float(shape["fwhm"][j])
    elong = float(shape["elong"][j])
    chinr, sharpnr = meta["neighbour_shape"]
    scale = o.survey.pixel_scale_arcsec
    dist = meta["neighbour_arcsec"]
    rec.update(
        candid=int(meta["candid"][j]),
        isdiffpos="t" if flux > 0 else "f",
        tblid=int(meta["candid"][j] % 1000),
        xpos=meta["xpos"],
        ypos=meta["ypos"],
        ra=o.ra,
        dec=o.dec,
        magpsf=float(mag),
        sigmapsf=float(sig),
        chipsf=float(meta["chipsf"][j]),
        magap=float(mag + 0.02),
        sigmagap=float(sig * 1.1),
        distnr=dist / scale,
        magnr=meta["neighbour_mag"],
        sigmagnr=0.02,
        chinr=chinr,
        sharpnr=sharpnr,
        magdiff=0.02,
        fwhm=fwhm_pix,
        classtar=float(shape["classtar"][j]),
        mindtoedge=float(min(meta["xpos"], meta["ypos"])),
        magfromlim=float(o.epochs.depth[j] - mag),
        seeratio=1.0,
        aimage=fwhm_pix * np.sqrt(elong) / 2.355,
        bimage=fwhm_pix / np.sqrt(elong) / 2.355,
        elong=elong,
        nneg=0,
        nbad=_nbad(o, j),
        rb=float(o.reliability[j]),
        ssdistnr=meta["ssdistnr"],
        ssmagnr=float(mag) if meta["ssnamenr"] != SS_NAME_NONE else SS_NONE,
        ssnamenr=meta["ssnamenr"],
        sumrat=1.0,
        ranr=o.ra,
        decnr=o.dec,
        scorr=float(abs(flux) / err),
    )
    o.cache[key] = rec
    return rec


def _upper_limit(o: SimObject, j: int) -> dict:
    key = ("ul", j)
    if key not in o.cache:
        rec = dict.fromkeys(_prv_fields())
        rec.update(_epoch_common(o, j))
        o.cache[key] = _hinted("ztf.alert.prv_candidate", rec)
    return o.cache[key]


def _prv(o: SimObject, j: int) -> dict:
    if not o.detected[j]:
        return _upper_limit(o, j)
    key = ("prv", j)
    if key not in o.cache:
        det = _detection(o, j)
        o.cache[key] = _hinted("ztf.alert.prv_candidate", {name: det.get(name) for name in _prv_fields()})
    return o.cache[key]


def _forced(o: SimObject, j: int) -> dict:
    key = ("fp", j)
    if key in o.cache:
        return o.cache[key]
    meta = o.cache["ztf"]
    zp = float(meta["magzpsci"][j])
    dn_per_njy = 10 ** (0.4 * (zp - AB_ZEROPOINT_NJY))
    band = o.epochs.band[j]
    rec = {
        "field": meta["field"],
        "rcid": meta["rcid"],
        "fid": FID[band],
        "pid": int(meta["pid"][j]),
        "rfid": meta["field"] * 10**6 + 120000 + FID[band] * 100 + meta["rcid"],
        "sciinpseeing": float(o.epochs.seeing[j] / o.survey.pixel_scale_arcsec),
        "magzpsci": zp,
        "exptime": EXPTIME_S,
        "diffmaglim": float(o.epochs.depth[j]),
        "programid": PROGRAM_ID,
        "jd": float(o.epochs.mjd[j] + MJD_TO_JD),
        "forcediffimflux": float(o.phot.flux[j] * dn_per_njy),
        "forcediffimfluxunc": float(o.phot.flux_err[j] * dn_per_njy),
        "procstatus": "0",
        "distnr": meta["neighbour_arcsec"],
        "ranr": o.ra,
        "decnr": o.dec,
        "magnr": meta["neighbour_mag"],
    }
    o.cache[key] = _hinted("ztf.alert.fp_hist", rec)
    return o.cache[key]


def history(o: SimObject, i: int) -> np.ndarray:
    """Indices of the epochs in the ``history_days`` before epoch ``i`` (``i`` excluded)."""
    t = o.epochs.mjd
    return np.flatnonzero((t < t[i]) & (t >= t[i] - o.survey.history_days))


def _stamps(o: SimObject, i: int) -> dict[str, dict]:
    """The three gzipped FITS cutouts of epoch ``i``, in DN."""
    triplet = o.stamps(i)
    dn = np.float32(10 ** (0.4 * (o.cache["ztf"]["magzpsci"][i] - AB_ZEROPOINT_NJY)))
    candid, pid = int(o.cache["ztf"]["candid"][i]), int(o.cache["ztf"]["pid"][i])
    out = {}
    for field, image, suffix in (
        ("cutoutScience", triplet.science, "targ_sci"),
        ("cutoutTemplate", triplet.template, "ref"),
        ("cutoutDifference", triplet.difference, "targ_scimref"),
    ):
        out[field] = {
            "fileName": f"candid{candid}_pid{pid}_{suffix}.fits.gz",
            "stampData": cutouts.gzip_bytes(cutouts.fits_bytes(image * dn, "ztf")),
        }
    return out


def build_record(o: SimObject, i: int) -> dict:
    """The ``ztf.alert`` record of detection ``i`` of object ``o`` (schema 4.02).

    History entries name their union branches in fastavro's tuple notation (see :func:`_hinted`);
    decode the encoded bytes to get plain values.
    """
    if not o.detected[i]:
        raise ValueError(f"epoch {i} of object {o.cache.get('objectId')} is not a detection: no alert")
    meta = o.cache["ztf"]
    past = history(o, i)
    # ndethist/jdstarthist count ZTF's raw (3-sigma) detections at the position, not only alerts.
    raw = np.abs(o.phot.flux[: i + 1]) >= RAW_DETECTION_SIGMA * o.phot.flux_err[: i + 1]
    all_det = np.flatnonzero(raw | o.detected[: i + 1])
    candidate = dict(_detection(o, i))
    candidate.update(
        ndethist=int(all_det.size),
        ncovhist=int(i + 1),
        jdstarthist=float(o.epochs.mjd[all_det[0]] + MJD_TO_JD),
        jdendhist=float(o.epochs.mjd[i] + MJD_TO_JD),
        tooflag=0,
        objectidps1=meta["objectidps1"],
        sgscore1=meta["sgscore1"],
        distpsnr1=meta["neighbour_arcsec"],
        srmag1=meta["neighbour_mag"],
        nmtchps=meta["nmtchps"],
        rfid=meta["field"] * 10**6 + 120000 + candidate["fid"] * 100 + meta["rcid"],
        jdstartref=meta["jdstartref"],
        jdendref=meta["jdstartref"] + 60.0,
        nframesref=meta["nframesref"],
        nmatches=1500,
        exptime=EXPTIME_S,
        drb=float(meta["drb"][i]),
        drbversion=DRB_VERSION,
    )
    record = {
        "schemavsn": SCHEMA_VERSION,
        "publisher": PUBLISHER,
        "objectId": o.cache["objectId"],
        "candid": candidate["candid"],
        "candidate": candidate,
        "prv_candidates": [_prv(o, j) for j in past],
        "fp_hists": [_forced(o, j) for j in past],
    }
    record.update(_stamps(o, i))
    return record


def encode(record: dict) -> bytes:
    """One Avro object-container file holding ``record``.

    Union branches are named with fastavro's tuple notation: without it fastavro picks the branch
    of ``prv_candidates``/``fp_hists``/cutouts by validating the whole value against each branch,
    which doubled the encoding time. The sync marker is derived from the candid (fastavro draws a
    random one otherwise), so the same record always gives the same bytes.
    """
    hinted = dict(record)
    for name in ("prv_candidates", "fp_hists"):
        if record[name] is not None:
            hinted[name] = ("array", record[name])
    for name in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
        if record[name] is not None:
            hinted[name] = ("ztf.alert.cutout", record[name])
    sync = hashlib.blake2b(record["candid"].to_bytes(8, "big"), digest_size=16).digest()
    buf = io.BytesIO()
    fastavro.writer(buf, schema(), [hinted], sync_marker=sync)
    return buf.getvalue()


def truth(o: SimObject, i: int) -> dict:
    """What alert ``i`` of ``o`` contains, as keys a decoder's tables would hold once each:
    detections by candid, upper limits and forced photometry by (objectId, jd, fid)."""
    past = history(o, i)
    det = [j for j in past if o.detected[j]] + [i]
    jd = o.epochs.mjd + MJD_TO_JD
    oid = o.cache["objectId"]
    return {
        "object_id": oid,
        "candid": int(o.cache["ztf"]["candid"][i]),
        "detections": tuple(int(o.cache["ztf"]["candid"][j]) for j in det),
        "upper_limits": tuple((oid, float(jd[j]), FID[o.epochs.band[j]]) for j in past if not o.detected[j]),
        "forced": tuple((oid, float(jd[j]), FID[o.epochs.band[j]]) for j in past),
    }
