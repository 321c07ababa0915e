"""Supernova parametric model per band: Villar et al. (2019, ApJ 884, 83) fit from light-curve.

ALeRCE's SPM (Sánchez-Sáez et al. 2021, eq. 4) is a variant of the same plateau model and, like
ALeRCE, lenga fits it to every curve (its chi2 and time scales help to tell periodic and stochastic
variables from supernovae too), so it has to be cheap. The fit runs on signed difference fluxes
[nJy], all curves in one Rust call, with Levenberg-Marquardt (GSL lmsder) alone. light-curve takes
the amplitude, baseline and reference time from the data (half the flux range, the minimum flux,
the time of the peak); its default time scales are fractions of the time span (150 d for a
300-day season), far from any supernova, and LM then stalls in a wrong basin. Starting the time
scales at typical supernova values instead (``FIRST_START``) makes LM alone converge.

Measured on 600 simulated supernovae (rise 1.5-12 d, fall 15-90 d, 12-100 nightly points over
150 days, errors 3% + 100 nJy), fraction of rise and fall times within 10% / 20% of the truth,
fits with reduced chi2 above 3, and curves/s on one core (CPU time):

==========================================================  ===========  ===========  ========  ========
fit                                                          rise         fall         chi2>3    curves/s
==========================================================  ===========  ===========  ========  ========
MCMC 16 + LM 30, refit MCMC 64 above chi2 100 (lenga 1.0.0)  0.54 / 0.74  0.77 / 0.88   0.087      1,710
LM 10 from ``FIRST_START``                                   0.60 / 0.81  0.84 / 0.93   0.028      7,920
LM 10 from ``FIRST_START``, retry above chi2 3 (default)     0.62 / 0.82  0.85 / 0.94   0.003      7,520
==========================================================  ===========  ===========  ========  ========

A fit whose reduced chi2 exceeds ``retry_chi2`` is retried from ``RETRY_START`` (a faster rise and
slower decline) and the better of the two kept, but only for transient-like curves
(:func:`transient_like`): a periodic star or a stochastic variable never fits a single-hump model
well, and retrying all of them would double the cost for no gain.
"""

from __future__ import annotations

from functools import lru_cache

import light_curve as lc
import numpy as np

from lenga.features.curves import Curves

#: light-curve's VillarFit needs 8 observations (7 parameters + 1 degree of freedom).
MIN_POINTS = 8
#: Column of the reduced chi2 and of the reference time t0 in VillarFit's output.
CHI2_COLUMN, T0_COLUMN = 7, 2
#: LM start (A, c, t0, tau_rise [d], tau_fall [d], nu, gamma [d]); None: light-curve's value from
#: the data. Time scales of a typical supernova (Villar et al. 2019, fig. 5: tau_rise ~ 1-10 d,
#: tau_fall ~ 20-60 d, plateau gamma ~ 10 d).
FIRST_START = (None, None, None, 5.0, 30.0, None, 10.0)
#: Second start for poor fits of transient-like curves: a fast riser with a slow, long decline.
RETRY_START = (None, None, None, 2.0, 60.0, None, 20.0)
#: Flux steps smaller than this many standard deviations of their difference count as noise in
#: :func:`transient_like`.
STEP_NOISE_SIGMAS = 2.0
#: Largest "excess variation" of a transient-like curve: one rise plus one decline over the full
#: flux range. Measured on simulated curves: supernovae 0.07-0.7 (5-99th percentile), sinusoids of
#: 0.3-50 d over a 300-day season 3.4 and more (5th percentile), damped random walks 0.3-3.3.
MAX_EXCESS_VARIATION = 1.0


@lru_cache(maxsize=8)
def _fit(lmsder_niter: int, start: tuple[float | None, ...]) -> lc.VillarFit:
    return lc.VillarFit("lmsder", lmsder_niter=lmsder_niter, init=list(start))


def names() -> list[str]:
    return [n.replace("villar_fit_", "sn_") for n in lc.VillarFit("lmsder").names]


def descriptions() -> list[str]:
    return [f"Villar et al. (2019) fit to the difference flux [nJy, d]: {d}"
            + (", relative to the band's first detection" if i == T0_COLUMN else "")
            for i, d in enumerate(lc.VillarFit("lmsder").descriptions)]


def transient_like(flux: Curves) -> np.ndarray:
    """Curves that look like one event (a rise and a decline), not like repeated variability.

    The excess variation of a curve is the total variation of its flux counting only steps above
    their noise (``|f_i+1 - f_i| - STEP_NOISE_SIGMAS * sqrt(e_i^2 + e_i+1^2)``, clipped at zero),
    over twice the flux range. A single hump gives at most 1; every further cycle of a periodic or
    stochastic variable adds about 1. Curves need at least two points.
    """
    step = np.abs(np.diff(flux.y)) - STEP_NOISE_SIGMAS * np.hypot(flux.err[1:], flux.err[:-1])
    step = np.append(np.maximum(step, 0.0), 0.0)
    step[flux.offsets[1:] - 1] = 0.0  # the step from a curve's last point into the next curve
    variation = flux.reduce(np.add, step)
    span = flux.reduce(np.maximum, flux.y) - flux.reduce(np.minimum, flux.y)
    with np.errstate(divide="ignore", invalid="ignore"):
        return variation <= MAX_EXCESS_VARIATION * 2.0 * span


def supernova_fit(flux: Curves, lmsder_niter: int, retry_chi2: float, n_jobs: int = 1) -> np.ndarray:
    """(n_curves, len(names())) Villar parameters; curves with fewer than MIN_POINTS points get NaN."""
    out = np.full((len(flux), len(names())), np.nan)
    rows = np.flatnonzero(flux.lengths >= MIN_POINTS)
    if not len(rows):
        return out
    curves = flux.subset(rows)
    lcs = curves.tuples()
    fit = _fit(lmsder_niter, FIRST_START).many(lcs, fill_value=np.nan, sorted=True, check=False, n_jobs=n_jobs)
    retry = np.flatnonzero(~(fit[:, CHI2_COLUMN] <= retry_chi2) & transient_like(curves))
    if len(retry):
        refit = _fit(lmsder_niter, RETRY_START).many([lcs[i] for i in retry], fill_value=np.nan, sorted=True,
                                                      check=False, n_jobs=n_jobs)
        first_chi2 = fit[retry, CHI2_COLUMN]
        better = refit[:, CHI2_COLUMN] < np.where(np.isfinite(first_chi2), first_chi2, np.inf)
        fit[retry[better]] = refit[better]
    fit[:, T0_COLUMN] -= curves.t[curves.offsets[:-1]]
    out[rows] = fit
    return out
