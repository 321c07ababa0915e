"""Magnitudes <-> difference fluxes, for surveys that deliver only one of them.

AB magnitudes (Oke & Gunn 1983): m = -2.5 log10(f / 3631 Jy), i.e. f[nJy] = 10**(-0.4 (m - 31.4)).
ZTF alerts carry ``magpsf`` of the absolute difference flux plus its sign ``isdiffpos``; LSST alerts
carry the signed ``psfFlux`` in nJy. Variability families work on magnitudes (ALeRCE), parametric
supernova fits on signed fluxes (Villar et al. 2019).
"""

from __future__ import annotations

import numpy as np

#: AB zero point for fluxes in nJy: 2.5 log10(3631e9).
AB_ZEROPOINT_NJY = 31.4

#: d(mag)/d(ln flux) = 2.5 / ln 10: first-order error propagation between flux and magnitude.
MAG_PER_LN_FLUX = 2.5 / np.log(10.0)


def magnitudes(magpsf: np.ndarray, sigmapsf: np.ndarray, flux: np.ndarray, flux_err: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude and error: ``magpsf`` where given, else from a positive ``psfFlux`` (NaN otherwise)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        from_flux = np.where(flux > 0, AB_ZEROPOINT_NJY - 2.5 * np.log10(flux), np.nan)
        from_flux_err = np.where(flux > 0, MAG_PER_LN_FLUX * flux_err / flux, np.nan)
    given = np.isfinite(magpsf) & np.isfinite(sigmapsf)
    return np.where(given, magpsf, from_flux), np.where(given, sigmapsf, from_flux_err)


def difference_flux(flux: np.ndarray, flux_err: np.ndarray, magpsf: np.ndarray, sigmapsf: np.ndarray,
                    isdiffpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed difference flux [nJy] and error: ``psfFlux`` where given, else from ``magpsf``/``isdiffpos``."""
    size = 10.0 ** (-0.4 * (magpsf - AB_ZEROPOINT_NJY))
    from_mag = np.where(isdiffpos, size, -size)
    from_mag_err = size * sigmapsf / MAG_PER_LN_FLUX
    given = np.isfinite(flux) & np.isfinite(flux_err)
    return np.where(given, flux, from_mag), np.where(given, flux_err, from_mag_err)
