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

from lenga.features.curves import Curves, PaddedBlock, map_padded, parabola_peak

#: log-spaced DRW / IAR time scales tau [d], 0.1 d to 4.5 yr (ratio 2 per step).
TAU_GRID_DAYS = np.geomspace(0.1, 2.0**14 * 0.1, 15)
#: DRW stationary variance grid relative to the curve's sample variance (ratio 2 per step).
VARIANCE_GRID_FACTORS = 2.0 ** np.arange(-4.0, 3.0)
#: Column of VARIANCE_GRID_FACTORS at the sample variance itself (factor 1): the IAR model.
IAR_COLUMN = int(np.flatnonzero(VARIANCE_GRID_FACTORS == 1.0)[0])
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

    ``tau`` and ``variance`` have one row per curve and broadcast against each other to
    (rows, *grid): one parameter set per grid cell. The Kalman recursion (Kelly et al. 2009, eqs.
    6-12) runs once over the time index for all rows and all parameter sets. Rows are visited in
    order of decreasing length, so that at each time index the rows still running are a prefix:
    padding costs nothing, and the decay factors are computed once per tau, not per grid cell.
    """
    shape = np.broadcast_shapes(tau.shape, variance.shape)
    n = block.n
    order = np.argsort(-n, kind="stable")
    grid_axes = (1,) * (len(shape) - 1)
    t, y, err2 = block.t[order], block.y[order], block.err[order] ** 2
    tau, variance = tau[order], variance[order]
    running = np.count_nonzero(n[order][:, None] > np.arange(t.shape[1])[None, :], axis=0)
    mean = np.zeros(shape)
    var = np.broadcast_to(variance, shape).copy()
    loglike = np.zeros(shape)
    for i, k in enumerate(running.tolist()):
        m, v, ll = mean[:k], var[:k], loglike[:k]
        noise = err2[:k, i].reshape(k, *grid_axes)
        total = v + noise
        innovation = y[:k, i].reshape(k, *grid_axes) - m
        ll += np.log(total) + innovation**2 / total  # -2 log-likelihood until the end
        m += v / total * innovation
        v *= noise / total
        k_next = running[i + 1] if i + 1 < len(running) else 0
        if k_next:
            decay = np.exp(-(t[:k_next, i + 1] - t[:k_next, i]).reshape(k_next, *grid_axes) / tau[:k_next])
            m[:k_next] *= decay
            v[:k_next] = variance[:k_next] + decay**2 * (v[:k_next] - variance[:k_next])
    out = np.empty_like(loglike)
    out[order] = -0.5 * (loglike + np.log(2.0 * np.pi) * n[order].reshape(-1, *grid_axes))
    return out


def _ou_block(block: PaddedBlock) -> np.ndarray:
    n = block.n
    mean = (block.y.sum(axis=1) / n)[:, None]
    centred = PaddedBlock(block.t, np.where(block.mask, block.y - mean, 0.0), block.err, block.mask)
    log_sample_var = np.log(np.maximum((centred.y**2).sum(axis=1) / (n - 1), np.finfo(float).tiny))[:, None]
    rows = len(n)
    r = np.arange(rows)
    # coarse pass: the DRW grid. Its column at the sample variance is IAR's likelihood: IAR
    # (Eyheramendy et al. 2018) standardises the curve, i.e. it is the OU model with the variance
    # fixed at the sample's.
    log_tau = np.tile(np.log(TAU_GRID_DAYS), (rows, 1))
    log_var = log_sample_var + np.log(VARIANCE_GRID_FACTORS)[None, :]
    drw = _ou_grid(centred, log_tau, log_var)
    iar = drw[:, :, IAR_COLUMN]
    iar_log_tau = parabola_peak(log_tau, iar, iar.argmax(axis=1))
    i_tau, i_var = np.unravel_index(drw.reshape(rows, -1).argmax(axis=1), drw.shape[1:])
    # fine pass: a grid of half the coarse spacing around the best coarse point, because tau and the
    # variance are correlated (at short lags only variance / tau is constrained)
    fine = np.linspace(-1.0, 1.0, FINE_GRID_POINTS)[None, :]
    fine_tau = log_tau[r, i_tau][:, None] + fine * np.log(TAU_GRID_DAYS[1] / TAU_GRID_DAYS[0])
    fine_var = log_var[r, i_var][:, None] + fine * np.log(VARIANCE_GRID_FACTORS[1] / VARIANCE_GRID_FACTORS[0])
    drw = _ou_grid(centred, fine_tau, fine_var)
    j_tau, j_var = np.unravel_index(drw.reshape(rows, -1).argmax(axis=1), drw.shape[1:])
    best_log_tau = parabola_peak(fine_tau, drw[r, :, j_var], j_tau)
    best_log_var = parabola_peak(fine_var, drw[r, j_tau, :], j_var)
    return np.column_stack([np.exp(0.5 * best_log_var), np.exp(best_log_tau), np.exp(-np.exp(-iar_log_tau))])


def _ou_grid(block: PaddedBlock, log_tau: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """OU log-likelihood on the per-row grid log_tau x log_var: (rows, n_tau, n_var)."""
    return ou_log_likelihood(block, np.exp(log_tau)[:, :, None], np.exp(log_var)[:, None, :])


def _pairwise_block(block: PaddedBlock, timescales: tuple[float, float]) -> np.ndarray:
    n = block.n
    centred = np.where(block.mask, block.y - (block.y.sum(axis=1) / n)[:, None], 0.0)
    # float32 halves the cost of the O(n^2) kernels; the results are variances, 1e-7 precision is
    # plenty, and times from each row's start lose < 1e-3 d over 10^4 d, nothing on 10-100 d kernels
    t = (block.t - block.t[:, :1]).astype(np.float32)
    lag2 = (t[:, None, :] - t[:, :, None]) ** 2
    weights = np.stack([centred, block.mask], axis=2).astype(np.float32)
    low, high = (_mexican_hat_variance(lag2, weights, block.mask, scale) for scale in timescales)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = low / high
    amplitude, gamma = _structure_function(block)
    return np.column_stack([low, high, ratio, amplitude, gamma])


def _mexican_hat_variance(lag2: np.ndarray, weights: np.ndarray, mask: np.ndarray, timescale: float
                          ) -> np.ndarray:
    """Variance of the Mexican-hat filtered curve, per unit epsilon^2, at the data points.

    Arévalo et al. (2012) filter with the difference of two Gaussian smoothings of widths
    sigma / sqrt(1 + eps) and sigma sqrt(1 + eps), each normalised by the smoothed sampling mask:
    F = (G1*y)/(G1*mask) - (G2*y)/(G2*mask). For eps -> 0 (they take eps = 1e-3) this is
    -eps d/d(ln sigma) of (G*y)/(G*mask), which needs a single Gaussian; dG/d ln sigma = G u,
    u = lag^2 / sigma^2. Returned is mean_i (F_i / eps)^2.

    ``lag2`` holds the squared lags (rows, width, width), ``weights`` the stacked (centred
    magnitude, mask) per point (rows, width, 2): one matrix product smooths both, and padded
    points, with zero magnitude and mask, drop out of every sum.
    """
    half_u = lag2 * np.float32(-0.5 / (timescale * MHPS_SIGMA_PER_TIMESCALE) ** 2)  # -u / 2
    g = np.exp(half_u)
    smooth = g @ weights
    d_smooth = (g * half_u) @ weights  # -(1/2) (G u) * (y, mask)
    a, b = smooth[:, :, 0], smooth[:, :, 1]
    da, db = d_smooth[:, :, 0], d_smooth[:, :, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        derivative = np.where(mask, -2.0 * (da * b - a * db) / b**2, 0.0)
    return (derivative.astype(float) ** 2).sum(axis=1) / mask.sum(axis=1)


def _structure_function(block: PaddedBlock) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares power law through the binned, noise-corrected structure function.

    SF^2(bin) = <(m_j - m_i)^2 - e_i^2 - e_j^2> over pairs with lag in the bin (Schmidt et al.
    2010 eq. 2 with the photometric noise removed); log SF is fitted linearly in log(lag / 1 yr)
    over bins with positive SF^2. Measured on simulated random walks (true gamma 0.5): weighting
    bins by pair counts gives a median gamma of 0.38-0.44 with a 0.23-0.71 spread, capping the
    weights at span / lag gives 0.49 with 0.42-0.56. Fewer than two such bins: NaN,
    the curve shows no variability above its noise.
    """
    lag, excess, valid = _pairs(block)
    rows = len(lag)
    log_lag = np.log10(np.where(valid, lag, 1.0).astype(np.float32))
    n_bins = len(SF_LOG_LAG_EDGES) - 1
    width_dex = SF_LOG_LAG_EDGES[1] - SF_LOG_LAG_EDGES[0]
    bins = np.clip((log_lag - np.float32(SF_LOG_LAG_EDGES[0])) / np.float32(width_dex), 0, n_bins - 1).astype(np.intp)
    size = rows * n_bins
    key = np.where(valid, bins + n_bins * np.arange(rows)[:, None], size).ravel()  # invalid pairs: bin ``size``
    count = np.bincount(key, minlength=size + 1)[:size].reshape(rows, n_bins)
    sum_excess = np.bincount(key, excess.ravel(), minlength=size + 1)[:size].reshape(rows, n_bins)
    sum_log_lag = np.bincount(key, log_lag.ravel(), minlength=size + 1)[:size].reshape(rows, n_bins)
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


def _pairs(block: PaddedBlock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lag, noise-corrected squared magnitude difference and validity of every pair i < j of a row.

    Pairs are laid out diagonal by diagonal (j - i = 1, 2, ...): each diagonal is a contiguous
    slice difference, several times cheaper than gathering the pairs with index arrays. Padding
    sits at the end of a row, so a pair is real when its later point is.
    """
    rows, width = block.t.shape
    n_pairs = width * (width - 1) // 2
    lag, excess = np.empty((rows, n_pairs)), np.empty((rows, n_pairs))
    valid = np.empty((rows, n_pairs), dtype=bool)
    err2 = block.err**2
    start = 0
    for d in range(1, width):
        pairs = slice(start, start + width - d)
        np.subtract(block.t[:, d:], block.t[:, :-d], out=lag[:, pairs])
        dy = block.y[:, d:] - block.y[:, :-d]
        np.subtract(dy * dy, err2[:, d:] + err2[:, :-d], out=excess[:, pairs])
        valid[:, pairs] = block.mask[:, d:]
        start += width - d
    return lag, excess, valid
