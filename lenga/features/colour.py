"""Colours between bands: ALeRCE's g-r_max and g-r_mean (Sánchez-Sáez et al. 2021, table 2).

``max`` is the colour at peak brightness: the difference of each band's brightest (smallest)
magnitude; ``mean`` the difference of the mean magnitudes. One detection per band suffices.
"""

from __future__ import annotations

import numpy as np


def names(pairs: list[list[str]]) -> list[str]:
    return [f"colour_{a}_{b}_{kind}" for a, b in pairs for kind in ("max", "mean")]


def descriptions(pairs: list[list[str]]) -> list[str]:
    return [text for a, b in pairs for text in (f"{a}-{b} of the brightest magnitudes (ALeRCE {a}-{b}_max)",
                                                f"{a}-{b} of the mean magnitudes (ALeRCE {a}-{b}_mean)")]


def colours(brightest: np.ndarray, mean: np.ndarray, band_labels: tuple[str, ...],
            pairs: list[list[str]]) -> np.ndarray:
    """(n_objects, 2 * len(pairs)) colours from per-object, per-band (n_objects, n_bands) magnitudes."""
    index = {b: i for i, b in enumerate(band_labels)}
    columns = []
    for a, b in pairs:
        if a in index and b in index:
            columns += [brightest[:, index[a]] - brightest[:, index[b]], mean[:, index[a]] - mean[:, index[b]]]
        else:
            columns += [np.full(len(brightest), np.nan)] * 2
    return np.column_stack(columns) if columns else np.empty((len(brightest), 0))
