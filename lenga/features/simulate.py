"""Synthetic ZTF-like light curves with known truth, for tests and the throughput benchmark.

Sampling: one visit on a random subset of nights, at a random time within a 6-hour window, so
the 1-day alias is present as in real ground-based data. Signals: sinusoids, Ornstein-Uhlenbeck
(damped random walk) processes simulated exactly (Gillespie 1996, ``ou_process``) and Villar et al.
(2019) supernova profiles.
"""

from __future__ import annotations

import light_curve as lc
import numpy as np
import pandas as pd

from lenga.photometry import AB_ZEROPOINT_NJY, MAG_ERR_PER_REL_FLUX

#: Width of the nightly observing window [d].
NIGHT_WINDOW_DAYS = 0.25
#: ZTF-like photometric error at magnitude 18 and its growth with magnitude (rough, for realism only).
BASE_MAG_ERROR = 0.02


def night_times(rng: np.random.Generator, n: int, season_days: float, start: float = 60000.0) -> np.ndarray:
    """``n`` sorted epochs on distinct random nights of a season (needs n <= season_days)."""
    nights = np.sort(rng.choice(int(season_days), size=n, replace=False)).astype(float)
    return start + nights + rng.uniform(0.0, NIGHT_WINDOW_DAYS, size=n)


def ou_process(rng: np.random.Generator, t: np.ndarray, tau: float, sigma: float) -> np.ndarray:
    """Exact OU draw at sorted times ``t``: stationary standard deviation ``sigma``, time scale ``tau``."""
    x = np.empty(len(t))
    x[0] = rng.normal(0.0, sigma)
    decay = np.exp(-np.diff(t) / tau)
    kicks = rng.normal(size=len(t) - 1) * sigma * np.sqrt(1.0 - decay**2)
    for i in range(1, len(t)):
        x[i] = decay[i - 1] * x[i - 1] + kicks[i - 1]
    return x


def villar_flux(t: np.ndarray, amplitude: float, t0: float, rise: float, fall: float, nu: float = 0.2,
                gamma: float = 10.0, baseline: float = 0.0) -> np.ndarray:
    """Villar et al. (2019) profile via light-curve's own model function."""
    return lc.VillarFit.model(t, np.array([amplitude, baseline, t0, rise, fall, nu, gamma]))


def ztf_like_batch(rng: np.random.Generator, n_objects: int, min_points: int = 20, max_points: int = 200,
                   season_days: float = 300.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Detections and non-detections of a mix of periodic, stochastic and supernova-like objects.

    Each object gets g and r curves of ``min_points..max_points`` points; the frames have the
    columns of lenga's ``detections`` / ``non_detections`` tables.
    """
    frames, limits = [], []
    for i in range(n_objects):
        kind = i % 3
        period, phase = np.exp(rng.uniform(np.log(0.3), np.log(50.0))), rng.uniform(0, 2 * np.pi)
        tau = np.exp(rng.uniform(np.log(10.0), np.log(300.0)))
        for fid, band in ((1, "g"), (2, "r")):
            n = int(rng.integers(min_points, max_points + 1))
            t = night_times(rng, n, season_days)
            if kind == 0:
                mag = 17.0 + 0.3 * np.sin(2 * np.pi * t / period + phase)
            elif kind == 1:
                mag = 18.0 + ou_process(rng, t, tau, 0.2)
            else:
                flux = villar_flux(t - t[0], 2e4, 30.0, 4.0, 40.0) + 300.0
                mag = AB_ZEROPOINT_NJY - 2.5 * np.log10(flux)
            err = BASE_MAG_ERROR * 10 ** (0.2 * (mag - 18.0))
            mag = mag + rng.normal(size=n) * err
            flux = 10 ** (-0.4 * (mag - AB_ZEROPOINT_NJY))
            frames.append(pd.DataFrame({
                "survey": "ztf", "objectId": f"ZTFsim{i:07d}", "candid": rng.integers(0, 2**62, n),
                "mjd": t, "band": band, "fid": np.int32(fid), "magpsf": mag, "sigmapsf": err,
                "psfFlux": flux, "psfFluxErr": flux * err / MAG_ERR_PER_REL_FLUX, "isdiffpos": True,
                "ra": 150.0, "dec": 2.0}))
            n_limits = int(rng.integers(0, 10))
            limits.append(pd.DataFrame({
                "survey": "ztf", "objectId": f"ZTFsim{i:07d}", "kind": "upper_limit",
                "mjd": t[0] - rng.uniform(0.5, 60.0, n_limits), "band": band,
                "diffmaglim": rng.uniform(19.5, 21.0, n_limits), "psfFlux": np.nan, "psfFluxErr": np.nan}))
    return pd.concat(frames, ignore_index=True), pd.concat(limits, ignore_index=True)
