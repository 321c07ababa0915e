"""The HEALPix order rule: a pixel and its neighbours cover the match radius everywhere on the sky."""

import astropy.units as u
import cdshealpix.nested as cds
import numpy as np
import pytest
from astropy.coordinates import Latitude, Longitude

from lenga.healpix import (
    MAX_ORDER,
    NO_PIXEL,
    block_pixels,
    covered_radius_arcsec,
    hpx_index,
    mean_pixel_size_arcsec,
    neighbour_block,
    order_for_radius,
)


def _hard_positions(rng, n):
    """Uniform sky plus the last degree around both poles and the corners of the base pixels."""
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    q = n // 4
    dec[:q] = 90 - rng.uniform(0, 1, q)
    dec[q : 2 * q] = -90 + rng.uniform(0, 1, q)
    ra[2 * q : 3 * q] = (rng.integers(0, 8, q) * 45 + rng.normal(0, 0.3, q)) % 360
    dec[2 * q : 3 * q] = rng.choice([-1, 0, 1], q) * np.degrees(np.arcsin(2 / 3)) + rng.normal(0, 0.3, q)
    return ra, dec


@pytest.mark.parametrize("order", [2, 9, 16])
def test_block_contains_every_cell_of_the_cone(order):
    """cdshealpix's own cone coverage at the covered radius never leaves the 3x3 block."""
    rng = np.random.default_rng(order)
    ra, dec = _hard_positions(rng, 800)
    radius = covered_radius_arcsec(order) * u.arcsec
    blocks = neighbour_block(hpx_index(ra, dec, order), order)
    outside = 0
    for i in range(len(ra)):
        cells, _, _ = cds.cone_search(Longitude(ra[i] * u.deg), Latitude(dec[i] * u.deg), radius, order, flat=True)
        outside += int(~np.isin(cells.astype(np.int64), blocks[i]).all())
    assert outside == 0


def test_order_for_radius():
    assert order_for_radius(1.0) == 16
    assert order_for_radius(5.0) == 14
    assert order_for_radius(60.0) == 10
    for radius in (0.01, 1.0, 2.0, 5.0, 60.0, 3600.0):
        order = order_for_radius(radius)
        assert covered_radius_arcsec(order) >= radius  # covered ...
        assert order == MAX_ORDER or covered_radius_arcsec(order + 1) < radius  # ... and the deepest
    assert order_for_radius(1e-9) == MAX_ORDER
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number"):
            order_for_radius(bad)
    with pytest.raises(ValueError, match="exceeds"):
        order_for_radius(40 * 3600.0)


def test_mean_pixel_size():
    # 12 * 4**k pixels share the sphere's 4 pi sr.
    assert mean_pixel_size_arcsec(0) == pytest.approx(np.degrees(np.sqrt(np.pi / 3)) * 3600)
    assert mean_pixel_size_arcsec(10) == pytest.approx(mean_pixel_size_arcsec(0) / 1024)


def test_neighbour_block_shape_missing_and_unique():
    # Order 0: base pixel 0 touches only 6 others (two slots missing); no pixel is listed twice.
    block = neighbour_block(np.array([0, 4, 5]), 0)
    assert block.shape == (3, 9)
    for row in block:
        real = row[row != NO_PIXEL]
        assert len(real) == len(set(real.tolist()))
    assert sorted(block[0][block[0] != NO_PIXEL].tolist()) == [0, 1, 2, 3, 4, 5, 8]
    # Deep order, generic pixel: 9 distinct pixels including itself.
    pix = hpx_index(np.array([123.4]), np.array([-12.3]), 16)
    block = neighbour_block(pix, 16)
    assert (block != NO_PIXEL).sum() == 9 and pix[0] in block[0]
    assert neighbour_block(np.array([], dtype=np.int64), 5).shape == (0, 9)


def test_hpx_index_matches_cdshealpix_and_dtype():
    ra, dec = np.array([0.0, 359.999999, 10.0]), np.array([90.0, -90.0, 0.0])
    pix = hpx_index(ra, dec, 12)
    assert pix.dtype == np.int64
    ref = cds.lonlat_to_healpix(Longitude(ra * u.deg), Latitude(dec * u.deg), 12).astype(np.int64)
    np.testing.assert_array_equal(pix, ref)
    assert hpx_index(np.array([]), np.array([]), 3).shape == (0,)


def test_block_pixels_skips_unplaced_rows():
    ra, dec = np.array([10.0, np.nan, 0.0]), np.array([10.0, 5.0, 90.0])
    rows, pixels = block_pixels(ra, dec, 8)
    assert sorted(set(rows.tolist())) == [0, 2]
    for row in (0, 2):
        block = neighbour_block(hpx_index(ra[[row]], dec[[row]], 8), 8)[0]
        assert sorted(pixels[rows == row].tolist()) == sorted(block[block != NO_PIXEL].tolist())
