"""The shipped stamp classifiers on every real alert in ../shared/data (skipped without it): every
ZTF alert is classified (gzipped FITS, NaN pixels, 63x47 edge cutouts), LSST alerts go to the
LSST model, and the report CLI draws the grid."""

from __future__ import annotations

import json

import numpy as np

from lenga.bench.reports.stamps import main as report_main
from lenga.bench.reports.stamps import read_alerts
from lenga.config import PROJECT_ROOT
from lenga.stamps import CLASSES
from lenga.stamps.inference import StampClassifier
from lenga.stamps.preprocess import read_fits
from lenga.stream.steps.stamps import DEFAULTS


def _classifier(survey):
    return StampClassifier.load(PROJECT_ROOT / DEFAULTS["models"][survey])


def test_every_real_ztf_alert_is_classified(shared_data):
    table, problems = read_alerts(shared_data / "ztf", "ztf")
    assert not problems and table.num_rows >= 150
    with_nan = sum(np.isnan(read_fits(p)).any() for p in table.column("cutoutDifference").to_pylist()
                   + table.column("cutoutScience").to_pylist())
    assert with_nan > 0
    probabilities, reasons = _classifier("ztf").predict(table)
    assert reasons == [None] * table.num_rows
    assert np.isfinite(probabilities).all() and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_real_lsst_alerts_use_the_lsst_model(shared_data):
    table, _ = read_alerts(shared_data / "lsst" / "fink-broker-rubin-v9_0", "lsst")
    assert table.num_rows == 40
    classifier = _classifier("lsst")
    assert classifier.name == "stamp_classifier_lsst"
    rows, skipped = classifier.classify(table)
    assert not skipped and rows.num_rows == len(CLASSES) * 40
    assert set(rows.column("classifier").to_pylist()) == {"stamp_classifier_lsst"}


def test_report_cli_writes_the_grid(shared_data, tmp_path, capsys):
    summary = report_main(["--alerts", str(shared_data / "ztf" / "boom"), "--png", str(tmp_path / "grid.png"),
                           "--json", str(tmp_path / "classes.json")])
    assert summary["alerts"] == summary["classified"] == 2
    assert sum(summary["distribution"].values()) == 2 and set(summary["distribution"]) <= set(CLASSES)
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"
    detail = json.loads((tmp_path / "classes.json").read_text())["alerts_detail"]
    assert {d["objectId"] for d in detail} == {"ZTF18abudxnw", "ZTF18acullba"}
    assert json.loads(capsys.readouterr().out)["classified"] == 2
