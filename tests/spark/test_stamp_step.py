"""The stream's stamp-classification step on simulated ZTF and LSST alerts decoded by the pipeline,
a real local Spark and a delta-rs lake (lenga.stream.steps.stamps, udfs.stamp).

The networks here are untrained (seeded random weights, saved like the shipped ones): this test is
about which alerts are classified, by which survey's model, what is written and replay safety;
accuracy is the training job's report.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
import torch
from deltalake import DeltaTable

from lenga.config import ConfigError, load_config
from lenga.io.lake import open_lake
from lenga.sim.night import SimConfig, simulate
from lenga.stamps import CLASSES
from lenga.stamps.features import feature_names
from lenga.stamps.model import StampCNN
from lenga.stamps.train import save_model
from lenga.stream.ingest import decode_stream, split_tables
from lenga.stream.steps.base import BatchContext
from lenga.stream.steps.stamps import STAMP_TABLE, StampStep, build_step

# Asteroids and bogus artefacts are seen once: new objects in both surveys' alert windows.
SIM = SimConfig(seed=3, n_objects=30, n_nights=3, class_mix={"SLSN": 1, "CEP": 1, "AGN": 1, "asteroid": 1, "bogus": 1})
APP = "lenga-test-stamps"


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("stamp_step")
    models = {}
    for survey in ("ztf", "lsst"):
        torch.manual_seed(0)
        save_model(StampCNN(len(feature_names(survey))), base / survey, survey, f"test-{survey}", feature_names(survey))
        models[survey] = str(base / survey)
    alerts = list(simulate(SIM))
    raw = spark.createDataFrame(pa.table({
        "value": [a.value for a in alerts], "topic": [a.topic for a in alerts],
        "partition": pa.array([0] * len(alerts), pa.int32()), "offset": list(range(len(alerts))),
    }))
    table = split_tables(decode_stream(raw).cache())["alerts"]
    rows = table.select("survey", "candid", "n_prv_detections", "ndethist").collect()
    return {"base": base, "models": models, "alerts": table, "rows": rows}


def _config(world, lake_root, **settings):
    return load_config(extra={"lake": {"root": str(lake_root)},
                              "stamp_classifier": {"models": world["models"], **settings}})


def _run(world, lake_root, batch_id=0, **settings):
    config = _config(world, lake_root, **settings)
    lake = open_lake(world["alerts"].sparkSession, lake_root)
    step = build_step(config, lake)
    assert isinstance(step, StampStep)
    result = step(BatchContext(world["alerts"].sparkSession, lake, APP, batch_id, {"alerts": world["alerts"]}, config))
    return step, result, lake


def _written(lake):
    return DeltaTable(lake.path(STAMP_TABLE.name)).to_pyarrow_table().to_pylist()


def test_first_detections_are_classified_by_their_survey_model(world, tmp_path):
    step, result, lake = _run(world, tmp_path / "lake")
    rows = _written(lake)
    new = {(r.survey, r.candid) for r in world["rows"]
           if r.n_prv_detections == 0 and (r.ndethist is None or r.ndethist <= 3)}
    assert len(new) < len(world["rows"]) and {s for s, _ in new} == {"ztf", "lsst"}
    assert Counter((r["survey"], r["candid"]) for r in rows) == dict.fromkeys(new, len(CLASSES))
    assert result[STAMP_TABLE.name].rows == len(rows) == len(CLASSES) * len(new)
    by_alert = {}
    for r in rows:
        by_alert.setdefault((r["survey"], r["candid"]), []).append(r)
        assert r["classifier"] == {"ztf": "stamp_classifier", "lsst": "stamp_classifier_lsst"}[r["survey"]]
        assert r["classifier_version"] == f"test-{r['survey']}" and r["ingest_batch_id"] is None
    for group in by_alert.values():
        assert sorted(r["class_name"] for r in group) == sorted(CLASSES)
        assert sum(r["probability"] for r in group) == pytest.approx(1.0, abs=1e-5)
        best = max(group, key=lambda r: r["probability"])
        assert best["ranking"] == 1 and sorted(r["ranking"] for r in group) == [1, 2, 3, 4, 5]
        assert len({r["night"] for r in group}) == 1 and np.isfinite(group[0]["mjd"])
    # The same batch again (replay, or a restarted step) writes nothing.
    again = step(BatchContext(world["alerts"].sparkSession, lake, APP, 0, {"alerts": world["alerts"]},
                              _config(world, tmp_path / "lake")))
    assert again[STAMP_TABLE.name].skipped and len(_written(lake)) == len(rows)


def test_every_alert_mode_and_a_survey_without_model(world, tmp_path):
    _, result, lake = _run(world, tmp_path / "lake", mode="every_alert",
                           models={"ztf": world["models"]["ztf"], "lsst": None})
    ztf = [r for r in world["rows"] if r.survey == "ztf"]
    rows = _written(lake)
    assert {r["survey"] for r in rows} == {"ztf"} and len(rows) == len(CLASSES) * len(ztf)
    assert "lsst" in result[STAMP_TABLE.name].extra["unclassified_surveys"]


def test_configuration_errors_name_the_key(world, tmp_path):
    lake = open_lake(world["alerts"].sparkSession, tmp_path / "lake")
    for settings, message in (({"mode": "sometimes"}, "stamp_classifier.mode"),
                              ({"torch_threads": 0}, "stamp_classifier.torch_threads"),
                              ({"colour": 1}, "unknown key")):
        with pytest.raises(ConfigError, match=message):
            build_step(_config(world, tmp_path, **settings), lake)
    assert build_step(_config(world, tmp_path, enabled=False), lake) is None
    assert build_step(_config(world, tmp_path, models={"ztf": str(tmp_path / "none"), "lsst": None}), lake) is None
    with pytest.raises(ConfigError, match="trained for 'lsst'"):
        build_step(_config(world, tmp_path, models={"ztf": world["models"]["lsst"], "lsst": None}), lake)
