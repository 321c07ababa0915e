"""ALeRCE's magnitude correction: apparent magnitudes of ZTF sources that sit on a reference source.

A ZTF ``magpsf`` is the magnitude of the *difference* flux. For a source present in the reference
image (a variable star, an AGN, a nuclear transient) the apparent magnitude is the reference flux
plus the signed difference flux (Förster et al. 2021, AJ 161, 242, sec. 3.3; ALeRCE's correction
step). With f_ref = 10^(-0.4 magnr), f_diff = 10^(-0.4 magpsf) and s = +1/-1 (``isdiffpos``)::

    magpsf_corr       = -2.5 log10(f_ref + s f_diff)
    sigmapsf_corr     = sqrt(f_diff^2 sigmapsf^2 - f_ref^2 sigmagnr^2) / (f_ref + s f_diff)
    sigmapsf_corr_ext = f_diff sigmapsf / (f_ref + s f_diff)

``sigmapsf_corr`` treats the reference error as already contained in the difference error (point
sources); ``sigmapsf_corr_ext`` is the error of an extended source, where it is not. A total flux
at or below zero, or a reference error larger than the difference error, has no finite value:
ALeRCE then stores :data:`NOT_MEASURABLE_MAG` (100), and so does lenga.

Flags, as ALeRCE defines them:

* ``corrected``: the nearest reference-image source is closer than :data:`DISTANCE_THRESHOLD_ARCSEC`
  (``distnr`` < 1.4"); only those detections get corrected magnitudes (NaN otherwise).
* ``dubious``: the (lack of) correction is doubtful: a negative difference without a reference
  source to subtract from, or a detection whose ``corrected`` differs from that of the object's
  first detection in the same band. It depends on the whole light curve, not on the detection
  alone (:func:`first_corrected`).
* ``stellar``: the source is likely a star: it is on a ZTF reference source and either the closest
  PS1 source is near and star-like (``distpsnr1`` < 1.4", ``sgscore1`` > 0.4), or there is no PS1
  source near and the ZTF reference source is point-like (``chinr`` < 2, -0.13 < ``sharpnr`` <
  0.1). ALeRCE's pipeline writes the sharpness range as ``(-0.13 < sharpnr) < 0.1``, which Python
  reads as ``not (sharpnr > -0.13)``; lenga follows the paper's and the constants' intent.

At object level (ALeRCE's magstats): ``corrected`` and ``stellar`` are those of the object's first
detection, ``ndubious`` counts the dubious detections.

Pure numpy: arrays in, arrays out, NaN for a missing value. The per-detection values are computed
at decode (:mod:`lenga.survey.ztf`), the curve-level ones in the aggregation
(:mod:`lenga.curves.magstats`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Largest distance to the nearest reference-image source (``distnr``) and to the closest PS1
#: source (``distpsnr1``) at which a detection counts as on that source, arcsec.
DISTANCE_THRESHOLD_ARCSEC = 1.4
#: Smallest PS1 star/galaxy score (``sgscore1``, Tachibana & Miller 2018) of a star.
STAR_SCORE_THRESHOLD = 0.4
#: Largest DAOPhot chi (``chinr``) of a point-like reference source.
CHINR_THRESHOLD = 2.0
#: Open range of DAOPhot sharpness (``sharpnr``) of a point-like reference source.
SHARPNR_RANGE = (-0.13, 0.1)
#: Magnitude (and error) ALeRCE stores where the corrected value is infinite: zero or negative total
#: flux, or a reference error larger than the difference error.
NOT_MEASURABLE_MAG = 100.0


def is_corrected(distnr) -> np.ndarray:
    """Whether each detection lies on a reference-image source (``distnr`` < 1.4"); False when
    ``distnr`` is unknown (NaN)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(distnr, dtype=float) < DISTANCE_THRESHOLD_ARCSEC


def corrected_magnitudes(magpsf, sigmapsf, sign, magnr, sigmagnr, corrected
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(magpsf_corr, sigmapsf_corr, sigmapsf_corr_ext)`` of each detection (module docstring):
    NaN where it is not ``corrected``, :data:`NOT_MEASURABLE_MAG` where the value is infinite.
    ``sign`` is +1 for a positive difference (``isdiffpos``), -1 for a negative one."""
    magpsf, sigmapsf, sign, magnr, sigmagnr = (np.asarray(v, dtype=float)
                                               for v in (magpsf, sigmapsf, sign, magnr, sigmagnr))
    reference_flux = 10.0 ** (-0.4 * magnr)
    difference_flux = 10.0 ** (-0.4 * magpsf)
    total_flux = np.maximum(reference_flux + sign * difference_flux, 0.0)
    point_variance = (difference_flux * sigmapsf) ** 2 - (reference_flux * sigmagnr) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = -2.5 * np.log10(total_flux)
        error = np.where(point_variance < 0, np.inf, np.sqrt(np.maximum(point_variance, 0.0)) / total_flux)
        extended_error = difference_flux * sigmapsf / total_flux
    corrected = np.asarray(corrected, dtype=bool)
    return tuple(np.where(corrected, np.where(np.isinf(values), NOT_MEASURABLE_MAG, values), np.nan)
                 for values in (magnitude, error, extended_error))


def first_corrected(group, mjd, corrected) -> np.ndarray:
    """For each detection, ``corrected`` of the first detection (smallest ``mjd``; the earliest row
    on a tie) of its group (one object and band, coded as ``group``)."""
    frame = pd.DataFrame({"group": np.asarray(group), "mjd": np.asarray(mjd, dtype=float),
                          "corrected": np.asarray(corrected, dtype=bool)})
    first_row = frame.groupby("group", sort=False)["mjd"].transform("idxmin").to_numpy()
    return frame["corrected"].to_numpy()[first_row]


def is_dubious(corrected, negative, first_is_corrected) -> np.ndarray:
    """Whether each detection's correction, or lack of it, is doubtful: a negative difference not
    on a reference source, or ``corrected`` unlike the first detection of its object and band."""
    corrected, negative, first_is_corrected = (np.asarray(v, dtype=bool)
                                               for v in (corrected, negative, first_is_corrected))
    return (~corrected & negative) | (corrected != first_is_corrected)


def is_stellar(distnr, distpsnr1, sgscore1, chinr, sharpnr) -> np.ndarray:
    """Whether each detection is likely of a star (module docstring); False where a needed value
    is unknown."""
    distpsnr1, sgscore1, chinr, sharpnr = (np.asarray(v, dtype=float) for v in (distpsnr1, sgscore1, chinr, sharpnr))
    with np.errstate(invalid="ignore"):
        near_ps1 = distpsnr1 < DISTANCE_THRESHOLD_ARCSEC
        star_in_ps1 = near_ps1 & (sgscore1 > STAR_SCORE_THRESHOLD)
        point_like = (chinr < CHINR_THRESHOLD) & (SHARPNR_RANGE[0] < sharpnr) & (sharpnr < SHARPNR_RANGE[1])
    return is_corrected(distnr) & (star_in_ps1 | (~near_ps1 & point_like))

