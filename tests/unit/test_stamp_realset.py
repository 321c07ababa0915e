"""The real stamp set reader (clear one-line errors, the alerts-table layout) and the scorer."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lenga import schema
from lenga.config import PROJECT_ROOT
from lenga.stamps import CLASSES
from lenga.stamps.inference import StampClassifier
from lenga.stamps.realset import (
    LABEL,
    LABEL_QUALITY,
    read_stamp_set,
    real_bogus_alerts,
    score_stamps,
    stamp_metrics,
)


def _write(path, **columns):
    pq.write_table(pa.table(columns), path)
    return path


def _minimal(n=2, **override):
    columns = {"object_id": ["ZTF1"] * n, "stamp_label": ["VS"] * n, "stamp_encoding": ["gzip_fits"] * n,
               "cutoutScience": [b"x"] * n, "cutoutTemplate": [b"x"] * n, "cutoutDifference": [b"x"] * n,
               "isdiffpos": ["f"] * n, "ndethist": [12.0] * n, "candid": ["123"] * n, "mjd": [60000.3] * n}
    columns.update(override)
    return {k: v for k, v in columns.items() if v is not None}


@pytest.mark.parametrize("columns, message", [
    (_minimal(stamp_label=None), r"missing required columns \['stamp_label'\]"),
    (_minimal(stamp_label=["VS", "star"]), r"unknown stamp labels \['star'\]"),
    (_minimal(stamp_encoding=["gzip_fits", "png"]), r"unknown stamp_encoding \['png'\]"),
    (_minimal(n=0), "no rows"),
])
def test_invalid_files_raise_one_clear_line(tmp_path, columns, message):
    path = _write(tmp_path / "stamps.parquet", **columns)
    with pytest.raises(ValueError, match=message) as info:
        read_stamp_set(tmp_path)  # a directory holding stamps.parquet
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_absent_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        read_stamp_set(tmp_path / "nothing.parquet")


def test_rows_follow_the_alerts_layout(tmp_path):
    _write(tmp_path / "s.parquet", **_minimal(isdiffpos=["f", "t"], ndethist=[12.0, float("nan")],
                                             candid=["123", None]))
    rows = read_stamp_set(tmp_path / "s.parquet")
    assert rows.schema.names == [*schema.ALERTS.names, LABEL, LABEL_QUALITY]
    assert rows.column("isdiffpos").to_pylist() == [False, True]
    assert rows.column("ndethist").to_pylist() == [12, None]
    assert rows.column("candid").to_pylist() == [123, None]
    assert rows.column("survey").to_pylist() == ["ztf", "ztf"]
    assert rows.column("srmag1").null_count == 2  # absent metadata: null, filled by the features


def test_metrics_of_known_predictions():
    labels = ["VS"] * 10 + ["asteroid"] * 5 + ["SN"] * 2
    predicted = ["VS"] * 7 + ["bogus"] * 3 + ["asteroid"] * 5 + ["SN", "VS"]
    probabilities = np.full((17, 5), 0.0)
    probabilities[np.arange(17), [CLASSES.index(c) for c in predicted]] = 1.0
    first = np.array([False] * 10 + [True] * 5 + [False] * 2)
    m = stamp_metrics(labels, probabilities, first)
    assert m["per_class"]["VS"] == {"n": 10, "recall": 0.7, "precision": 7 / 8}
    assert "AGN" not in m["per_class"]  # neither labelled nor predicted
    assert m["balanced_recall"] == pytest.approx((0.7 + 1.0) / 2) and m["balanced_over"] == ["VS", "asteroid"]
    assert m["first_detection"]["n"] == 5 and m["first_detection"]["balanced_recall"] == 1.0
    assert m["known_vs_called_bogus"] == pytest.approx(0.3)
    assert m["ece"] == pytest.approx(4 / 17)  # confidence 1 everywhere, 13 of 17 right
    assert np.array(m["confusion_matrix"]["counts"]).sum() == 17


def test_real_bogus_needs_both_scores_and_no_asteroid():
    alerts = pa.Table.from_pylist(
        [{"objectId": o, "rb": rb, "drb": drb, "ssdistnr": ss} for o, rb, drb, ss in
         [("a", 0.2, 0.01, -999.0), ("b", 0.6, 0.01, -999.0), ("c", 0.2, 0.3, -999.0),
          ("d", 0.2, 0.01, 1.5), ("e", 0.2, 0.01, -999.0)]], schema=schema.ALERTS)
    rows = real_bogus_alerts(alerts, exclude_objects={"e"})
    assert rows.column("objectId").to_pylist() == ["a"] and rows.column(LABEL).to_pylist() == ["bogus"]


def test_the_real_set_is_read_and_scored(shared_data):
    rows = read_stamp_set(shared_data / "real")
    assert rows.num_rows >= 390 and set(rows.column(LABEL).to_pylist()) <= set(CLASSES)
    classifier = StampClassifier.load(PROJECT_ROOT / "models" / "stamp_classifier")
    metrics = score_stamps(classifier, rows)
    assert metrics["unclassified"] == 0 and metrics["n"] == rows.num_rows
    assert metrics["first_detection"]["n"] >= 180 and 0.0 <= metrics["ece"] <= 1.0
    assert set(metrics["balanced_over"]) == {"AGN", "SN", "VS", "asteroid"}
