"""ALeRCE's magnitude correction (lenga.curves.correction): hand-made numbers, and ALeRCE's own
output for 355 real detections (../shared/data/real/alerce_corrected_detections.parquet)."""

import numpy as np
import pandas as pd
import pytest

from lenga.curves.correction import (
    NOT_MEASURABLE_MAG,
    corrected_magnitudes,
    first_corrected,
    is_corrected,
    is_dubious,
    is_stellar,
)
from lenga.curves.magstats import object_statistics
from lenga.curves.points import DETECTION

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


def correct_detections(detections: pd.DataFrame) -> pd.DataFrame:
    """ALeRCE's correction of a frame of detections with the fixture's columns (``objectId, fid,
    mjd``, the inputs), on the same index: ``corrected, dubious`` and the corrected values."""
    sign = np.where(detections["isdiffpos"] > 0, 1.0, -1.0)
    corrected = is_corrected(detections["distnr"])
    magnitudes = corrected_magnitudes(detections["magpsf"], detections["sigmapsf"], sign,
                                      detections["magnr"], detections["sigmagnr"], corrected)
    object_band = detections.groupby(["objectId", "fid"], sort=False).ngroup().to_numpy()
    dubious = is_dubious(corrected, sign < 0, first_corrected(object_band, detections["mjd"], corrected))
    return pd.DataFrame({"corrected": corrected, "dubious": dubious,
                         **dict(zip(("magpsf_corr", "sigmapsf_corr", "sigmapsf_corr_ext"), magnitudes, strict=True))},
                        index=detections.index)


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


def curve_of(detections: pd.DataFrame) -> pd.DataFrame:
    """Light-curve points (lenga.curves.points) of detections with the fixture's columns."""
    return pd.DataFrame({
        "survey": "ztf", "objectId": detections["objectId"], "kind": DETECTION,
        "candid": detections["candid"].astype("int64"), "mjd": detections["mjd"],
        "band": detections["fid"].map({1: "g", 2: "r"}), "magpsf": detections["magpsf"],
        "sigmapsf": detections["sigmapsf"], "psfFlux": np.nan, "psfFluxErr": np.nan,
        "isdiffpos": detections["isdiffpos"] > 0, "diffmaglim": np.nan, "ra": np.nan, "dec": np.nan,
        "corrected": detections["corrected"], "stellar": False, "magpsf_corr": detections["magpsf_corr"]})


def test_objects_count_the_dubious_detections_per_band_as_alerce(alerce):
    ours = object_statistics(curve_of(alerce)).set_index("objectId")
    expected = alerce.groupby(["objectId", "fid"])["dubious"].sum().unstack("fid")
    for fid, band in ((1, "g"), (2, "r")):
        present = expected[fid].notna()
        assert (ours.loc[present[present].index, f"ndubious_{band}"] == expected.loc[present, fid]).all()
    first = alerce.sort_values("mjd").groupby("objectId")["corrected"].first()
    assert (ours.loc[first.index, "corrected"] == first).all()


def test_object_flags_are_those_of_the_first_detection_and_unknown_stays_null():
    def row(obj, candid, mjd, band, corrected, mag_corr=np.nan, positive=True):
        return {"objectId": obj, "candid": candid, "mjd": mjd, "fid": {"g": 1, "r": 2}[band], "magpsf": 19.0,
                "sigmapsf": 0.1, "isdiffpos": 1.0 if positive else -1.0, "corrected": corrected,
                "magpsf_corr": mag_corr}

    detections = pd.DataFrame([
        row("A", 1, 60000.0, "g", True, 17.0), row("A", 2, 60001.0, "g", False, positive=False),
        row("A", 3, 60002.0, "g", True, 17.2), row("A", 4, 60003.0, "g", True, NOT_MEASURABLE_MAG),
        row("A", 5, 60000.5, "r", False), row("A", 6, 60001.5, "r", False, positive=False),
        row("B", 7, 60000.0, "g", None), row("B", 8, 60001.0, "g", True, 16.0),
    ])
    stats = object_statistics(curve_of(detections).astype({"corrected": "boolean"})).set_index("objectId")
    a, b = stats.loc["A"], stats.loc["B"]
    assert bool(a["corrected"])
    # g: the uncorrected negative one differs from the first (corrected): 1; r: a negative off any source: 1
    assert (a["ndubious_g"], a["ndubious_r"]) == (1, 1)
    assert a["magmean_corr_g"] == pytest.approx(17.1) and np.isnan(a["magmean_corr_r"])  # the 100 is left out
    assert pd.isna(b["corrected"]) and pd.isna(b["ndubious_g"]) and b["magmean_corr_g"] == 16.0
