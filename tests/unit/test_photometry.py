"""Flux <-> AB magnitude conventions (lenga.photometry)."""

import numpy as np
import pytest

from lenga import photometry


def test_ab_zeropoint_is_3631_jansky_in_njy():
    # 3631 Jy = 3.631e12 nJy is magnitude 0 by definition of the AB system.
    assert photometry.flux_to_mag(3.631e12)[0] == pytest.approx(0.0, abs=1e-4)
    assert photometry.mag_to_flux(31.4)[0] == pytest.approx(1.0)
    assert photometry.mag_to_flux(21.4)[0] == pytest.approx(1e4)


def test_round_trip_with_errors():
    mag = np.array([14.0, 18.5, 22.0, 24.7])
    mag_err = np.array([0.01, 0.05, 0.1, 0.3])
    flux, flux_err = photometry.mag_to_flux(mag, mag_err)
    back, back_err = photometry.flux_to_mag(flux, flux_err)
    np.testing.assert_allclose(back, mag, rtol=1e-12)
    np.testing.assert_allclose(back_err, mag_err, rtol=1e-12)
    # sigma_m = 1.0857 sigma_f / f
    np.testing.assert_allclose(flux_err / flux, mag_err / 1.0857362, rtol=1e-6)


def test_non_positive_flux_has_no_magnitude():
    mag, mag_err = photometry.flux_to_mag([-5.0, 0.0, np.nan, 100.0], [1.0, 1.0, 1.0, 1.0])
    assert np.isnan(mag[:3]).all() and np.isnan(mag_err[:3]).all()
    assert mag[3] == pytest.approx(31.4 - 5.0)


def test_difference_flux_sign_follows_isdiffpos():
    flux, flux_err = photometry.difference_flux_from_mag([20.0, 20.0], [0.1, 0.1], [True, False])
    assert flux[0] == pytest.approx(10 ** (-0.4 * (20.0 - 31.4)))
    assert flux[1] == pytest.approx(-flux[0])
    assert flux_err[0] == pytest.approx(flux_err[1]) and flux_err[0] > 0


def test_difference_mag_from_signed_flux_is_inverse_of_ztf_convention():
    flux = np.array([1234.5, -987.0])
    mag, mag_err, positive = photometry.difference_mag_from_flux(flux, [10.0, 20.0])
    assert positive.tolist() == [True, False]
    again, _ = photometry.difference_flux_from_mag(mag, mag_err, positive)
    np.testing.assert_allclose(again, flux, rtol=1e-12)
    assert mag_err[1] == pytest.approx(1.0857362 * 20.0 / 987.0, rel=1e-6)


def test_isdiffpos_spellings():
    assert [photometry.ISDIFFPOS.get(v) for v in ("t", "1", "f", "0", "x", None)] == [
        True, True, False, False, None, None]


def test_zeropoint_flux_conversion():
    # A source of magnitude m has f_DN = 10**(-0.4 (m - zp)) counts, i.e. 10**(-0.4 (m - 31.4)) nJy.
    zp, m = 26.27, 18.0
    counts = 10 ** (-0.4 * (m - zp))
    assert photometry.zeropoint_flux_to_njy(counts, zp) == pytest.approx(photometry.mag_to_flux(m)[0])
    np.testing.assert_allclose(photometry.zeropoint_flux_to_njy([-100.0, 0.0], [25.0, 25.0]),
                               [-100.0 * 10 ** (-0.4 * (25.0 - 31.4)), 0.0])
