"""Labelled real sets: reading, clear errors, curves shaped as the aggregation stores them, and the
evaluate job on a slice of ../shared/data/real (skipped without it)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from jobs.evaluate import main as evaluate_main
from lenga.curves.points import DETECTION
from lenga.lc_classifier.realset import RealSetError, read_labels, read_lightcurves, ztf_curve_points
from lenga.schema import UPPER_LIMIT


def _write(directory, labels=None, curves=None):
    directory.mkdir(parents=True, exist_ok=True)
    if labels is not None:
        labels.to_csv(directory / "labels.csv", index=False)
    if curves is not None:
        curves.to_parquet(directory / "lightcurves.parquet")
    return directory


def _curve(object_id="ZTF20aaaaaaa", n=8):
    mjd = 59000 + np.arange(n, dtype=float)
    return pd.DataFrame({"object_id": object_id, "survey": "ZTF", "mjd": mjd, "band": ["g", "r"] * (n // 2),
                         "mag": 18.0 + 0.1 * np.arange(n), "mag_err": 0.05, "is_detection": True,
                         "isdiffpos": ["t", "f"] * (n // 2), "diffmaglim": np.nan,
                         "flux_ujy": np.nan, "flux_err_ujy": np.nan})


def test_curve_points_carry_sign_flux_and_limits():
    curve = _curve()
    limit = curve.iloc[[0]].assign(mjd=58990.0, mag=np.nan, is_detection=False, diffmaglim=20.5, isdiffpos=None)
    sdss = curve.iloc[[0]].assign(survey="SDSS-S82")
    points = ztf_curve_points(pd.concat([curve, limit, sdss], ignore_index=True))
    assert len(points) == 9 and (points["survey"] == "ztf").all()
    detections = points[points["kind"] == DETECTION]
    assert detections["isdiffpos"].tolist() == [True, False] * 4
    assert (np.sign(detections["psfFlux"]) == np.where(detections["isdiffpos"], 1, -1)).all()
    assert points.loc[points["kind"] == UPPER_LIMIT, "diffmaglim"].tolist() == [20.5]


def test_sign_falls_back_to_the_flux_then_to_positive():
    curve = _curve(n=4).assign(isdiffpos=None, flux_ujy=[-5.0, 5.0, np.nan, -1.0], flux_err_ujy=1.0)
    points = ztf_curve_points(curve)
    assert points["isdiffpos"].tolist() == [False, True, True, False]
    assert points["psfFlux"].iloc[0] == pytest.approx(-5000.0)  # the given flux, in nJy


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("empty", "no rows"),
    ("column", "lacks column(s) label"),
    ("label", "unknown light-curve label(s) Quasar"),
])
def test_bad_labels_give_one_clear_error(tmp_path, case, message):
    frames = {"missing": None, "empty": pd.DataFrame(columns=["object_id", "label"]),
              "column": pd.DataFrame({"object_id": ["a"]}),
              "label": pd.DataFrame({"object_id": ["a", "b"], "label": ["SNIa", "Quasar"]})}
    directory = _write(tmp_path / case, labels=frames[case])
    with pytest.raises(RealSetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_labels(directory)


def test_bad_lightcurves_give_one_clear_error(tmp_path):
    directory = _write(tmp_path, curves=_curve().drop(columns="mag"))
    with pytest.raises(RealSetError, match="lacks column"):
        read_lightcurves(directory)
    (tmp_path / "lightcurves.parquet").write_bytes(b"not parquet")
    with pytest.raises(RealSetError, match="not a readable Parquet"):
        read_lightcurves(directory)
    (tmp_path / "lightcurves.parquet").unlink()
    assert read_lightcurves(directory) is None


def test_evaluate_job_errors_are_one_line(tmp_path, capsys):
    directory = _write(tmp_path / "set", labels=pd.DataFrame({"object_id": ["a"], "label": ["Nova"]}),
                       curves=_curve("a"))
    assert evaluate_main(["--real", str(directory), "--json", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("[lenga] error:") and "Nova" in err[0]
    assert evaluate_main(["--real", str(tmp_path / "nowhere"), "--json", str(tmp_path / "out.json")]) == 2
    (directory / "lightcurves.parquet").unlink()
    pd.DataFrame({"object_id": ["a"], "stamp_label": ["SN"]}).to_parquet(directory / "stamps.parquet")
    capsys.readouterr()
    assert evaluate_main(["--real", str(directory), "--json", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stamps.parquet" in err[0] and "missing required columns" in err[0]


def test_evaluate_job_scores_a_slice_of_the_real_set(shared_data, tmp_path):
    real = shared_data / "real"
    if not (real / "labels.csv").is_file():
        pytest.skip("../shared/data/real is absent")
    labels = read_labels(real)
    curves = read_lightcurves(real)
    keep = set(labels.loc[labels["label"].isin(["SNIa", "RRL", "LPV"]), "object_id"].head(400))
    directory = _write(tmp_path / "slice", labels=labels[labels["object_id"].isin(keep)],
                       curves=curves[curves["object_id"].isin(keep)])
    stamps = pd.read_parquet(real / "stamps.parquet")
    stamps.groupby("stamp_label").head(8).to_parquet(directory / "stamps.parquet")
    out = tmp_path / "report" / "eval.json"
    assert evaluate_main(["--real", str(directory), "--json", str(out)]) == 0
    full = json.loads(out.read_text())
    stamps = full["stamps"]
    assert stamps["n"] == sum(v["n"] for v in stamps["per_class"].values()) > 20
    assert set(stamps["balanced_over"]) >= {"VS", "asteroid"} and 0 <= stamps["known_vs_called_bogus"] <= 1
    assert 0 <= stamps["first_detection"]["n"] <= stamps["n"] and 0 <= stamps["ece"] <= 1
    assert (out.parent / "eval_stamps.png").stat().st_size > 1000
    report = full["light_curves"]
    assert 0 < report["n_classified"] <= report["n_objects"]
    for level in ("top", "leaf"):
        assert 0 <= report[level]["balanced_recall"] <= 1
        assert sum(v["n"] for v in report[level]["per_class"].values()) == report["n_classified"]
        assert 0 <= report[level]["calibration"]["ece"] <= 1
        assert (out.parent / f"eval_lc_{level}.png").stat().st_size > 1000
