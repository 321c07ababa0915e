"""Multiband period search and harmonic decomposition (ALeRCE's period and harmonics features).

The period comes from light-curve's multiband Lomb-Scargle (``Periodogram(bands=...)``, fast
Press & Rybicki 1989 algorithm; bands combined with chi2 weights as in VanderPlas & Ivezic 2015)
on a deliberately coarse frequency grid, because its cost grows with the grid size (~40 ns per
frequency per curve measured here). The two best peaks are then refined on a fine local grid with
the exact generalised Lomb-Scargle power (Zechmeister & Kürster 2009), evaluated for all curves at
once, which also re-ranks the two peaks (typical: a true period and its 1-day alias). Harmonics
(ALeRCE Harmonics_mag/phase/mse, Sánchez-Sáez et al. 2021 eq. 3) are a weighted linear least-squares
fit of a Fourier series at the best period, again for all curves at once.
"""

from __future__ import annotations

from functools import lru_cache

import light_curve as lc
import numpy as np

from lenga.features.curves import Curves, PaddedBlock

#: Coarse grids have 2**k frequencies, k clipped to this range (2**17 ~ 5 ms per curve).
GRID_LOG2_RANGE = (10, 17)
#: Peaks of the coarse periodogram that are refined.
REFINED_PEAKS = 2
#: Fine grid points per refined peak, spanning +-1 coarse grid step around it.
REFINE_POINTS = 21
#: Relative ridge added to normal equations so that exactly degenerate designs still solve.
RIDGE = 1e-12

MULTIBAND_NAMES = ["period", "period_snr", "period_power", "period_power_ratio"]
MULTIBAND_DESCRIPTIONS = [
    "best multiband Lomb-Scargle period [d], refined on a fine local grid",
    "signal-to-noise of the best coarse periodogram peak: (P - mean P) / std P (false-alarm proxy)",
    "generalised Lomb-Scargle power at the period: chi2 reduction of a sinusoid, all bands, in [0, 1]",
    "power of the other of the two best peaks over the best one's (1: ambiguous, e.g. aliases)",
]


def band_names(n_harmonics: int) -> list[str]:
    """Per-band output names of :func:`period_features`."""
    return (["period_power"] + [f"harmonics_amplitude_{k}" for k in range(1, n_harmonics + 1)]
            + [f"harmonics_phase_{k}" for k in range(2, n_harmonics + 1)] + ["harmonics_mse"])


def band_descriptions(n_harmonics: int) -> list[str]:
    return (["generalised Lomb-Scargle power of this band at the multiband period"]
            + [f"amplitude of harmonic {k} of a {n_harmonics}-harmonic Fourier fit at the period [mag]"
               for k in range(1, n_harmonics + 1)]
            + [f"phase of harmonic {k} minus {k} x phase of harmonic 1, in [0, 2 pi) (ALeRCE)"
               for k in range(2, n_harmonics + 1)]
            + ["mean squared residual of the harmonic fit [mag^2]"])


@lru_cache(maxsize=256)
def _periodogram(bands: tuple[str, ...], log2_size: int, max_omega: float) -> lc.Periodogram:
    return lc.Periodogram(peaks=REFINED_PEAKS, freqs=np.linspace(0.0, max_omega, 2**log2_size + 1), fast=True,
                          bands=list(bands), features=[lc.Mean(), lc.StandardDeviation()])


def period_features(mag: Curves, curve_object: np.ndarray, curve_band: np.ndarray, n_objects: int,
                    band_labels: tuple[str, ...], period_min_days: float, oversampling: float,
                    n_harmonics: int, n_jobs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Multiband period of every object and per-band harmonics at it.

    ``mag`` holds the (object, band) magnitude curves eligible for features; ``curve_object`` and
    ``curve_band`` give each curve's object row and band index into ``band_labels``. Returns
    (n_objects, len(MULTIBAND_NAMES)) and (n_curves, len(band_names(n_harmonics))).
    """
    multiband = np.full((n_objects, len(MULTIBAND_NAMES)), np.nan)
    per_band = np.full((len(mag), len(band_names(n_harmonics))), np.nan)
    if not len(mag):
        return multiband, per_band
    max_omega = 2.0 * np.pi / period_min_days
    objects, peaks, step, snr = _coarse_peaks(mag, curve_object, curve_band, band_labels, max_omega,
                                              oversampling, n_jobs)
    offsets = np.linspace(-1.0, 1.0, REFINE_POINTS)
    candidates = (peaks[:, :, None] + step[:, None, None] * offsets[None, None, :]).reshape(len(objects), -1)
    candidates = np.clip(candidates, step[:, None] * 1e-3, None)
    object_slot = np.full(n_objects, -1)
    object_slot[objects] = np.arange(len(objects))
    slot = object_slot[curve_object]
    chi2_drop = np.zeros_like(candidates)
    chi2_zero = np.zeros(len(objects))
    for rows, block in mag.padded_blocks():
        for c in range(candidates.shape[1]):
            _, chi2, chi2_0, _ = harmonic_fit(block, candidates[slot[rows], c], 1)
            np.add.at(chi2_drop[:, c], slot[rows], chi2_0 - chi2)
        np.add.at(chi2_zero, slot[rows], chi2_0)
    power = chi2_drop / chi2_zero[:, None]
    best = power.argmax(axis=1)
    by_peak = power.reshape(len(objects), REFINED_PEAKS, REFINE_POINTS).max(axis=2)
    best_peak = best // REFINE_POINTS
    r = np.arange(len(objects))
    omega = candidates[r, best]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = by_peak[r, 1 - best_peak] / by_peak[r, best_peak]
    multiband[objects] = np.column_stack([2.0 * np.pi / omega, snr[r, best_peak], power[r, best], ratio])
    curve_omega = omega[slot]
    for rows, block in mag.padded_blocks():
        per_band[rows] = _band_block(block, curve_omega[rows], n_harmonics)
    return multiband, per_band


def _coarse_peaks(mag: Curves, curve_object: np.ndarray, curve_band: np.ndarray, band_labels: tuple[str, ...],
                  max_omega: float, oversampling: float, n_jobs: int):
    """Angular frequencies and S/N of the best peaks of each object's coarse multiband periodogram."""
    point_object = curve_object[mag.curve_index]
    order = np.lexsort((mag.t, point_object))
    obj_sorted = point_object[order]
    t, y, err = mag.t[order], mag.y[order], mag.err[order]
    band = np.asarray(band_labels)[curve_band[mag.curve_index]][order]
    starts = np.flatnonzero(np.r_[True, obj_sorted[1:] != obj_sorted[:-1]])
    ends = np.r_[starts[1:], len(t)]
    objects = obj_sorted[starts]
    period_floor = 2.0 * np.pi / max_omega
    baseline = np.maximum(t[ends - 1] - t[starts], period_floor)
    wanted = oversampling * baseline / period_floor
    log2_size = np.clip(np.ceil(np.log2(wanted)), *GRID_LOG2_RANGE).astype(int)
    step = max_omega / 2.0**log2_size
    band_mask = np.zeros((len(objects), len(band_labels)), dtype=bool)
    band_mask[np.searchsorted(objects, curve_object), curve_band] = True
    keys = [(tuple(np.asarray(band_labels)[m]), k) for m, k in zip(band_mask, log2_size.tolist(), strict=True)]
    result = np.empty((len(objects), 2 * REFINED_PEAKS + 2))
    for key in set(keys):
        members = [i for i, k in enumerate(keys) if k == key]
        curves = [(t[starts[i]:ends[i]], y[starts[i]:ends[i]], err[starts[i]:ends[i]], band[starts[i]:ends[i]])
                  for i in members]
        result[members] = _periodogram(key[0], key[1], max_omega).many(curves, sorted=True, check=False,
                                                                       n_jobs=n_jobs)
    periods = result[:, 0 : 2 * REFINED_PEAKS : 2]
    snr = result[:, 1 : 2 * REFINED_PEAKS : 2]
    # a curve with a single real peak repeats it: keep the pair, the refinement handles duplicates
    return objects, 2.0 * np.pi / periods, step, snr


def harmonic_fit(block: PaddedBlock, omega: np.ndarray, n_harmonics: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least-squares Fourier series c + sum_k a_k sin(k w t) + b_k cos(k w t) per row.

    Returns coefficients (rows, 1 + 2K) ordered [c, a_1, b_1, ...], the fit's chi2, the chi2 of the
    weighted mean alone, and the residuals (rows, width; zero on padding).
    """
    w = np.where(block.mask, 1.0 / block.err**2, 0.0)
    phase = block.t * omega[:, None]
    k = np.arange(1, n_harmonics + 1)
    angle = phase[:, :, None] * k[None, None, :]
    design = np.concatenate([np.ones_like(phase)[:, :, None], np.sin(angle), np.cos(angle)], axis=2)
    design = design[:, :, np.r_[0, np.column_stack([1 + k - 1, 1 + n_harmonics + k - 1]).ravel()]]
    weighted = design * w[:, :, None]
    normal = np.einsum("rip,riq->rpq", weighted, design)
    normal += RIDGE * np.trace(normal, axis1=1, axis2=2)[:, None, None] * np.eye(normal.shape[1])
    rhs = np.einsum("rip,ri->rp", weighted, block.y)
    coef = np.linalg.solve(normal, rhs[:, :, None])[:, :, 0]
    residual = np.where(block.mask, block.y - np.einsum("rip,rp->ri", design, coef), 0.0)
    chi2 = (w * residual**2).sum(axis=1)
    mean = (w * block.y).sum(axis=1) / w.sum(axis=1)
    chi2_0 = (w * (block.y - mean[:, None]) ** 2).sum(axis=1)
    return coef, chi2, chi2_0, residual


def _band_block(block: PaddedBlock, omega: np.ndarray, n_harmonics: int) -> np.ndarray:
    _, chi2, chi2_0, _ = harmonic_fit(block, omega, 1)
    coef, _, _, residual = harmonic_fit(block, omega, n_harmonics)
    sin_c, cos_c = coef[:, 1::2], coef[:, 2::2]
    amplitude = np.hypot(sin_c, cos_c)
    phase = np.arctan2(cos_c, sin_c)  # a sin x + b cos x = A sin(x + phase)
    k = np.arange(2, n_harmonics + 1)
    relative_phase = np.mod(phase[:, 1:] - k[None, :] * phase[:, :1], 2.0 * np.pi)
    n = block.n
    mse = (residual**2).sum(axis=1) / n
    harmonics = np.column_stack([amplitude, relative_phase, mse])
    harmonics[n < 2 * n_harmonics + 2] = np.nan
    return np.column_stack([1.0 - chi2 / chi2_0, harmonics])
