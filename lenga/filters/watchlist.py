"""Cone match of alerts against a user's watchlist (name, ra, dec, radius_arcsec).

Each alert is matched to the *nearest* target whose own radius contains it (targets may have
different radii, e.g. 1.5" for a star and 30" for a galaxy). Pairs come from astropy's
``search_around_sky`` at the largest radius (a k-d tree on unit vectors, exact great-circle
separations), then each pair is kept only within its target's radius.
"""

from __future__ import annotations

from collections.abc import Sequence

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, search_around_sky

from lenga.filters.config import WatchTarget


def cone_match(ra: np.ndarray, dec: np.ndarray,
               targets: Sequence[WatchTarget]) -> tuple[np.ndarray, np.ndarray]:
    """For each (ra, dec) in degrees: the name of the nearest target within its radius and the
    separation in arcsec; ``None`` and NaN where no target matches (or the position is NaN)."""
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    names = np.full(ra.shape, None, dtype=object)
    separations = np.full(ra.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
    if not targets or valid.size == 0:
        return names, separations
    alerts = SkyCoord(ra[valid] * u.deg, dec[valid] * u.deg)
    centres = SkyCoord([t.ra for t in targets] * u.deg, [t.dec for t in targets] * u.deg)
    radii = np.array([t.radius_arcsec for t in targets])
    i_alert, i_target, sep, _ = search_around_sky(alerts, centres, radii.max() * u.arcsec)
    sep = sep.to_value(u.arcsec)
    inside = sep <= radii[i_target]
    i_alert, i_target, sep = i_alert[inside], i_target[inside], sep[inside]
    # Nearest first; the first occurrence of each alert is then its nearest target.
    order = np.lexsort((sep, i_alert))
    i_alert, i_target, sep = i_alert[order], i_target[order], sep[order]
    first = np.unique(i_alert, return_index=True)[1]
    rows = valid[i_alert[first]]
    names[rows] = [targets[i].name for i in i_target[first]]
    separations[rows] = sep[first]
    return names, separations
