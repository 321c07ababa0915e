"""Sign of the difference flux: ALeRCE's ``positive_fraction`` (Sánchez-Sáez et al. 2021, table 2).

Difference imaging subtracts a reference (template) image. A supernova is absent from the reference,
so every detection is brighter than the template (positive difference flux); a variable source sits in
the reference at about its mean flux, so an AGN, a blazar or a variable star is detected on both
sides of it as it varies. The fraction of detections with a positive difference flux is therefore
1 for transients and anywhere in [0, 1] for variables, whatever their amplitude or time scale: it
separates the stochastic variables that happen to be caught only near one bright excursion from
supernovae, which the shape features alone confuse (ALeRCE uses it per band; lenga adds the fraction
over all bands, which stays defined for LSST objects with few detections in each of six bands).

Every detection with a finite signed flux counts (ZTF's sign is ``isdiffpos``, LSST's ``psfFlux``
carries it), not only bands with enough points for the light-curve families.
"""

from __future__ import annotations

import numpy as np

NAMES = ["positive_fraction"]
DESCRIPTIONS = ["fraction of detections brighter than the reference image (positive difference flux; "
                "ALeRCE positive_fraction)"]
MULTIBAND_NAMES = ["positive_fraction"]
MULTIBAND_DESCRIPTIONS = ["fraction of detections in all bands brighter than the reference image "
                          "(positive difference flux)"]


def positive_fraction(n_positive: np.ndarray, n_detections: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band (n_objects, n_bands) and over all bands (n_objects,) fractions of positive detections.

    ``n_positive`` / ``n_detections``: (n_objects, n_bands) counts of detections with a positive /
    a finite signed difference flux. Bands (objects) without such a detection get NaN.
    """
    n_positive = np.asarray(n_positive, dtype=float)
    n_detections = np.asarray(n_detections, dtype=float)
    if (n_positive > n_detections).any() or (n_positive < 0).any():
        raise ValueError("positive detection counts must lie between 0 and the detection counts")
    with np.errstate(divide="ignore", invalid="ignore"):
        per_band = np.where(n_detections > 0, n_positive / n_detections, np.nan)
        total = n_detections.sum(axis=1)
        all_bands = np.where(total > 0, n_positive.sum(axis=1) / total, np.nan)
    return per_band, all_bands
