"""ALeRCE's magnitude correction (lenga.curves.correction): hand-made numbers, and ALeRCE's own
output for 355 real detections (../shared/data/real/alerce_corrected_detections.parquet)."""

import numpy as np
import pandas as pd
import pytest

from lenga.curves.correction import (
    NOT_MEASURABLE_MAG,
    correct_detections,
    corrected_magnitudes,
    first_corrected,
    is_corrected,
    is_dubious,
    is_stellar,
)

#: The fixture's values are rounded to 6 decimals (inputs and outputs): the recomputed magnitudes
#: differ from ALeRCE's by up to 2.6e-6 mag.
FIXTURE_ATOL = 5e-6


def test_reference_and_equal_positive_difference_make_one_magnitude_brighter():
    mag, err, err_ext = corrected_magnitudes([20.0], [0.1], [1.0], [20.0], [0.05], [True])
    assert mag[0] == pytest.approx(20.0 - 2.5 * np.log10(2.0))
    assert err[0] == pytest.approx(np.sqrt(0.1 ** 2 - 0.05 ** 2) / 2.0)
    assert err_ext[0] == pytest.approx(0.1 / 2.0)


def test_negative_difference_fades_the_reference():
    mag, _, _ = corrected_magnitudes([21.0], [0.1], [-1.0], [20.0], [0.01], [True])
    assert mag[0] == pytest.approx(-2.5 * np.log10(10 ** -8 - 10 ** -8.4))


def test_unmeasurable_values_are_alerces_sentinel_and_uncorrected_are_nan():
    # a negative difference brighter than the reference (no flux left), a reference error larger
    # than the difference error, and a detection off any reference source
    mag, err, err_ext = corrected_magnitudes([19.0, 20.0, 18.0], [0.1, 0.01, 0.1], [-1.0, 1.0, 1.0],
                                             [20.0, 20.0, 20.0], [0.01, 0.2, 0.01], [True, True, False])
    assert mag[0] == err[0] == err_ext[0] == NOT_MEASURABLE_MAG
    assert np.isfinite(mag[1]) and err[1] == NOT_MEASURABLE_MAG and np.isfinite(err_ext[1])
    assert np.isnan([mag[2], err[2], err_ext[2]]).all()


def test_corrected_is_a_reference_source_within_1_4_arcsec():
    assert is_corrected([0.2, 1.39, 1.4, 5.0, np.nan]).tolist() == [True, True, False, False, False]


def test_dubious_is_a_correction_unlike_the_first_in_its_object_and_band():
    group = np.array([0, 0, 0, 1, 1])
    mjd = np.array([3.0, 1.0, 2.0, 1.0, 2.0])
    corrected = np.array([True, False, True, False, False])
    negative = np.array([False, False, False, False, True])
    first = first_corrected(group, mjd, corrected)
    assert first.tolist() == [False, False, False, False, False]
    assert is_dubious(corrected, negative, first).tolist() == [True, False, True, False, True]


def test_stellar_from_ps1_or_from_a_point_like_reference_source():
    stellar = is_stellar(distnr=[0.5, 0.5, 0.5, 0.5, 3.0],
                         distpsnr1=[0.3, 0.3, 5.0, 5.0, 0.3],
                         sgscore1=[0.9, 0.1, 0.1, 0.1, 0.9],
                         chinr=[5.0, 1.0, 1.0, 1.0, 1.0],
                         sharpnr=[0.5, 0.0, 0.0, 0.2, 0.0])
    # a PS1 star; a PS1 galaxy (ZTF's point-likeness is not asked when PS1 has a source near);
    # no PS1 source and a point-like reference source; no PS1 source and a sharp one; off ZTF's source
    assert stellar.tolist() == [True, False, True, False, False]


@pytest.fixture(scope="module")
def alerce(shared_data):
    path = shared_data / "real" / "alerce_corrected_detections.parquet"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return pd.read_parquet(path)


def test_flags_match_alerce_exactly(alerce):
    ours = correct_detections(alerce)
    assert (ours["corrected"] == alerce["corrected"]).all()
    assert (ours["dubious"] == alerce["dubious"]).all()
    assert ours["corrected"].sum() == 196 and ours["dubious"].sum() == 28


@pytest.mark.parametrize("column", ["magpsf_corr", "sigmapsf_corr", "sigmapsf_corr_ext"])
def test_magnitudes_match_alerce(alerce, column):
    ours = correct_detections(alerce)[column].to_numpy()
    theirs = alerce[column].to_numpy()
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=FIXTURE_ATOL, equal_nan=True)
