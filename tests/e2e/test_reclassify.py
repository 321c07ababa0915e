"""Batch reclassification over the demo lake: same model → the stream's answers, nothing new written;
a new model version → new rows beside the old ones, which stay untouched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from demo_lake import demo_lake

from jobs import reclassify as reclassify_job
from lenga.config import load_config
from lenga.stream.reclassify import curve_row, reclassify

REPO = Path(__file__).resolve().parents[2]
CLASSIFICATIONS = ("lc_classifications", "stamp_classifications")
#: Columns that say *when* a row was written, not what it says.
BOOKKEEPING = ("batch_id", "ingest_batch_id", "last_batch_id")


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory) -> Path:
    """A private copy of the session's demo lake (these tests append to it)."""
    copy = tmp_path_factory.mktemp("reclassify") / "lake"
    shutil.copytree(demo_lake(tmp_path_factory), copy, ignore=shutil.ignore_patterns("_checkpoints", "_logs"))
    return copy


def read(lake: Path, table: str) -> pd.DataFrame:
    frame = pl.read_delta(str(lake / table)).to_pandas()
    return frame.drop(columns=[c for c in BOOKKEEPING if c in frame.columns])


def latest_per_object(frame: pd.DataFrame) -> pd.DataFrame:
    """The stream classifies a curve in every batch where it changed: keep its latest state."""
    last = frame.groupby(["survey", "objectId"])["lastmjd"].transform("max")
    return frame[frame["lastmjd"] == last]


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def config_for(lake: Path, **sections):
    return load_config(extra={"lake": {"root": str(lake)}, **sections})


def all_nights(lake: Path) -> list[int]:
    return sorted(pl.read_delta(str(lake / "detections"))["night"].unique().to_list())


def test_curve_row_rebuilds_points_and_context():
    from lenga.curves.points import DETECTION, NO_CANDID
    from udfs.curves import ALERT

    base = {"survey": "ztf", "objectId": "ZTF1", "band": "g", "magpsf": 18.0, "sigmapsf": 0.1, "psfFlux": 1e4,
            "psfFluxErr": 100.0, "isdiffpos": True, "diffmaglim": 20.0, "ra": 1.0, "dec": 2.0,
            "corrected": True, "stellar": False, "magpsf_corr": 17.5,
            "sgscore1": None, "distpsnr1": None, "srmag1": None, "extendedness": None}
    rows = pd.DataFrame([
        {**base, "kind": DETECTION, "candid": 2, "mjd": 60001.0},
        {**base, "kind": DETECTION, "candid": 1, "mjd": 60000.0},
        {**base, "kind": DETECTION, "candid": 1, "mjd": 60000.0},  # the same detection from a later alert
        {**base, "kind": ALERT, "candid": 1, "mjd": 60000.0, "sgscore1": 0.1},
        {**base, "kind": ALERT, "candid": 2, "mjd": 60001.0, "sgscore1": 0.9},
        {**base, "kind": "upper_limit", "candid": NO_CANDID, "mjd": 59999.0},
    ])
    row = curve_row(rows).iloc[0]
    assert row["mjd"] == [59999.0, 60000.0, 60001.0]
    assert row["kind"] == ["upper_limit", DETECTION, DETECTION]
    assert row["candid"] == [None, 1, 2]
    assert row["sgscore1"] == 0.9  # context of the latest alert


def test_same_models_reproduce_the_stream_and_write_nothing(spark, lake, tmp_path):
    before = {t: read(lake, t) for t in (*CLASSIFICATIONS, "features")}
    assert len(before["lc_classifications"]) and len(before["stamp_classifications"])
    report = reclassify(config_for(lake), spark, nights=all_nights(lake))
    assert report.objects > 0
    assert {t: report.written(t) for t in (*CLASSIFICATIONS, "features")} == dict.fromkeys(
        (*CLASSIFICATIONS, "features"), 0)
    for table, frame in before.items():
        pd.testing.assert_frame_equal(canonical(read(lake, table)), canonical(frame))

    # From the ingest tables alone, reclassification gives the stream's latest answers exactly.
    bare = tmp_path / "lake"
    shutil.copytree(lake, bare, ignore=shutil.ignore_patterns(*CLASSIFICATIONS, "features"))
    reclassify(config_for(bare), spark, nights=all_nights(bare))
    rebuilt = read(bare, "lc_classifications")
    pd.testing.assert_frame_equal(canonical(rebuilt), canonical(latest_per_object(before["lc_classifications"])),
                                  check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(canonical(read(bare, "stamp_classifications")),
                                  canonical(before["stamp_classifications"]), check_exact=False, rtol=1e-5)


def test_a_new_model_version_is_added_beside_the_old(spark, lake, tmp_path):
    model = tmp_path / "lc_model"
    shutil.copytree(REPO / "models" / "lc_classifier", model)
    metadata = json.loads((model / "metadata.json").read_text())
    old_version = metadata["classifier_version"]
    metadata["classifier_version"] = old_version + "-rerun"
    (model / "metadata.json").write_text(json.dumps(metadata))
    old = read(lake, "lc_classifications")

    reclassify_job.main(["--lake", str(lake), "--night-range", str(min(all_nights(lake))),
                         str(max(all_nights(lake))), "--set", f"lc_classifier.model_dir={model}"])
    after = read(lake, "lc_classifications")
    pd.testing.assert_frame_equal(canonical(after[after["classifier_version"] == old_version]), canonical(old))
    new = after[after["classifier_version"] == metadata["classifier_version"]]
    keys = ["survey", "objectId", "level", "class_name"]
    expected = latest_per_object(old).drop(columns="classifier_version")
    pd.testing.assert_frame_equal(canonical(new.drop(columns="classifier_version")), canonical(expected),
                                  check_exact=False, rtol=1e-9)
    assert not new.duplicated(keys).any()
