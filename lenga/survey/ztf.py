"""ZTF alert record (schemas 3.x and 4.02, https://zwickytransientfacility.github.io/ztf-avro-alert/)
to lenga rows.

* the alert's ``candidate`` -> the alert row and one detection (``from_history`` false);
* ``prv_candidates`` with a ``candid`` -> history detections; without one -> upper limits (ZTF
  writes a non-detection as a prv_candidate with null candid and only jd/fid/diffmaglim set);
* ``fp_hists`` (4.02) -> forced photometry, ``forcediffimflux`` (DN) converted to nJy with the
  image zero point ``magzpsci`` (:func:`lenga.photometry.zeropoint_flux_to_njy`). Schema 3.5 of
  ZTF's forced-photometry development branch carried these fp_hist records inside
  ``prv_candidates`` (no ``candid`` field): they are recognised by ``forcediffimflux`` and treated
  as forced photometry too.

History points without a time, a known filter or valid photometry are dropped and counted
(``n_dropped_points``): ZTF nulls several fields of other programs' private points.
ZTF sentinels (``ssdistnr`` -999, ``ssnamenr`` 'null') are kept as ZTF wrote them.
"""

from __future__ import annotations

import numpy as np

from lenga import schema
from lenga.night import JD_MINUS_MJD, PALOMAR_LONGITUDE_DEG
from lenga.photometry import ISDIFFPOS, zeropoint_flux_to_njy
from lenga.survey import Extracted, InvalidAlert, finite, require_position_and_time

SURVEY = "ztf"
SITE_LONGITUDE_DEG = PALOMAR_LONGITUDE_DEG
#: Full name of the writer schema of every ZTF alert version.
SCHEMA_NAME = "ztf.alert"
#: ZTF filter ids (``fid``) to band names.
FID_TO_BAND = {1: "g", 2: "r", 3: "i"}
#: fp_hists value meaning "no measurement" (ZTF forced-photometry docs: -99999 when procstatus != 0).
FORCED_FLUX_MISSING = -99999.0

#: Field that marks a forced-photometry (fp_hist) record.
FORCED_FLUX_FIELD = "forcediffimflux"

#: Candidate fields copied to the alert row unchanged (schema.ALERTS documents them).
CONTEXT_COLUMNS = (*schema.ZTF_CONTEXT_COLUMNS, "rb", "diffmaglim")
#: Candidate fields copied to every detection row unchanged.
DETECTION_COLUMNS = ("candid", "jd", "fid", "ra", "dec", "magpsf", "sigmapsf", "diffmaglim", "rb", "drb", "programid")


def _cutout(value) -> bytes | None:
    return None if value is None else value["stampData"]


def _detection(candidate: dict, base: dict, from_history: bool) -> dict | None:
    """Detection row of a candidate/prv_candidate, or None when it is not a usable detection."""
    sign = ISDIFFPOS.get(candidate.get("isdiffpos"))
    band = FID_TO_BAND.get(candidate.get("fid"))
    if sign is None or band is None or not (finite(candidate.get("jd")) and finite(candidate.get("magpsf"))):
        return None
    row = {name: candidate.get(name) for name in DETECTION_COLUMNS}
    row.update(base, band=band, isdiffpos=sign, from_history=from_history)
    return row


def _upper_limit(candidate: dict, base: dict) -> dict | None:
    band = FID_TO_BAND.get(candidate.get("fid"))
    if band is None or not (finite(candidate.get("jd")) and finite(candidate.get("diffmaglim"))):
        return None
    return {**base, "kind": schema.UPPER_LIMIT, "jd": candidate["jd"], "fid": candidate["fid"], "band": band,
            "diffmaglim": candidate["diffmaglim"]}


def _forced(points: list[dict], base: dict) -> list[dict]:
    """Forced-photometry rows with fluxes in nJy; points without a flux or zero point are skipped."""
    kept = [
        p for p in points
        if FID_TO_BAND.get(p.get("fid")) is not None and finite(p.get("jd"))
        and finite(p.get(FORCED_FLUX_FIELD)) and p[FORCED_FLUX_FIELD] != FORCED_FLUX_MISSING
        and finite(p.get("forcediffimfluxunc")) and finite(p.get("magzpsci"))
    ]
    if not kept:
        return []
    zeropoint = np.array([p["magzpsci"] for p in kept])
    flux = zeropoint_flux_to_njy([p[FORCED_FLUX_FIELD] for p in kept], zeropoint)
    flux_err = zeropoint_flux_to_njy([p["forcediffimfluxunc"] for p in kept], zeropoint)
    return [
        {**base, "kind": schema.FORCED, "jd": p["jd"], "fid": p["fid"], "band": FID_TO_BAND[p["fid"]],
         "diffmaglim": p.get("diffmaglim"), "psfFlux": float(f), "psfFluxErr": float(e)}
        for p, f, e in zip(kept, flux, flux_err, strict=True)
    ]


def extract(record: dict, schemavsn: str | None = None) -> Extracted:
    """Map one ZTF alert record (as fastavro returns it) to the alert row and its history rows.

    Raises InvalidAlert when the alert's own candidate cannot be stored (NaN position or time,
    unknown filter, invalid isdiffpos or magnitude).
    """
    candidate = record["candidate"]
    candid = record["candid"]
    jd = candidate["jd"]
    require_position_and_time(candidate["ra"], candidate["dec"], None if jd is None else jd - JD_MINUS_MJD)
    base = {"survey": SURVEY, "objectId": record["objectId"], "alert_candid": candid}
    own = _detection(candidate, base, from_history=False)
    if own is None:
        raise InvalidAlert(
            f"invalid ZTF candidate photometry: fid={candidate.get('fid')}, "
            f"isdiffpos={candidate.get('isdiffpos')!r}, magpsf={candidate.get('magpsf')}"
        )
    detections = [own]
    non_detections: list[dict] = []
    prv, fp_hists = [], list(record.get("fp_hists") or [])
    for point in record.get("prv_candidates") or []:
        (fp_hists if FORCED_FLUX_FIELD in point else prv).append(point)
    n_prv_detections = 0
    for point in prv:
        if point.get("candid") is not None:
            n_prv_detections += 1
            row = _detection(point, base, from_history=True)
            if row is not None:
                detections.append(row)
        else:
            row = _upper_limit(point, base)
            if row is not None:
                non_detections.append(row)
    non_detections.extend(_forced(fp_hists, base))
    n_dropped = len(prv) + len(fp_hists) - (len(detections) - 1) - len(non_detections)

    alert = {name: candidate.get(name) for name in CONTEXT_COLUMNS}
    alert.update(
        survey=SURVEY,
        objectId=record["objectId"],
        candid=candid,
        alertId=candid,
        schemavsn=record.get("schemavsn", schemavsn),
        jd=candidate["jd"],
        band=own["band"],
        fid=candidate["fid"],
        ra=candidate["ra"],
        dec=candidate["dec"],
        magpsf=candidate["magpsf"],
        sigmapsf=candidate["sigmapsf"],
        isdiffpos=own["isdiffpos"],
        n_prv_detections=n_prv_detections,
        n_prv_non_detections=len(prv) - n_prv_detections,
        n_forced=len(fp_hists),
        n_dropped_points=n_dropped,
        cutoutScience=_cutout(record.get("cutoutScience")),
        cutoutTemplate=_cutout(record.get("cutoutTemplate")),
        cutoutDifference=_cutout(record.get("cutoutDifference")),
    )
    return Extracted(alert, detections, non_detections)
