"""Non-detection features around the first detection (ALeRCE, Sánchez-Sáez et al. 2021, table 2).

Upper limits before a transient's first detection in a band say how fast and from how deep it rose;
those after it say how often it was missed later. Per band, with the band's own first detection:
counts, max/median limiting magnitude before and after, the last limit before, and
dmag_non_det = median limit before - brightest magnitude, dmag_first_det = last limit before - first
magnitude. Only rows with a finite ``diffmaglim`` count (LSST forced photometry carries fluxes, no
limit, and is left out).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NAMES = ["n_non_det_before", "max_diffmaglim_before", "median_diffmaglim_before", "last_diffmaglim_before",
         "dt_last_non_det", "dmag_non_det", "dmag_first_det", "n_non_det_after", "max_diffmaglim_after",
         "median_diffmaglim_after"]
DESCRIPTIONS = [
    "number of non-detections before the band's first detection",
    "faintest limiting magnitude before the first detection",
    "median limiting magnitude before the first detection",
    "limiting magnitude of the last non-detection before the first detection",
    "days from the last non-detection to the first detection",
    "median limiting magnitude before minus brightest detected magnitude (ALeRCE dmag_non_det)",
    "last limiting magnitude before minus first detected magnitude (ALeRCE dmag_first_det)",
    "number of non-detections after the band's first detection",
    "faintest limiting magnitude after the first detection",
    "median limiting magnitude after the first detection",
]


def nondetection_features(obj: np.ndarray, band: np.ndarray, mjd: np.ndarray, diffmaglim: np.ndarray,
                          first_mjd: np.ndarray, first_mag: np.ndarray, brightest: np.ndarray) -> np.ndarray:
    """(n_objects, n_bands, len(NAMES)) features.

    ``obj``/``band`` index each non-detection into the (n_objects, n_bands) per-band detection
    summaries ``first_mjd``, ``first_mag`` and ``brightest`` (NaN where a band has no detection;
    such bands get NaN features). Non-detections of unknown objects or bands carry index -1.
    """
    n_objects, n_bands = first_mjd.shape
    out = np.full((n_objects, n_bands, len(NAMES)), np.nan)
    detected = np.isfinite(first_mjd)
    out[detected, 0] = 0.0
    out[detected, 7] = 0.0
    keep = (obj >= 0) & (band >= 0) & np.isfinite(mjd) & np.isfinite(diffmaglim)
    keep[keep] &= detected[obj[keep], band[keep]]
    if not keep.any():
        return out
    o, b, t, lim = obj[keep], band[keep], mjd[keep], diffmaglim[keep]
    before = t < first_mjd[o, b]
    frame = pd.DataFrame({"o": o, "b": b, "before": before, "t": t, "lim": lim}).sort_values("t", kind="stable")
    stats = frame.groupby(["before", "o", "b"], sort=False)["lim"].agg(["size", "max", "median", "last"])
    last_t = frame.groupby(["before", "o", "b"], sort=False)["t"].last()
    for is_before, columns in ((True, [0, 1, 2, 3]), (False, [7, 8, 9])):
        if is_before not in stats.index.get_level_values(0):
            continue
        part = stats.xs(is_before, level=0)
        po, pb = part.index.get_level_values(0).to_numpy(), part.index.get_level_values(1).to_numpy()
        values = part[["size", "max", "median", "last"]].to_numpy(dtype=float)[:, : len(columns)]
        out[po[:, None], pb[:, None], np.asarray(columns)[None, :]] = values
        if is_before:
            out[po, pb, 4] = first_mjd[po, pb] - last_t.xs(True, level=0).reindex(part.index).to_numpy()
    out[..., 5] = out[..., 2] - brightest
    out[..., 6] = out[..., 3] - first_mag
    return out
