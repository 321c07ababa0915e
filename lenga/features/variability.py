"""Single-band variability statistics (ALeRCE's "FATS" block, Sánchez-Sáez et al. 2021, table 2).

Everything light-curve (Malanchev et al. 2021, MNRAS 502, 5147) implements is computed by one Rust
``Extractor`` over many curves at once; only Gskew, which it lacks, is written here.
"""

from __future__ import annotations

from functools import lru_cache

import light_curve as lc
import numpy as np

from lenga.features.curves import Curves

#: ALeRCE's "MedianBRP": fraction of points within 10% of the amplitude from the median.
MEDIAN_BUFFER_FRACTION = 0.1
#: ALeRCE's "Q31": inter-quartile range, i.e. the range between the 25th and 75th percentiles.
INTER_QUARTILE = 0.25
#: Gskew percentiles (Mahabal et al. 2011 / ALeRCE): medians of the faintest and brightest 3%.
GSKEW_PERCENT = 3.0


@lru_cache(maxsize=1)
def _extractor() -> lc.Extractor:
    return lc.Extractor(
        lc.Amplitude(),                 # half peak-to-peak (ALeRCE Amplitude)
        lc.AndersonDarlingNormal(),     # Kim et al. 2009
        lc.BeyondNStd(1.0),             # ALeRCE Beyond1Std
        lc.Chi2Pvar(),                  # ALeRCE Pvar (McLaughlin et al. 1996, chi2 probability)
        lc.Cusum(),                     # ALeRCE Rcs (Kim et al. 2014)
        lc.Eta(),                       # von Neumann ratio (ALeRCE Eta)
        lc.EtaE(),                      # Kim et al. 2014 Eta_e for uneven sampling
        lc.ExcessVariance(),            # ALeRCE ExcessVar (Sánchez et al. 2017)
        lc.InterPercentileRange(INTER_QUARTILE),
        lc.Kurtosis(),
        lc.LinearTrend(),               # slope, its error, residual scatter (ALeRCE LinearTrend)
        lc.MaximumSlope(),              # ALeRCE MaxSlope
        lc.Mean(),
        lc.MeanVariance(),              # ALeRCE Meanvariance
        lc.MedianAbsoluteDeviation(),
        lc.MedianBufferRangePercentage(MEDIAN_BUFFER_FRACTION),
        lc.PercentAmplitude(),          # ALeRCE PercentAmplitude
        lc.ReducedChi2(),
        lc.Skew(),
        lc.StandardDeviation(),
        lc.StetsonK(),                  # Stetson 1996; sqrt(2/pi) for Gaussian noise
    )


def names() -> list[str]:
    """Output names, in column order of :func:`variability_features`."""
    return [*_extractor().names, "gskew"]


def descriptions() -> list[str]:
    return [*_extractor().descriptions,
            "median-based skew: median of brightest 3% + median of faintest 3% - 2 median (Gskew)"]


def variability_features(mag: Curves, n_jobs: int = 1) -> np.ndarray:
    """(n_curves, len(names())) statistics of magnitude curves with enough points for every feature."""
    if not len(mag):
        return np.empty((0, len(names())))
    stats = _extractor().many(mag.tuples(), sorted=True, check=False, n_jobs=n_jobs)
    return np.column_stack([stats, gskew(mag)])


def gskew(mag: Curves) -> np.ndarray:
    """Median-based skewness, ALeRCE's Gskew: m_3 + m_97 - 2 median (Mahabal et al. 2011).

    m_3 (m_97) is the median of the points at or below (above) the 3rd (97th) percentile, with
    numpy's linear percentile interpolation. Computed for all curves at once on magnitude-sorted
    flat arrays; the order statistics come from index arithmetic on the curve offsets.
    """
    curve = mag.curve_index
    order = np.lexsort((mag.y, curve))
    ranked = mag.y[order]
    start, n = mag.offsets[:-1], mag.lengths

    def quantile(q: float) -> np.ndarray:
        pos = (n - 1) * q / 100.0
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        return ranked[start + lo] + (pos - lo) * (ranked[start + hi] - ranked[start + lo])

    def median_of(first: np.ndarray, count: np.ndarray) -> np.ndarray:
        return 0.5 * (ranked[first + (count - 1) // 2] + ranked[first + count // 2])

    low_cut, high_cut = quantile(GSKEW_PERCENT), quantile(100.0 - GSKEW_PERCENT)
    n_low = np.add.reduceat((ranked <= low_cut[curve]).astype(np.int64), start)
    n_high = np.add.reduceat((ranked >= high_cut[curve]).astype(np.int64), start)
    return median_of(start, n_low) + median_of(start + n - n_high, n_high) - 2.0 * median_of(start, n)
