"""HEALPix index of sky positions for cross-matching (nested scheme, cdshealpix).

A catalog is indexed once at one HEALPix order (``hpx`` column, nested scheme; Górski et al. 2005,
ApJ 622, 759).  An object's candidates are the catalog sources whose pixel is the object's own pixel
or one of its 8 neighbours.  That block of (at most) 9 pixels must contain every point within the
match radius of any point of the central pixel, whatever the pixel's shape.  LSDB/HATS make the same
choice (their ``avgsize2mindist`` takes the minimum distance as a fixed fraction of the mean size).

The rule used here: the order is the largest order whose mean pixel size ``sqrt(4 pi / (12 * 4**k))``
times ``COVERAGE_FRACTION`` is at least the radius.  The covered distance (from a point of a pixel to
the outer border of its 3x3 block) was measured with cdshealpix pixel edges at orders 4, 8, 12 and
16 on 12,000 points concentrated at the poles and at the base-pixel corners where HEALPix pixels are
most distorted: its minimum was 0.68 times the mean pixel size.  ``COVERAGE_FRACTION = 0.5`` keeps a
margin; tests/unit/test_xmatch_healpix.py checks the rule against cdshealpix's own cone coverage.
"""

from __future__ import annotations

import math

import astropy.units as u
import cdshealpix.nested as cds
import numpy as np
from astropy.coordinates import Latitude, Longitude

# Deepest order cdshealpix supports (nside = 2**29).
MAX_ORDER = 29

# Fraction of the mean pixel size that a pixel plus its 8 neighbours always cover around any point of
# the pixel (measured minimum 0.68; see the module docstring).
COVERAGE_FRACTION = 0.5

# Pixels that do not exist (7 instead of 8 neighbours at the corners of the 12 base pixels, or a
# neighbour repeated at order 0) are marked with this value in neighbour blocks.
NO_PIXEL = -1

_ARCSEC_PER_RAD = math.degrees(1.0) * 3600.0


def mean_pixel_size_arcsec(order: int) -> float:
    """Square root of the (equal) pixel area at ``order``, in arcsec (``healpy.nside2resol``)."""
    return math.sqrt(4.0 * math.pi / (12 * 4**order)) * _ARCSEC_PER_RAD


def covered_radius_arcsec(order: int) -> float:
    """The radius that a pixel and its 8 neighbours always cover at ``order`` (see module docstring)."""
    return COVERAGE_FRACTION * mean_pixel_size_arcsec(order)


def order_for_radius(radius_arcsec: float) -> int:
    """Largest order whose pixel + 8 neighbours cover ``radius_arcsec`` around every point of the pixel.

    Raises ValueError for a radius that is not positive or that even order 0 does not cover (~29 deg).
    """
    if not (radius_arcsec > 0 and math.isfinite(radius_arcsec)):
        raise ValueError(f"match radius must be a positive number of arcsec, got {radius_arcsec!r}")
    if radius_arcsec > covered_radius_arcsec(0):
        raise ValueError(
            f"match radius {radius_arcsec} arcsec exceeds {covered_radius_arcsec(0):.0f} arcsec, "
            "the largest radius a HEALPix pixel and its neighbours cover"
        )
    # covered_radius halves at each order: solve COVERAGE * size(0) / 2**k >= r for the largest k.
    order = math.floor(math.log2(covered_radius_arcsec(0) / radius_arcsec))
    return min(order, MAX_ORDER)


def hpx_index(ra_deg: np.ndarray, dec_deg: np.ndarray, order: int) -> np.ndarray:
    """Nested HEALPix pixel (int64) of each position (degrees, ICRS) at ``order``."""
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    if ra.size == 0:
        return np.empty(0, dtype=np.int64)
    ipix = cds.lonlat_to_healpix(Longitude(ra, unit=u.deg), Latitude(dec, unit=u.deg), order)
    return ipix.astype(np.int64)


def neighbour_block(hpx: np.ndarray, order: int) -> np.ndarray:
    """The pixel and its 8 neighbours, shape (N, 9) int64, each pixel at most once per row.

    Missing neighbours (base-pixel corners have 7) and repeats (order 0) are ``NO_PIXEL``; rows are
    sorted so that the real pixels come last.
    """
    pix = np.asarray(hpx, dtype=np.int64)
    if pix.size == 0:
        return np.empty((0, 9), dtype=np.int64)
    block = np.sort(cds.neighbours(pix.astype(np.uint64), order).astype(np.int64), axis=1)
    repeated = np.zeros_like(block, dtype=bool)
    repeated[:, 1:] = block[:, 1:] == block[:, :-1]
    block[repeated] = NO_PIXEL
    return np.sort(block, axis=1)


def block_pixels(ra_deg: np.ndarray, dec_deg: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, pixel) for each position and each pixel of its 3x3 block, the key of a join on ``hpx``.

    Rows with a NaN coordinate have no pixel and are left out.
    """
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    placed = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
    block = neighbour_block(hpx_index(ra[placed], dec[placed], order), order)
    real = block != NO_PIXEL
    rows = np.broadcast_to(placed[:, None], block.shape)[real]
    return rows, block[real]
