"""Flux and AB-magnitude conventions shared by every survey (defined once, vectorized).

lenga stores both representations of a difference-image measurement: ZTF ships magnitudes
(``magpsf``/``sigmapsf`` of the absolute difference flux plus the sign ``isdiffpos``), LSST ships
fluxes in nJy (``psfFlux``/``psfFluxErr``, signed). Classifiers want one or the other, so every
detection carries both, derived with the functions below; features take whichever a detection
has (:func:`magnitudes` for variability families, :func:`difference_flux` for supernova fits).

AB system (Oke & Gunn 1983, ApJ 266, 713): m_AB = -2.5 log10(f / 3631 Jy). With f in nJy,
-2.5 log10(1e-9 / 3631) = 31.4000 (to 4 decimals), hence ``m = -2.5 log10(f_nJy) + 31.4``, the
convention of the Rubin Science Pipelines (``lsst.afw.image.PhotoCalib``) and of Fink/ALeRCE.

Errors propagate to first order: sigma_m = (2.5 / ln 10) sigma_f / f = 1.0857 sigma_f / f
(e.g. Bevington & Robinson, *Data Reduction and Error Analysis*, eq. 3.14).
"""

from __future__ import annotations

import numpy as np

#: AB zero point for fluxes in nanojansky: -2.5 log10(1e-9 Jy / 3631 Jy).
AB_ZEROPOINT_NJY = 31.4
#: 2.5 / ln(10): converts a relative flux error into a magnitude error.
MAG_ERR_PER_REL_FLUX = 2.5 / np.log(10.0)

#: ZTF ``isdiffpos`` spellings to the sign of the difference flux: 't'/'1' when the candidate
#: comes from science - reference (positive), 'f'/'0' from reference - science (ZTF Avro schema
#: docs, ``candidate.isdiffpos``). Any other value has no sign.
ISDIFFPOS = {"t": True, "1": True, "f": False, "0": False}


def _as_float(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def mag_to_flux(mag, mag_err=None) -> tuple[np.ndarray, np.ndarray | None]:
    """AB magnitude (and its error) to flux in nJy (and its error); NaN stays NaN."""
    mag = _as_float(mag)
    flux = np.power(10.0, -0.4 * (mag - AB_ZEROPOINT_NJY))
    if mag_err is None:
        return flux, None
    return flux, _as_float(mag_err) * flux / MAG_ERR_PER_REL_FLUX


def flux_to_mag(flux, flux_err=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Flux in nJy (and its error) to AB magnitude (and its error).

    A magnitude is undefined for a flux <= 0 or NaN: those entries come back NaN (never a
    clipped or absolute-valued number), so callers can turn them into nulls.
    """
    flux = _as_float(flux)
    positive = flux > 0
    safe = np.where(positive, flux, 1.0)
    mag = np.where(positive, AB_ZEROPOINT_NJY - 2.5 * np.log10(safe), np.nan)
    if flux_err is None:
        return mag, None
    mag_err = np.where(positive, MAG_ERR_PER_REL_FLUX * _as_float(flux_err) / safe, np.nan)
    return mag, mag_err


def difference_flux_from_mag(magpsf, sigmapsf, positive) -> tuple[np.ndarray, np.ndarray]:
    """Signed difference flux (nJy) from ZTF's magnitude of |flux| and the sign flag.

    ``positive`` is a boolean array (True where ``isdiffpos`` is 't'/'1'); ZTF's magpsf is the
    magnitude of the absolute difference flux, so the sign has to be re-applied here.
    """
    flux, flux_err = mag_to_flux(magpsf, sigmapsf)
    return np.where(np.asarray(positive, dtype=bool), flux, -flux), flux_err


def difference_mag_from_flux(psf_flux, psf_flux_err) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LSST signed difference flux to ZTF-style (magpsf, sigmapsf, isdiffpos).

    magpsf is the magnitude of |flux| (the ZTF convention, so both surveys' magpsf mean the same
    thing); isdiffpos is ``flux > 0``. A zero or NaN flux gives NaN magnitudes.
    """
    flux = _as_float(psf_flux)
    mag, mag_err = flux_to_mag(np.abs(flux), psf_flux_err)
    return mag, mag_err, flux > 0


def zeropoint_flux_to_njy(flux, zeropoint) -> np.ndarray:
    """Convert a flux in image units (DN) with AB zero point ``zeropoint`` to nJy.

    By definition m = zp - 2.5 log10(f_DN) = 31.4 - 2.5 log10(f_nJy), so
    f_nJy = f_DN * 10**(-0.4 (zp - 31.4)). Used for ZTF forced photometry (``forcediffimflux``,
    ``forcediffimfluxunc`` with ``magzpsci``; ZTF forced-photometry service guide, Masci et al.
    2023, arXiv:2305.16279, sect. 6). Errors convert with the same factor.
    """
    return _as_float(flux) * np.power(10.0, -0.4 * (_as_float(zeropoint) - AB_ZEROPOINT_NJY))


def magnitudes(magpsf: np.ndarray, sigmapsf: np.ndarray, flux: np.ndarray, flux_err: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude and error: ``magpsf`` where given, else from a positive ``psfFlux`` (NaN otherwise)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        from_flux = np.where(flux > 0, AB_ZEROPOINT_NJY - 2.5 * np.log10(flux), np.nan)
        from_flux_err = np.where(flux > 0, MAG_ERR_PER_REL_FLUX * flux_err / flux, np.nan)
    given = np.isfinite(magpsf) & np.isfinite(sigmapsf)
    return np.where(given, magpsf, from_flux), np.where(given, sigmapsf, from_flux_err)


def difference_flux(flux: np.ndarray, flux_err: np.ndarray, magpsf: np.ndarray, sigmapsf: np.ndarray,
                    isdiffpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed difference flux [nJy] and error: ``psfFlux`` where given, else from ``magpsf``/``isdiffpos``."""
    size = 10.0 ** (-0.4 * (magpsf - AB_ZEROPOINT_NJY))
    from_mag = np.where(isdiffpos, size, -size)
    from_mag_err = size * sigmapsf / MAG_ERR_PER_REL_FLUX
    given = np.isfinite(flux) & np.isfinite(flux_err)
    return np.where(given, flux, from_mag), np.where(given, flux_err, from_mag_err)
