"""Context flags read from the alert itself: known solar-system object, probable star.

Surveys cross-match every detection before the alert is sent: ZTF against the MPC orbit catalogue
(``ssdistnr``, ``ssmagnr``) and Pan-STARRS1 (``sgscore1``, ``distpsnr1``; Masci et al. 2019, PASP 131,
018003, and the ZTF Avro schema), LSST by associating each diaSource either with a diaObject or with a
known ssObject (``ssObjectId``; LSST alert schema v9/v10 diaSource).  These flags cost no catalog.

ZTF encodes "no value" as -999 (or null): every test below is false for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# ZTF known-SSO rule, as Fink's extragalactic-transient filter (fink-science): the predicted position
# of a numbered/known minor planet lies within this many arcsec of the candidate (ssdistnr).  Other
# brokers use 10-15 arcsec (AMPEL); the value is an argument.
SSO_MAX_DISTANCE_ARCSEC = 5.0

# Probable-star rule of ALeRCE (Förster et al. 2021, AJ 161, 242; Sánchez-Sáez et al. 2021, AJ 161,
# 141): the closest PS1 source is within 1 arcsec and is star-like in the Tachibana & Miller (2018,
# PASP 130, 128001) star/galaxy score (0 = galaxy, 1 = star).
STAR_SGSCORE_MIN = 0.5
STAR_DISTPSNR_MAX_ARCSEC = 1.0


def _floats(values: object) -> np.ndarray:
    """Float64 array with nulls (None, pandas NA) as NaN, so that every comparison is false for them."""
    return np.asarray(values, dtype=np.float64)


def known_sso_ztf(
    ssdistnr: np.ndarray, ssmagnr: np.ndarray, max_distance_arcsec: float = SSO_MAX_DISTANCE_ARCSEC
) -> np.ndarray:
    """ZTF candidate at a known solar-system object: 0 <= ssdistnr <= max distance and ssmagnr given.

    ``ssmagnr`` must be a real magnitude (>= 0): ZTF fills both fields with -999 when no minor planet
    was predicted nearby.
    """
    distance, magnitude = _floats(ssdistnr), _floats(ssmagnr)
    if distance.shape != magnitude.shape:
        raise ValueError(f"ssdistnr and ssmagnr differ in shape: {distance.shape} vs {magnitude.shape}")
    return (distance >= 0) & (distance <= max_distance_arcsec) & (magnitude >= 0)


def known_sso_lsst(ss_object_id: np.ndarray) -> np.ndarray:
    """LSST diaSource associated with a known ssObject: ``ssObjectId`` is neither null nor 0.

    The Rubin pipelines associate each diaSource either with a diaObject or with an ssObject.  The
    schema documents null for "none", but the real LSSTCam alerts of 2025-09 (v9.0) carry 0 there.
    """
    ids = pd.Series(np.asarray(ss_object_id, dtype=object), dtype="Int64")
    return ids.fillna(0).ne(0).to_numpy(dtype=bool)


def probable_star(
    sgscore1: np.ndarray,
    distpsnr1: np.ndarray,
    min_sgscore: float = STAR_SGSCORE_MIN,
    max_distance_arcsec: float = STAR_DISTPSNR_MAX_ARCSEC,
) -> np.ndarray:
    """ZTF candidate on a probable star: sgscore1 > 0.5 and 0 <= distpsnr1 < 1 arcsec (ALeRCE)."""
    score, distance = _floats(sgscore1), _floats(distpsnr1)
    if score.shape != distance.shape:
        raise ValueError(f"sgscore1 and distpsnr1 differ in shape: {score.shape} vs {distance.shape}")
    return (score > min_sgscore) & (distance >= 0) & (distance < max_distance_arcsec)


def alert_flags(
    ssdistnr: np.ndarray, ssmagnr: np.ndarray, ss_object_id: np.ndarray, sgscore1: np.ndarray, distpsnr1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(known_sso, probable_star) per alert of either survey, from the columns of lenga's alerts table.

    Each rule reads only its own survey's columns, which are null for the other survey's alerts, so
    it is false there: known_sso is the ZTF rule or the LSST rule; probable_star needs ZTF's PS1 fields.
    """
    known_sso = known_sso_ztf(ssdistnr, ssmagnr) | known_sso_lsst(ss_object_id)
    return known_sso, probable_star(sgscore1, distpsnr1)
