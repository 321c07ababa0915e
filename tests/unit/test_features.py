"""Light-curve features against analytic truth (lenga.features)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from lenga.features import FEATURE_SCHEMA, FeatureConfig, extract_features, profile, transient
from lenga.features.curves import pack
from lenga.features.simulate import night_times, ou_process, villar_flux, ztf_like_batch
from lenga.features.transient import transient_like
from lenga.photometry import AB_ZEROPOINT_NJY, MAG_ERR_PER_REL_FLUX

CONFIG = FeatureConfig()
ZTF_BANDS = ("g", "r")


def frame(object_id: str, band: str, t: np.ndarray, mag: np.ndarray, err: np.ndarray,
          survey: str = "ztf") -> pd.DataFrame:
    """Detections rows in the ``detections`` table layout, photometry given as magnitudes."""
    flux = 10 ** (-0.4 * (mag - AB_ZEROPOINT_NJY))
    return pd.DataFrame({"survey": survey, "objectId": object_id, "candid": np.arange(len(t)), "mjd": t,
                         "band": band, "magpsf": mag, "sigmapsf": err, "psfFlux": flux,
                         "psfFluxErr": flux * err / MAG_ERR_PER_REL_FLUX, "isdiffpos": True})


def flux_frame(object_id: str, band: str, t: np.ndarray, flux: np.ndarray, flux_err: np.ndarray) -> pd.DataFrame:
    """Detections rows with only LSST-style signed fluxes (no magnitudes)."""
    return pd.DataFrame({"survey": "lsst", "objectId": object_id, "candid": np.arange(len(t)), "mjd": t,
                         "band": band, "psfFlux": flux, "psfFluxErr": flux_err})


def sinusoid_object(rng, object_id: str, period: float, n: int = 150, season: float = 200.0) -> pd.DataFrame:
    parts = []
    for k, band in enumerate(ZTF_BANDS):
        t = night_times(rng, n, season)
        err = np.full(n, 0.02)
        mag = 17.0 + 0.1 * k + 0.3 * np.sin(2 * np.pi * t / period + 0.7) + rng.normal(0, 0.02, n)
        parts.append(frame(object_id, band, t, mag, err))
    return pd.concat(parts, ignore_index=True)


def test_period_of_sinusoids_within_half_percent():
    rng = np.random.default_rng(11)
    periods = {"p0": 0.37, "p1": 1.7, "p2": 5.3, "p3": 23.0, "p4": 47.0}
    det = pd.concat([sinusoid_object(rng, name, p) for name, p in periods.items()], ignore_index=True)
    out = extract_features(det, None, CONFIG).set_index("objectId")
    for name, true_period in periods.items():
        found = out.loc[name, "period"]
        assert abs(found / true_period - 1) < 0.005, (name, true_period, found)
        assert out.loc[name, "period_power"] > 0.9
        # the first harmonic carries the 0.3 mag semi-amplitude, the others nothing
        assert out.loc[name, "harmonics_amplitude_1_g"] == pytest.approx(0.3, rel=0.05)
        assert out.loc[name, "harmonics_amplitude_2_g"] < 0.02


def test_villar_rise_and_fall_times_within_ten_percent():
    rng = np.random.default_rng(3)
    truth = {"g": (3.0, 25.0), "r": (5.0, 40.0)}
    parts = []
    for band, (rise, fall) in truth.items():
        t = np.sort(rng.uniform(0.0, 150.0, 60)) + 60000.0
        flux = villar_flux(t, 3e4, 60030.0, rise, fall, nu=0.1, gamma=8.0)
        err = np.full(len(t), 3e4 * 0.005)
        parts.append(flux_frame("sn", band, t, flux + rng.normal(0, 1, len(t)) * err, err))
    out = extract_features(pd.concat(parts), None, CONFIG).iloc[0]
    for band, (rise, fall) in truth.items():
        assert out[f"sn_rise_time_{band}"] == pytest.approx(rise, rel=0.1)
        assert out[f"sn_fall_time_{band}"] == pytest.approx(fall, rel=0.1)
        assert out[f"sn_reduced_chi2_{band}"] < 3


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_drw_tau_within_factor_two_and_iar_phi(seed):
    rng = np.random.default_rng(seed)
    taus = {"short": 20.0, "long": 80.0}
    parts = []
    for name, tau in taus.items():
        for band in ZTF_BANDS:
            t = night_times(rng, 600, 4000.0)
            err = np.full(len(t), 0.02)
            mag = 18.0 + ou_process(rng, t, tau, 0.25) + rng.normal(0, 0.02, len(t))
            parts.append(frame(name, band, t, mag, err))
    out = extract_features(pd.concat(parts), None, CONFIG).set_index("objectId")
    for name, tau in taus.items():
        for band in ZTF_BANDS:
            assert 0.5 < out.loc[name, f"drw_tau_{band}"] / tau < 2.0, (name, band, out.loc[name, f"drw_tau_{band}"])
            assert out.loc[name, f"drw_sigma_{band}"] == pytest.approx(0.25, rel=0.3)
            # IAR phi per day of an OU process is exp(-1 / tau)
            phi = out.loc[name, f"iar_phi_{band}"]
            assert 0.5 < -1.0 / np.log(phi) / tau < 2.0


def test_random_walk_structure_function_slope_and_mhps_ratio_against_white_noise():
    rng = np.random.default_rng(5)
    parts = []
    for k in range(5):
        t = night_times(rng, 250, 1500.0)
        err = np.full(len(t), 0.005)
        walk = 18.0 + ou_process(rng, t, 1e4, 0.4) + rng.normal(0, 0.005, len(t))
        parts += [frame(f"walk{k}", "g", t, walk, err), frame(f"white{k}", "g", t, 18 + rng.normal(0, 0.2, len(t)), err)]
    out = extract_features(pd.concat(parts), None, CONFIG).set_index("objectId")
    walk, white = out.filter(like="walk", axis=0), out.filter(like="white", axis=0)
    # an OU process far below its time scale is a random walk: SF ~ dt^0.5 (Schmidt et al. 2010)
    assert walk["sf_gamma_g"].median() == pytest.approx(0.5, abs=0.08)
    assert white["sf_gamma_g"].abs().max() < 0.05
    # red noise has its power at long time scales, white noise is flat
    assert walk["mhps_ratio_g"].min() > 5 * white["mhps_ratio_g"].max()


def test_known_statistics_on_simple_inputs():
    rng = np.random.default_rng(7)
    n = 4000
    t = np.arange(n, dtype=float) + 60000.0
    err = np.full(n, 0.05)
    noise = 18.0 + rng.normal(0, 0.05, n)
    line = 18.0 + 0.002 * (t - t[0])
    det = pd.concat([frame("noise", "g", t, noise, err), frame("line", "g", t, line, err)])
    out = extract_features(det, None, CONFIG).set_index("objectId")
    assert out.loc["noise", "eta_g"] == pytest.approx(2.0, abs=0.1)
    assert out.loc["noise", "stetson_K_g"] == pytest.approx(np.sqrt(2 / np.pi), abs=0.02)
    assert out.loc["noise", "amplitude_g"] == pytest.approx((noise.max() - noise.min()) / 2)
    assert out.loc["line", "linear_trend_g"] == pytest.approx(0.002, rel=1e-9)
    assert out.loc["line", "amplitude_g"] == pytest.approx(0.002 * (n - 1) / 2, rel=1e-9)
    assert out.loc["line", "n_det_g"] == n


def test_gskew_matches_its_definition():
    rng = np.random.default_rng(8)
    parts, expected = [], {}
    for k, n in enumerate([6, 17, 40, 333]):
        mag = 18 + rng.gamma(2.0, 0.3, n)
        parts.append(frame(f"o{k}", "r", np.arange(n) + 60000.0, mag, np.full(n, 0.05)))
        lo, hi, med = np.percentile(mag, 3), np.percentile(mag, 97), np.median(mag)
        expected[f"o{k}"] = np.median(mag[mag <= lo]) + np.median(mag[mag >= hi]) - 2 * med
    out = extract_features(pd.concat(parts), None, CONFIG).set_index("objectId")
    for name, value in expected.items():
        assert out.loc[name, "gskew_r"] == pytest.approx(value, rel=1e-12)


def rich_object(rng) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    parts, limits = [], []
    for k, band in enumerate(ZTF_BANDS):
        t = night_times(rng, 80, 250.0)
        err = np.full(len(t), 0.03)
        mag = 17.5 + 0.2 * k + 0.4 * np.sin(2 * np.pi * t / 3.1) + rng.normal(0, 0.03, len(t))
        parts.append(frame("rich", band, t, mag, err))
        limits.append(pd.DataFrame({"survey": "ztf", "objectId": "rich", "kind": "upper_limit", "band": band,
                                    "mjd": np.r_[t[0] - [9.0, 5.0, 2.0], t[-1] + [3.0, 6.0]],
                                    "diffmaglim": [20.1, 20.5, 19.8, 20.0, 20.3]}))
    context = pd.DataFrame({"objectId": ["rich"], "sgscore1": [0.2], "distpsnr1": [1.5], "srmag1": [16.9],
                            "extendedness": [0.1]})
    return pd.concat(parts, ignore_index=True), pd.concat(limits, ignore_index=True), context


def test_finite_inputs_give_finite_features_where_defined():
    det, nd, context = rich_object(np.random.default_rng(9))
    row = extract_features(det, nd, CONFIG, context).iloc[0]
    defined = [c for c in row.index if c not in ("objectId", "survey", "feature_version")
               and (c.endswith(ZTF_BANDS) and not c.startswith("colour_"))]
    defined += ["period", "period_snr", "period_power", "period_power_ratio", "colour_g_r_max", "colour_g_r_mean",
                *CONFIG.context_columns]
    bad = [c for c in defined if not np.isfinite(row[c])]
    assert bad == []
    assert row["sgscore1"] == 0.2 and row["srmag1"] == 16.9 and row["extendedness"] == 0.1
    assert row["n_non_det_before_g"] == 3 and row["n_non_det_after_g"] == 2
    assert row["last_diffmaglim_before_g"] == 19.8 and row["max_diffmaglim_before_g"] == 20.5
    g = det[det.band == "g"]
    assert row["dmag_first_det_g"] == pytest.approx(19.8 - g.sort_values("mjd").magpsf.iloc[0])
    assert row["colour_g_r_mean"] == pytest.approx(g.magpsf.mean() - det[det.band == "r"].magpsf.mean())
    # the other bands of the schema have no data: missing, not zero
    assert np.isnan(row["amplitude_i"]) and row["n_det_i"] == 0 and np.isnan(row["colour_r_i_max"])


def test_too_few_points_give_nan_and_objects_without_enough_are_dropped():
    rng = np.random.default_rng(10)
    t = night_times(rng, 12, 100.0)
    det = pd.concat([
        frame("ok", "g", t, 18 + rng.normal(0, 0.1, 12), np.full(12, 0.05)),
        frame("ok", "r", t[:3], 18 + rng.normal(0, 0.1, 3), np.full(3, 0.05)),
        frame("few", "g", t[:5], 18 + rng.normal(0, 0.1, 5), np.full(5, 0.05)),
    ])
    out = extract_features(det, None, CONFIG)
    assert list(out.objectId) == ["ok"]
    row = out.iloc[0]
    assert row["n_det_r"] == 3 and np.isnan(row["amplitude_r"]) and np.isnan(row["drw_tau_r"])
    assert np.isfinite(row["amplitude_g"]) and np.isfinite(row["period"])
    # 12 points: fewer than 2 * 4 + 2 harmonic-fit points is not the case, 8+ for the Villar fit neither
    assert np.isfinite(row["harmonics_amplitude_4_g"]) and np.isfinite(row["sn_rise_time_g"])


def test_no_detections_give_no_rows_with_the_schema_columns():
    """A block of the aggregation's pass may hold no curve with detections (its last few objects)."""
    out = extract_features(frame("none", "g", np.array([]), np.array([]), np.array([])), None, CONFIG)
    assert out.empty and list(out.columns) == FEATURE_SCHEMA.names


def test_duplicate_times_and_single_point_band_do_not_crash():
    rng = np.random.default_rng(12)
    det, nd, _ = rich_object(rng)
    single = frame("rich", "i", np.array([det.mjd.iloc[0] + 0.01]), np.array([18.0]), np.array([0.05]))
    config = FeatureConfig(bands={"ztf": ["g", "r", "i"]})
    clean = extract_features(pd.concat([det, single]), nd, config)
    repeated = extract_features(pd.concat([det, det.iloc[::3], single, single]), nd, config)
    assert repeated.iloc[0]["n_det_g"] == clean.iloc[0]["n_det_g"] == 80
    assert repeated.iloc[0]["n_det_i"] == 1 and np.isnan(repeated.iloc[0]["period_power_i"])
    pd.testing.assert_frame_equal(clean, repeated)


def test_output_matches_schema_and_bad_input_is_refused():
    det, nd, context = rich_object(np.random.default_rng(13))
    out = extract_features(det, nd, CONFIG, context)
    table = pa.Table.from_pandas(out, schema=FEATURE_SCHEMA, preserve_index=False)
    assert table.schema.names == FEATURE_SCHEMA.names and table.num_rows == 1
    assert all(f.metadata[b"description"] for f in FEATURE_SCHEMA)
    with pytest.raises(ValueError, match="lacks columns \\['mjd'\\]"):
        extract_features(det.drop(columns="mjd"), nd, CONFIG)
    with pytest.raises(ValueError, match="surveys \\['ptf'\\]"):
        extract_features(det.assign(survey="ptf"), nd, CONFIG)


def test_lsst_fluxes_alone_give_magnitude_features():
    rng = np.random.default_rng(14)
    t = night_times(rng, 40, 120.0)
    flux = 5000.0 * (1 + 0.3 * np.sin(2 * np.pi * t / 4.0))
    out = extract_features(flux_frame("123", "i", t, flux, np.full(len(t), 50.0)), None, CONFIG).iloc[0]
    assert out["survey"] == "lsst" and out["n_det_i"] == 40
    assert out["mean_i"] == pytest.approx(np.mean(AB_ZEROPOINT_NJY - 2.5 * np.log10(flux)))
    assert out["period"] == pytest.approx(4.0, rel=0.005)


def test_config_validation_and_yaml_defaults():
    text = (Path(__file__).resolve().parents[2] / "conf" / "features.yaml").read_text()
    assert FeatureConfig.from_dict(yaml.safe_load(text)) == CONFIG
    with pytest.raises(ValueError, match="unknown feature configuration keys \\['min_point'\\]"):
        FeatureConfig.from_dict({"min_point": 6})
    with pytest.raises(ValueError, match="min_points_per_band must be an integer >= 4"):
        FeatureConfig.from_dict({"min_points_per_band": 2})
    with pytest.raises(ValueError, match="unknown bands \\['w'\\]"):
        FeatureConfig.from_dict({"bands": {"ztf": ["g", "w"]}})
    with pytest.raises(ValueError, match="low > high"):
        FeatureConfig.from_dict({"mhps_timescales_days": [10, 100]})


def test_profile_reports_every_family_by_cpu_and_wall():
    det, nd = ztf_like_batch(np.random.default_rng(15), 6, max_points=40)
    rates = profile(det, nd, CONFIG)
    assert set(rates) == {"prepare", "variability", "stochastic", "period", "transient", "colour",
                          "nondetections", "sign", "assemble", "total"}
    for stage, by in rates.items():
        assert set(by) == {"cpu", "wall"} and all(np.isfinite(r) and r > 0 for r in by.values()), stage
    # the total is the sum of the stages' times, so it is slower than every stage
    assert all(rates["total"]["cpu"] <= by["cpu"] for by in rates.values())


def test_supernova_fit_retries_only_transient_like_curves():
    rng = np.random.default_rng(4)
    t = np.sort(rng.uniform(0.0, 200.0, 60)) + 60000.0
    err = np.full(len(t), 150.0)
    # a fast riser with a slow decline: LM from the typical-supernova start stalls on it
    supernova = villar_flux(t, 3e4, 60030.0, 1.5, 120.0, nu=0.1, gamma=8.0) + rng.normal(0, 1, len(t)) * err
    sinusoid = 1e4 * (1 + 0.5 * np.sin(2 * np.pi * t / 7.0)) + rng.normal(0, 1, len(t)) * err
    walk = 1e4 * (1 + ou_process(rng, t, 10.0, 0.3)) + rng.normal(0, 1, len(t)) * err
    group = np.repeat([0, 1, 2], len(t))
    curves, _ = pack(group, np.tile(t, 3), np.concatenate([supernova, sinusoid, walk]), np.tile(err, 3))
    assert transient_like(curves).tolist() == [True, False, False]
    columns = {name: k for k, name in enumerate(transient.names())}
    chi2 = columns["sn_reduced_chi2"]
    fit = transient.supernova_fit(curves, CONFIG.sn_lmsder_niter, CONFIG.sn_retry_chi2)
    first_only = transient.supernova_fit(curves, CONFIG.sn_lmsder_niter, np.inf)
    # the supernova is retried and recovered ...
    assert first_only[0, chi2] > CONFIG.sn_retry_chi2 > fit[0, chi2]
    assert fit[0, columns["sn_rise_time"]] == pytest.approx(1.5, rel=0.1)
    assert fit[0, columns["sn_fall_time"]] == pytest.approx(120.0, rel=0.1)
    # ... the periodic and stochastic curves fit poorly too, keep their first fit and are not retried
    assert (first_only[1:, chi2] > CONFIG.sn_retry_chi2).all()
    np.testing.assert_array_equal(fit[1:], first_only[1:])


def test_family_columns_name_what_each_family_computes():
    from lenga.features import FAMILIES, family_columns
    from lenga.features.extract import prepare

    det, nd = ztf_like_batch(np.random.default_rng(17), 4, max_points=30)
    prepared = prepare(det, nd, CONFIG)
    columns = family_columns(CONFIG)
    assert list(columns) == list(FAMILIES)
    for name, family in FAMILIES.items():
        assert sorted(family(prepared)) == sorted(columns[name]), name
    per_family = [c for names in columns.values() for c in names]
    assert len(per_family) == len(set(per_family)) and set(per_family) <= set(FEATURE_SCHEMA.names)


def test_benchmark_measure_reports_every_family():
    from lenga.bench.features import measure
    from lenga.features import FAMILIES

    result = measure(objects=20, processes=1, max_points=40)
    features = result["features"]
    assert set(FAMILIES) | {"prepare", "assemble", "total"} == set(features["objects_per_s"])
    assert sum(features["cpu_share"].values()) == pytest.approx(1.0, abs=0.01)
    assert features["slowest_family"] in FAMILIES and "aggregation" not in result  # no Spark given


def test_positive_fraction_counts_the_sign_of_every_detection():
    """ALeRCE's positive_fraction: ZTF's sign from isdiffpos ('t'/'f'), LSST's from psfFlux; a band with
    too few points for the curve families still counts, and the multiband fraction pools all bands."""
    from lenga.features.sign import positive_fraction

    rng = np.random.default_rng(21)
    t = night_times(rng, 10, 100.0)
    ztf = pd.concat([frame("z", "g", t, 18 + rng.normal(0, 0.1, 10), np.full(10, 0.05)),
                     frame("z", "r", t[:3], np.full(3, 19.0), np.full(3, 0.05))], ignore_index=True)
    ztf = ztf.drop(columns=["psfFlux", "psfFluxErr"])  # magpsf of |flux| and its sign, as ZTF sends them
    ztf["isdiffpos"] = ["t"] * 7 + ["f"] * 3 + ["f", "t", "f"]  # g: 7 of 10 positive, r: 1 of 3
    flux = np.array([500.0, -400.0, 600.0, -700.0, 800.0, 900.0, -300.0, 400.0])
    lsst = flux_frame("l", "i", t[:8], flux, np.full(8, 50.0))
    out = extract_features(pd.concat([ztf, lsst], ignore_index=True), None, CONFIG).set_index("objectId")
    assert out.loc["z", "positive_fraction_g"] == pytest.approx(0.7)
    assert out.loc["z", "positive_fraction_r"] == pytest.approx(1 / 3)
    assert np.isnan(out.loc["z", "positive_fraction_i"]) and np.isnan(out.loc["z", "amplitude_r"])
    assert out.loc["z", "positive_fraction"] == pytest.approx(8 / 13)
    assert out.loc["l", "positive_fraction_i"] == out.loc["l", "positive_fraction"] == pytest.approx(5 / 8)
    # a supernova (absent from the reference) has only positive detections
    sn = frame("sn", "g", t, 18 + 0.05 * (t - t[0]), np.full(10, 0.05))
    assert extract_features(sn, None, CONFIG).iloc[0]["positive_fraction"] == 1.0
    with pytest.raises(ValueError, match="between 0 and the detection counts"):
        positive_fraction(np.array([[3]]), np.array([[2]]))
