"""Stochastic-variability features: damped random walk, IAR, Mexican-hat power, structure function.

All four are written here because no maintained library computes them for many curves at once
(ALeRCE uses celerite2 / scipy per curve, ~ms each). They run on zero-padded blocks of curves:

* DRW (Kelly et al. 2009, ApJ 698, 895; Graham et al. 2017, MNRAS 470, 4112; ALeRCE GP_DRW) and
  IAR (Eyheramendy et al. 2018, MNRAS 481, 4311; ALeRCE IAR_phi) are the same state-space model,
  an Ornstein-Uhlenbeck process observed with Gaussian errors. Its exact likelihood comes from a
  Kalman filter that costs O(n) per parameter pair, so every curve is evaluated on a grid of
  parameters in one vectorised pass and the maximum refined by a parabola through its neighbours.
* MHPS (Arévalo et al. 2012, MNRAS 426, 1793; ALeRCE MHPS_low/high/ratio): variance of the light
  curve filtered by a Mexican hat, which copes with gaps by normalising with the filtered mask.
* Structure function (Schmidt et al. 2010, ApJ 714, 1194; ALeRCE SF_ML): power law
  SF(dt) = A (dt / 1 yr)^gamma fitted to the noise-corrected binned structure function.
"""

from __future__ import annotations

import numpy as np

from lenga.features.curves import Curves, PaddedBlock, map_padded

#: log-spaced DRW / IAR time scales tau [d], 0.1 d to 4.5 yr (ratio 2 per step).
TAU_GRID_DAYS = np.geomspace(0.1, 2.0**14 * 0.1, 15)
#: DRW stationary variance grid relative to the curve's sample variance (ratio 2 per step).
VARIANCE_GRID_FACTORS = np.geomspace(1.0 / 16.0, 4.0, 7)
#: Points per axis of the fine DRW grid, spanning +-1 coarse step around the coarse maximum.
FINE_GRID_POINTS = 5
#: Arévalo et al. (2012): the Mexican hat of width sigma peaks at k = 1 / (sqrt(2) pi sigma).
MHPS_SIGMA_PER_TIMESCALE = 1.0 / (np.sqrt(2.0) * np.pi)
#: Structure-function lag bins: 0.25 dex from 0.01 d to 10^4 d (uniform in log10; the ends collect the rest).
SF_LOG_LAG_EDGES = np.arange(-2.0, 4.0 + 1e-9, 0.25)
#: Reference lag of the structure-function amplitude (Schmidt et al. 2010): one year in days.
SF_REFERENCE_LAG_DAYS = 365.25

NAMES = ["drw_sigma", "drw_tau", "iar_phi", "mhps_low", "mhps_high", "mhps_ratio",
         "sf_amplitude", "sf_gamma"]
DESCRIPTIONS = [
    "damped random walk: stationary standard deviation [mag] (ALeRCE GP_DRW_sigma is its square)",
    "damped random walk: relaxation time tau [d] (Kelly et al. 2009)",
    "irregular autoregressive model coefficient phi per day (Eyheramendy et al. 2018)",
    "Mexican-hat filtered variance at the low-frequency time scale (Arévalo et al. 2012)",
    "Mexican-hat filtered variance at the high-frequency time scale (Arévalo et al. 2012)",
    "mhps_low / mhps_high",
    "structure function amplitude at 1 yr [mag] (Schmidt et al. 2010)",
    "structure function power-law index gamma (Schmidt et al. 2010)",
]


def stochastic_features(mag: Curves, mhps_timescales_days: tuple[float, float]) -> np.ndarray:
    """(n_curves, len(NAMES)) stochastic features of magnitude curves (>= 4 points each)."""
    ou = map_padded(mag, _ou_block, 3)
    pairs = map_padded(mag, lambda block: _pairwise_block(block, mhps_timescales_days), 5, pairwise=True)
    return np.column_stack([ou, pairs])


def ou_log_likelihood(block: PaddedBlock, tau: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Exact log-likelihood of mean-subtracted curves under an OU process plus measurement noise.

    ``tau`` and ``variance`` have shape (rows, grid): one parameter set per column. The Kalman
    recursion (Kelly et al. 2009, eqs. 6-12) runs once over the time index for all rows and all
    parameter sets; padded points carry zero weight and zero time step.
    """
    mean = np.zeros_like(tau)
    var = variance.copy()
    loglike = np.zeros_like(tau)
    width = block.t.shape[1]
    for i in range(width):
        err2 = (block.err[:, i] ** 2)[:, None]
        weight = block.mask[:, i][:, None]
        total = var + err2
        innovation = block.y[:, i][:, None] - mean
        loglike -= 0.5 * weight * (np.log(2.0 * np.pi * total) + innovation**2 / total)
        gain = var / total
        mean = mean + gain * innovation
        var = var * (1.0 - gain)
        if i + 1 < width:
            decay = np.exp(-(block.t[:, i + 1] - block.t[:, i])[:, None] / tau)
            mean = decay * mean
            var = decay**2 * var + variance * (1.0 - decay**2)
    return loglike


def _ou_block(block: PaddedBlock) -> np.ndarray:
    n = block.n
    mean = (block.y.sum(axis=1) / n)[:, None]
    centred = PaddedBlock(block.t, np.where(block.mask, block.y - mean, 0.0), block.err, block.mask)
    log_sample_var = np.log(np.maximum((centred.y**2).sum(axis=1) / (n - 1), np.finfo(float).tiny))[:, None]
    rows = len(n)
    # coarse pass: the DRW grid and, in the same Kalman sweep, the IAR line. IAR (Eyheramendy et al.
    # 2018) standardises the curve, i.e. it is the OU model with the variance fixed at the sample's.
    log_tau = np.tile(np.log(TAU_GRID_DAYS), (rows, 1))
    log_var = log_sample_var + np.log(VARIANCE_GRID_FACTORS)[None, :]
    drw, iar = _ou_grid(centred, log_tau, log_var, extra=(log_tau, log_sample_var))
    i_tau, i_var = np.unravel_index(drw.reshape(rows, -1).argmax(axis=1), drw.shape[1:])
    iar_log_tau = _parabola_peak(log_tau, iar[:, :, 0], iar[:, :, 0].argmax(axis=1))
    # fine pass: a grid of half the coarse spacing around the best coarse point, because tau and the
    # variance are correlated (at short lags only variance / tau is constrained)
    r = np.arange(rows)
    fine = np.linspace(-1.0, 1.0, FINE_GRID_POINTS)[None, :]
    fine_tau = log_tau[r, i_tau][:, None] + fine * np.log(TAU_GRID_DAYS[1] / TAU_GRID_DAYS[0])
    fine_var = log_var[r, i_var][:, None] + fine * np.log(VARIANCE_GRID_FACTORS[1] / VARIANCE_GRID_FACTORS[0])
    drw, _ = _ou_grid(centred, fine_tau, fine_var)
    j_tau, j_var = np.unravel_index(drw.reshape(rows, -1).argmax(axis=1), drw.shape[1:])
    best_log_tau = _parabola_peak(fine_tau, drw[r, :, j_var], j_tau)
    best_log_var = _parabola_peak(fine_var, drw[r, j_tau, :], j_var)
    return np.column_stack([np.exp(0.5 * best_log_var), np.exp(best_log_tau), np.exp(-np.exp(-iar_log_tau))])


def _ou_grid(block: PaddedBlock, log_tau: np.ndarray, log_var: np.ndarray,
             extra: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """OU log-likelihood on the per-row grid log_tau x log_var (rows, n_tau, n_var).

    ``extra`` is a second (log_tau, log_var) grid evaluated in the same sweep and returned second.
    """
    rows, n_tau, n_var = len(log_tau), log_tau.shape[1], log_var.shape[1]
    taus = np.repeat(log_tau, n_var, axis=1)
    variances = np.tile(log_var, (1, n_tau))
    if extra is not None:
        extra_tau, extra_var = extra
        taus = np.hstack([taus, np.repeat(extra_tau, extra_var.shape[1], axis=1)])
        variances = np.hstack([variances, np.tile(extra_var, (1, extra_tau.shape[1]))])
    loglike = ou_log_likelihood(block, np.exp(taus), np.exp(variances))
    main = loglike[:, : n_tau * n_var].reshape(rows, n_tau, n_var)
    if extra is None:
        return main, None
    return main, loglike[:, n_tau * n_var:].reshape(rows, extra[0].shape[1], extra[1].shape[1])


def _parabola_peak(x: np.ndarray, y: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Abscissa of the vertex of the parabola through points (i-1, i, i+1) of uniform grids.

    ``x`` and ``y`` are (rows, grid); at a grid edge, or when the three points are not concave, the
    grid point itself is returned.
    """
    rows = np.arange(len(i))
    size = x.shape[1]
    inner = (i > 0) & (i < size - 1)
    lo, hi = np.clip(i - 1, 0, size - 1), np.clip(i + 1, 0, size - 1)
    y0, y1, y2 = y[rows, lo], y[rows, i], y[rows, hi]
    curvature = y0 - 2.0 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(inner & (curvature < 0), 0.5 * (y0 - y2) / curvature, 0.0)
    return x[rows, i] + np.clip(shift, -0.5, 0.5) * (x[:, 1] - x[:, 0])


def _pairwise_block(block: PaddedBlock, timescales: tuple[float, float]) -> np.ndarray:
    lag = block.t[:, None, :] - block.t[:, :, None]  # lag[r, i, j] = t_j - t_i
    pair = block.mask[:, :, None] & block.mask[:, None, :]
    n = block.n
    centred = np.where(block.mask, block.y - (block.y.sum(axis=1) / n)[:, None], 0.0)
    low, high = (_mexican_hat_variance(lag, pair, centred, block.mask, scale) for scale in timescales)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = low / high
    amplitude, gamma = _structure_function(lag, pair, block)
    return np.column_stack([low, high, ratio, amplitude, gamma])


def _mexican_hat_variance(lag: np.ndarray, pair: np.ndarray, y: np.ndarray, mask: np.ndarray,
                          timescale: float) -> np.ndarray:
    """Variance of the Mexican-hat filtered curve, per unit epsilon^2, at the data points.

    Arévalo et al. (2012) filter with the difference of two Gaussian smoothings of widths
    sigma / sqrt(1 + eps) and sigma sqrt(1 + eps), each normalised by the smoothed sampling mask:
    F = (G1*y)/(G1*mask) - (G2*y)/(G2*mask). For eps -> 0 (they take eps = 1e-3) this is
    -eps d/d(ln sigma) of (G*y)/(G*mask), which needs a single Gaussian; dG/d ln sigma = G u,
    u = lag^2 / sigma^2. Returned is mean_i (F_i / eps)^2.
    """
    # float32 halves the cost of the O(n^2) kernels; the result is a variance, 1e-7 precision is plenty
    u = ((lag / (timescale * MHPS_SIGMA_PER_TIMESCALE)) ** 2).astype(np.float32)
    g = np.exp(-0.5 * u) * pair
    gu = g * u
    y32 = y.astype(np.float32)[:, :, None]
    a, b = (g @ y32)[:, :, 0], g.sum(axis=2)
    da, db = (gu @ y32)[:, :, 0], gu.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        derivative = np.where(mask, (da * b - a * db) / b**2, 0.0)
    return (derivative.astype(float) ** 2).sum(axis=1) / mask.sum(axis=1)


def _structure_function(lag: np.ndarray, pair: np.ndarray, block: PaddedBlock) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares power law through the binned, noise-corrected structure function.

    SF^2(bin) = <(m_j - m_i)^2 - e_i^2 - e_j^2> over pairs with lag in the bin (Schmidt et al.
    2010 eq. 2 with the photometric noise removed); log SF is fitted linearly in log(lag / 1 yr)
    over bins with positive SF^2. Measured on simulated random walks (true gamma 0.5): weighting
    bins by pair counts gives a median gamma of 0.38-0.44 with a 0.23-0.71 spread, capping the
    weights at span / lag gives 0.49 with 0.42-0.56. Fewer than two such bins: NaN,
    the curve shows no variability above its noise.
    """
    rows, width = block.t.shape
    upper = pair & (lag > 0) & np.triu(np.ones((width, width), dtype=bool), 1)[None]
    log_lag = np.log10(lag[upper])
    err2 = block.err**2
    excess = ((block.y[:, None, :] - block.y[:, :, None]) ** 2 - err2[:, None, :] - err2[:, :, None])[upper]
    row = np.broadcast_to(np.arange(rows)[:, None, None], upper.shape)[upper]
    n_bins = len(SF_LOG_LAG_EDGES) - 1
    width_dex = SF_LOG_LAG_EDGES[1] - SF_LOG_LAG_EDGES[0]
    bins = np.clip(((log_lag - SF_LOG_LAG_EDGES[0]) / width_dex).astype(np.int64), 0, n_bins - 1)
    key = row * n_bins + bins
    size = rows * n_bins
    count = np.bincount(key, minlength=size).reshape(rows, n_bins)
    sum_excess = np.bincount(key, excess, minlength=size).reshape(rows, n_bins)
    sum_log_lag = np.bincount(key, log_lag, minlength=size).reshape(rows, n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        sf2 = sum_excess / count
        x = sum_log_lag / count - np.log10(SF_REFERENCE_LAG_DAYS)
        y = 0.5 * np.log10(sf2)
    # weight: pairs in the bin, capped by the independent lags of that length the span holds (span /
    # lag); at long lags the many pairs are strongly correlated and would otherwise dominate the fit
    span = (block.t.max(axis=1) - block.t.min(axis=1))[:, None]
    with np.errstate(invalid="ignore"):
        independent = span / 10.0 ** (x + np.log10(SF_REFERENCE_LAG_DAYS))
    w = np.where((count > 0) & (sf2 > 0), np.minimum(count, independent), 0.0)
    x, y = np.where(w > 0, x, 0.0), np.where(w > 0, y, 0.0)
    s, sx, sy = w.sum(1), (w * x).sum(1), (w * y).sum(1)
    sxx, sxy = (w * x * x).sum(1), (w * x * y).sum(1)
    det = s * sxx - sx**2
    defined = ((w > 0).sum(1) >= 2) & (det > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(defined, (s * sxy - sx * sy) / det, np.nan)
        log_amplitude = np.where(defined, (sy - gamma * sx) / s, np.nan)
    return 10.0**log_amplitude, gamma
