"""Light-curve merging is a set union (order, repetition and splitting do not matter) and the
``objects`` statistics are exact on analytic curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lenga.curves.magstats import object_statistics, statistics_columns
from lenga.curves.points import (
    BANDS,
    CONTEXT_COLUMNS,
    DETECTION,
    OBJECTS_HPX_ORDER,
    empty_curve,
    latest_context,
    merge_curves,
)
from lenga.healpix import hpx_index


def detection(obj, candid, mjd, band, mag, ra=150.0, dec=2.0, sigma=0.1, positive=True, survey="ztf",
              corrected=None, stellar=None, mag_corr=None):
    return dict(survey=survey, objectId=obj, kind=DETECTION, candid=candid, mjd=mjd, band=band, magpsf=mag,
                sigmapsf=sigma, psfFlux=10 ** (-0.4 * (mag - 31.4)), psfFluxErr=1.0, isdiffpos=positive,
                diffmaglim=20.5, ra=ra, dec=dec, corrected=corrected, stellar=stellar, magpsf_corr=mag_corr)


def non_detection(obj, kind, mjd, band, limit=20.0, flux=None, survey="ztf"):
    return dict(survey=survey, objectId=obj, kind=kind, candid=None, mjd=mjd, band=band, magpsf=None,
                sigmapsf=None, psfFlux=flux, psfFluxErr=limit / 5, isdiffpos=None, diffmaglim=limit,
                ra=None, dec=None, corrected=None, stellar=None, magpsf_corr=None)


@pytest.fixture
def points() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for k, obj in enumerate(["ZTF25aaa", "ZTF25aab", "ZTF25aac"]):
        for i in range(12):
            band = "gr"[i % 2]
            on_reference = k == 1 and i % 3 != 2  # one object on a reference source, a few detections off it
            rows.append(detection(obj, 1000 * k + i, 60000 + 1.5 * i + 0.1 * k, band, 18 + rng.normal(0, 0.3),
                                  ra=150 + rng.normal(0, 1e-4), dec=2 + rng.normal(0, 1e-4),
                                  corrected=on_reference if k < 2 else None, stellar=on_reference if k < 2 else None,
                                  mag_corr=16 + rng.normal(0, 0.1) if on_reference else None))
        rows.append(non_detection(obj, "upper_limit", 59990.0 + k, "g"))
        rows.append(non_detection(obj, "forced", 59995.0 + k, "r", flux=12.0))
    rows += [detection("123", 77, 60010.0, band, 21.0, survey="lsst", ra=10.0, dec=-30.0) for band in "u"]
    return pd.DataFrame(rows)


def test_merge_is_order_and_repetition_independent(points):
    reference = merge_curves(points)
    assert len(reference) == len(points)
    assert reference.groupby(["survey", "objectId"])["mjd"].apply(lambda s: s.is_monotonic_increasing).all()
    shuffled = points.sample(frac=1.0, random_state=1)
    halves = [shuffled.iloc[part] for part in np.array_split(np.arange(len(shuffled)), 3)]
    variants = {
        "reversed": merge_curves(points.iloc[::-1]),
        "shuffled": merge_curves(shuffled),
        "duplicated": merge_curves(points, points.sample(frac=0.7, random_state=2), points.iloc[::-1]),
        "split across calls": merge_curves(merge_curves(halves[2], halves[0]), halves[1], halves[0]),
        "one object at a time": merge_curves(*[g for _, g in points.groupby("objectId")]),
    }
    stats = object_statistics(points)
    for name, curve in variants.items():
        pd.testing.assert_frame_equal(curve, reference, obj=name)
        pd.testing.assert_frame_equal(object_statistics(curve), stats, obj=name)


def test_conflicting_copies_resolve_the_same_way_in_any_order():
    first = pd.DataFrame([detection("A", 1, 60000.0, "g", 18.0)])
    second = pd.DataFrame([detection("A", 1, 60000.0, "g", 18.5)])  # same candid, other value
    a, b = merge_curves(first, second), merge_curves(second, first)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 1 and a["magpsf"].item() == 18.0


def test_same_time_and_band_of_different_kinds_are_kept():
    rows = pd.DataFrame([detection("A", 1, 60000.0, "g", 18.0),
                         non_detection("A", "forced", 60000.0, "g", flux=50.0),
                         non_detection("A", "upper_limit", 60000.0, "g"),
                         non_detection("A", "upper_limit", 60000.0, "r")])
    assert len(merge_curves(rows, rows)) == 4


def test_statistics_on_an_analytic_curve_are_exact():
    # g: a linear fade of 0.05 mag/day from 18.0, 9 points every 2 days; one negative detection.
    mjd = 60000.0 + 2.0 * np.arange(9)
    mags = 18.0 + 0.05 * (mjd - mjd[0])
    rows = [detection("A", i, t, "g", m, ra=359.9999 + 2e-4 * (i % 2), dec=10.0) for i, (t, m) in
            enumerate(zip(mjd, mags, strict=True))]
    rows.append(detection("A", 99, 60030.0, "g", 19.5, positive=False))
    rows.append(detection("A", 50, 60001.0, "r", 17.0, sigma=0.05, ra=0.0, dec=10.0))
    rows += [non_detection("A", "upper_limit", 59990.0 + i, "g") for i in range(3)]
    rows.append(non_detection("A", "forced", 59999.0, "r", flux=3.0))
    row = object_statistics(pd.DataFrame(rows)).iloc[0]

    assert list(object_statistics(pd.DataFrame(rows)).columns) == statistics_columns()
    assert (row["ndet"], row["n_upper_limits"], row["n_forced"]) == (11, 3, 1)
    assert (row["firstmjd"], row["lastmjd"]) == (60000.0, 60030.0)
    assert row["ndet_g"] == 10 and row["ndet_r"] == 1 and row["ndet_u"] == 0
    assert row["firstmjd_g"] == 60000.0 and row["lastmjd_g"] == 60016.0  # the negative one has no magnitude
    assert row["magfirst_g"] == 18.0 and row["maglast_g"] == pytest.approx(18.8)
    assert row["magmean_g"] == pytest.approx(18.4) and row["magmedian_g"] == pytest.approx(18.4)
    assert row["magmin_g"] == 18.0 and row["magmax_g"] == pytest.approx(18.8)
    assert row["magstd_g"] == pytest.approx(np.std(mags, ddof=1))
    assert row["magrate_g"] == pytest.approx(0.05)
    assert row["magmean_r"] == 17.0 and np.isnan(row["magstd_r"]) and np.isnan(row["magrate_r"])
    assert np.isnan(row["magmean_i"])

    assert row["hpx"] == hpx_index(np.array([row["meanra"]]), np.array([row["meandec"]]), OBJECTS_HPX_ORDER)[0]


def test_weighted_position_and_scatter():
    assert object_statistics(pd.DataFrame([detection("A", 1, 6e4, "g", 18.0, ra=-1e-20)]))["meanra"].item() == 0.0
    ra = [359.9999, 0.0001, 359.9999, 0.0001, 0.0]
    sigma = [0.1, 0.08, 0.1, 0.1, 0.05]
    rows = pd.DataFrame([detection("A", i, 60000.0 + i, "g", 18.0, ra=r, dec=-20.0, sigma=s)
                         for i, (r, s) in enumerate(zip(ra, sigma, strict=True))])
    row = object_statistics(rows).iloc[0]
    w = 1 / np.array(sigma) ** 2
    offsets = np.array([-1e-4, 1e-4, -1e-4, 1e-4, 0.0])
    mean = np.sum(w * offsets) / w.sum()
    assert mean > 0 and row["meanra"] == pytest.approx(mean, abs=1e-9)
    assert row["meandec"] == pytest.approx(-20.0, abs=1e-9)
    expected = np.sqrt(np.sum(w * (offsets - mean) ** 2) / w.sum()) * np.cos(np.radians(20.0)) * 3600
    assert row["sigmara"] == pytest.approx(expected, rel=1e-6)
    assert row["sigmadec"] == pytest.approx(0.0, abs=1e-6)


def test_object_without_detections_and_empty_input():
    rows = pd.DataFrame([non_detection("9", "forced", 60000.0, "z", flux=5.0, survey="lsst")])
    row = object_statistics(rows).iloc[0]
    assert row["ndet"] == 0 and row["n_forced"] == 1 and row["hpx"] == -1
    assert np.isnan(row["meanra"]) and np.isnan(row["firstmjd"])
    assert all(row[f"ndet_{b}"] == 0 for b in BANDS)
    assert object_statistics(empty_curve()).empty


def test_bad_points_are_rejected_with_a_reason():
    bad_band = pd.DataFrame([detection("A", 1, 60000.0, "w", 18.0)])
    with pytest.raises(ValueError, match="unknown band"):
        object_statistics(bad_band)
    no_candid = pd.DataFrame([detection("A", None, 60000.0, "g", 18.0)])
    with pytest.raises(ValueError, match="without candid"):
        merge_curves(no_candid)
    with pytest.raises(ValueError, match="lack column"):
        merge_curves(pd.DataFrame({"survey": ["ztf"], "objectId": ["A"]}))


def test_context_comes_from_the_latest_alert_in_any_order():
    alerts = pd.DataFrame({"survey": ["ztf", "ztf", "ztf", "lsst"], "objectId": ["A", "A", "A", "7"],
                           "mjd": [60001.0, 60003.0, 60003.0, 60000.0], "candid": [5, 6, 9, 1],
                           "sgscore1": [0.1, 0.2, 0.9, None], "distpsnr1": [1.0, 2.0, 3.0, None],
                           "srmag1": [17.0, 18.0, 19.0, None], "extendedness": [None, None, None, 0.4]})
    expected = latest_context(alerts)
    pd.testing.assert_frame_equal(latest_context(alerts.iloc[::-1]), expected)
    row = expected.set_index(["survey", "objectId"]).loc[("ztf", "A")]
    assert (row["sgscore1"], row["distpsnr1"], row["srmag1"]) == (0.9, 3.0, 19.0)
    assert list(expected.columns) == ["survey", "objectId", "mjd", "candid", *CONTEXT_COLUMNS]
    with pytest.raises(ValueError, match="lacks column"):
        latest_context(alerts.drop(columns=["srmag1"]))


def _same_state(a: tuple, b: tuple) -> bool:
    """State tuples equal value by value, NaN equal to NaN."""
    return len(a) == len(b) and all(
        len(x) == len(y) and all(u == v or (u != u and v != v) for u, v in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True))


def _as_from_spark(points: pd.DataFrame) -> pd.DataFrame:
    """Points as the processor receives them: candid NO_CANDID for non-detections, no NA ints."""
    from lenga.curves.points import NO_CANDID

    return points.assign(candid=points["candid"].fillna(NO_CANDID).astype("int64"))


def test_processor_fast_merge_equals_the_general_merge(points):
    from udfs.curves import curve_state, merged_state

    rng = np.random.default_rng(8)
    for obj, group in points.groupby("objectId"):
        key = (group["survey"].iloc[0], obj)
        for trial in range(6):
            shuffled = group.sample(frac=1.0, random_state=trial)
            cut = int(rng.integers(0, len(group)))
            stored = curve_state(merge_curves(shuffled.iloc[:cut])) if cut else None
            new = shuffled.iloc[cut:]
            if trial % 2:  # repeated points (a replay): the general merge decides between the copies
                new = pd.concat([new, shuffled.iloc[: max(cut, 1)]])
            expected = curve_state(merge_curves(group))
            assert _same_state(merged_state(key, stored, _as_from_spark(new)), expected), (obj, trial)
    with pytest.raises(ValueError, match="unknown point kind"):
        merged_state(("ztf", "x"), None, _as_from_spark(points.assign(kind="limit")))


def test_processor_context_is_the_latest_alert():
    from udfs.curves import latest_context_state

    alerts = pd.DataFrame({"survey": "ztf", "objectId": "A", "mjd": [60001.0, 60003.0, 60003.0, 60002.0],
                           "candid": [5, 9, 6, 7], "sgscore1": [0.1, 0.9, 0.2, 0.3], "distpsnr1": [1.0, 3.0, 2.0, None],
                           "srmag1": [17.0, 19.0, 18.0, 17.5], "extendedness": None})
    expected = latest_context(alerts).iloc[0]
    for order in (alerts, alerts.iloc[::-1]):
        state = latest_context_state(None, order)
        assert state == (60003.0, 9, 0.9, 3.0, 19.0, None) == (expected["mjd"], expected["candid"], 0.9, 3.0, 19.0,
                                                               None)
    # a stored context wins only when it is later (or the very same alert)
    assert latest_context_state((60004.0, 1, 0.5, None, None, None), alerts)[:2] == (60004.0, 1)
    assert latest_context_state((60000.0, 1, 0.5, None, None, None), alerts)[:2] == (60003.0, 9)
    assert latest_context_state(None, alerts.iloc[:0]) is None
