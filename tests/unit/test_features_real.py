"""Features of real ZTF alert histories (../shared/data; skipped when that folder is absent)."""

from __future__ import annotations

import fastavro
import numpy as np
import pandas as pd

from lenga.features import FEATURE_SCHEMA, FeatureConfig, extract_features

#: JD - MJD.
MJD_OFFSET = 2400000.5
BANDS = {1: "g", 2: "r", 3: "i"}


def alert_rows(path) -> tuple[list[dict], list[dict]]:
    """Detections and upper limits of one alert (candidate + prv_candidates), table layout."""
    with open(path, "rb") as f:
        alert = next(fastavro.reader(f))
    detections, limits = [], []
    for c in [alert["candidate"], *(alert["prv_candidates"] or [])]:
        row = {"survey": "ztf", "objectId": alert["objectId"], "mjd": c["jd"] - MJD_OFFSET,
               "band": BANDS[c["fid"]]}
        if c.get("candid") is None or c["magpsf"] is None:
            limits.append({**row, "kind": "upper_limit", "diffmaglim": c["diffmaglim"]})
        else:
            detections.append({**row, "candid": c["candid"], "magpsf": c["magpsf"], "sigmapsf": c["sigmapsf"],
                               "isdiffpos": c["isdiffpos"]})
    return detections, limits


def test_real_alert_histories(shared_data):
    detections, limits = [], []
    for path in sorted((shared_data / "ztf" / "fink-alert-simulator").glob("*.avro")):
        d, nd = alert_rows(path)
        detections += d
        limits += nd
    det, nd = pd.DataFrame(detections), pd.DataFrame(limits)
    config = FeatureConfig()
    out = extract_features(det, nd, config)
    # alerts of one object repeat each other's history: counts are of unique epochs
    unique = det.drop_duplicates(["objectId", "band", "mjd"]).groupby(["objectId", "band"]).size().unstack(fill_value=0)
    enough = unique[(unique >= config.min_points_per_band).any(axis=1)]
    assert sorted(out.objectId) == sorted(enough.index)
    assert len(out) > 10
    for _, row in out.iterrows():
        for band in ("g", "r"):
            assert row[f"n_det_{band}"] == unique.loc[row.objectId].get(band, 0)
            if row[f"n_det_{band}"] >= config.min_points_per_band:
                for name in ("amplitude", "stetson_K", "drw_tau", "iar_phi", "mhps_low", "gskew",
                             "period_power"):
                    assert np.isfinite(row[f"{name}_{band}"]), (row.objectId, name, band)
        assert np.isfinite(row["period"]) and row["period"] >= config.period_min_days * 0.99
    assert list(out.columns) == FEATURE_SCHEMA.names


def test_report_over_every_alert_file(shared_data):
    from lenga.bench.reports.features import light_curves, read_alerts, report

    config = FeatureConfig()
    result = report(shared_data, config)
    # every object with min_points_per_band detections in a configured band has features ...
    points, _ = light_curves(read_alerts(shared_data)[0])
    det = points[(points["kind"] == "detection")]
    det = det[[band in config.bands[survey] for survey, band in zip(det["survey"], det["band"], strict=True)]]
    per_band = det.groupby(["survey", "objectId", "band"]).size()
    enough = per_band[per_band >= config.min_points_per_band].reset_index()
    expected = enough.drop_duplicates(["survey", "objectId"])["survey"].value_counts().to_dict()
    assert result["objects_with_features_by_survey"] == expected and expected["ztf"] >= 20
    # ... and no NaN where its inputs are there, except the structure function of a curve whose
    # pairs never vary above their noise (documented in lenga.features.stochastic)
    for family, info in result["families"].items():
        assert info["defined_cells"] > 0, family
        assert all(c.startswith("sf_") for c in info["nan_in_defined_by_column"]), (family, info)
    assert result["quarantined"] < result["messages"] / 10
