"""End to end: simulator → ingest query → aggregation query (RocksDB state) → ``objects`` (MERGE)."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from jobs import aggregate as aggregate_job
from lenga.aggregate import (
    CONTEXT_COLUMNS,
    CURVE_COLUMNS,
    DETECTION,
    latest_context,
    merge_curves,
    object_statistics,
)
from lenga.aggregation import OBJECTS, OBJECTS_SPEC, run_aggregation, target_pixels
from lenga.config import load_config
from lenga.io.lake import open_lake
from lenga.runner import run_stream
from lenga.sim.night import SimConfig, simulate, write_directory
from udfs.aggregate import CURVES_SCHEMA


def simulated():
    sim = SimConfig(seed=11, n_objects=12, n_nights=3, corrupt_fraction=0.0)
    return [a for a in simulate(sim) if not a.corrupt]


def config_for(root: Path, incoming: Path):
    return load_config(extra={
        "source": {"kind": "files", "files": {"path": str(incoming), "max_files_per_trigger": 60}},
        "lake": {"root": str(root / "lake")},
        "stream": {"checkpoint": str(root / "checkpoints" / "stream")},
        "spark": {"spark.master": "local[2]"},
    })


def ingest_and_aggregate(spark, root: Path, batches: list[list]) -> list:
    """Each list of alerts is written, ingested and aggregated in its own pair of runs (restarts)."""
    incoming = root / "incoming"
    config = config_for(root, incoming)
    summaries = []
    for alerts in batches:
        write_directory(alerts, incoming)
        time.sleep(0.01)  # later files get later modification times
        run_stream(config, spark=spark)
        summaries.append(run_aggregation(config, spark=spark))
    return summaries


def read(root: Path, table: str) -> pd.DataFrame:
    return pl.read_delta(str(root / "lake" / table)).to_pandas()


def objects(root: Path) -> pd.DataFrame:
    frame = read(root, "objects").drop(columns=["last_batch_id"])
    return frame.sort_values(["survey", "objectId"]).reset_index(drop=True)[[f.name for f in OBJECTS][:-1]]


def expected_objects(root: Path) -> pd.DataFrame:
    """The statistics computed directly (pure functions) from the ingest tables."""
    det = read(root, "detections").assign(kind=DETECTION)
    non = read(root, "non_detections").assign(candid=pd.NA, isdiffpos=pd.NA, ra=np.nan, dec=np.nan)
    stats = object_statistics(merge_curves(det[["survey", "objectId", *CURVE_COLUMNS]],
                                           non[["survey", "objectId", *CURVE_COLUMNS]]))
    context = latest_context(read(root, "alerts"))[["survey", "objectId", *CONTEXT_COLUMNS]].astype(
        {c: "float64" for c in CONTEXT_COLUMNS})
    stats = stats.merge(context, on=["survey", "objectId"], how="left")
    return stats.sort_values(["survey", "objectId"]).reset_index(drop=True)[[f.name for f in OBJECTS][:-1]]


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(actual) == len(expected)
    for column in expected.columns:
        a, e = actual[column].to_numpy(), expected[column].to_numpy()
        if np.issubdtype(np.asarray(e).dtype, np.floating):
            np.testing.assert_allclose(a.astype(float), e.astype(float), rtol=1e-12, equal_nan=True,
                                       err_msg=column)
        else:
            assert list(a) == list(e), column


@pytest.fixture(scope="module")
def in_order(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("in_order")
    alerts = sorted(simulated(), key=lambda a: a.mjd)
    summaries = ingest_and_aggregate(spark, root, [alerts])
    return root, alerts, summaries


def test_objects_match_the_ingest_tables_and_the_truth(in_order):
    root, alerts, summaries = in_order
    table = objects(root)
    assert_same(table, expected_objects(root))
    # lenga's objectId of each alert (LSST solar-system alerts become 'sso:<ssObjectId>').
    stored = read(root, "alerts")
    object_of = dict(zip(zip(stored["survey"], stored["candid"], strict=True), stored["objectId"], strict=True))
    truth: dict[tuple, dict[str, set]] = {}
    for a in alerts:
        key = (a.survey, object_of[(a.survey, a.candid)])
        sets = truth.setdefault(key, {"det": set(), "ul": set(), "fp": set()})
        sets["det"].update(a.detections)
        sets["ul"].update(a.upper_limits)
        sets["fp"].update(a.forced)
    assert {(s, o) for s, o in zip(table["survey"], table["objectId"], strict=True)} == set(truth)
    for row in table.itertuples():
        sets = truth[(row.survey, row.objectId)]
        assert (row.ndet, row.n_upper_limits, row.n_forced) == (len(sets["det"]), len(sets["ul"]), len(sets["fp"]))
    assert summaries[0].objects_in_lake == len(truth)
    assert len(summaries[0].batches) >= 1 and summaries[0].objects_updated >= len(truth)
    assert table["hpx"].ge(0).all() and table["ndet"].gt(0).all()
    ztf = table["survey"] == "ztf"
    assert table.loc[ztf, "sgscore1"].notna().all() and table.loc[~ztf, "extendedness"].notna().all()


def test_out_of_order_and_split_across_restarts_give_the_same_objects(spark, tmp_path, in_order):
    root, alerts, _ = in_order
    shuffled = alerts[:]
    random.Random(5).shuffle(shuffled)
    half = len(shuffled) // 2
    summaries = ingest_and_aggregate(spark, tmp_path, [shuffled[:half], shuffled[half:]])
    assert summaries[1].batches, "the second run aggregated the second half"
    assert_same(objects(tmp_path), objects(root))
    # Nothing new: a third aggregation run touches nothing.
    again = run_aggregation(config_for(tmp_path, tmp_path / "incoming"), spark=spark)
    assert again.objects_updated == 0 and again.objects_in_lake == summaries[1].objects_in_lake


def test_state_lost_then_rebuilt_from_the_lake_by_the_job(spark, tmp_path, in_order, capsys):
    root, alerts, _ = in_order
    half = len(alerts) // 2
    ingest_and_aggregate(spark, tmp_path, [alerts[:half]])
    shutil.rmtree(tmp_path / "checkpoints" / "aggregate")  # the state store is lost
    config = config_for(tmp_path, tmp_path / "incoming")
    write_directory(alerts[half:], tmp_path / "incoming")
    run_stream(config, spark=spark)
    aggregate_job.main(["--lake", str(tmp_path / "lake"), "--checkpoint", str(tmp_path / "new-checkpoint")])
    assert "objects in" in capsys.readouterr().out
    assert_same(objects(tmp_path), objects(root))


def test_a_replayed_batch_leaves_objects_unchanged(spark, in_order):
    from lenga.aggregation import ObjectsWriter

    root, _, summaries = in_order
    config = config_for(root, root / "incoming")
    lake = open_lake(spark, config.lake.root, config.lake.backend)
    writer = ObjectsWriter(lake, str(root / "checkpoints" / "aggregate"))
    before = read(root, "objects")
    victim = before.iloc[0]
    other_curve = {"survey": victim["survey"], "objectId": victim["objectId"], "kind": [DETECTION],
                   "candid": [1], "mjd": [70000.0], "band": ["g"], "magpsf": [25.0], "sigmapsf": [0.1],
                   "psfFlux": [1.0], "psfFluxErr": [0.1], "isdiffpos": [True], "diffmaglim": [26.0],
                   "ra": [float(victim["meanra"])], "dec": [float(victim["meandec"])]}
    curves = spark.createDataFrame([tuple(other_curve.get(f.name) for f in CURVES_SCHEMA)], CURVES_SCHEMA)
    last = summaries[-1].batches[-1].batch_id

    writer(curves, last)  # replay of the last committed batch id: skipped
    assert writer.reports[-1].merge.skipped
    pd.testing.assert_frame_equal(read(root, "objects").sort_values("objectId").reset_index(drop=True),
                                  before.sort_values("objectId").reset_index(drop=True))

    writer(curves, last + 1)  # a new batch id is applied (so the check above can fail)
    after = read(root, "objects").set_index(["survey", "objectId"])
    assert after.loc[(victim["survey"], victim["objectId"]), "lastmjd"] == 70000.0
    assert len(after) == len(before) and after.index.is_unique


def test_merge_targets_touched_pixels_and_neighbours():
    pixels = target_pixels([0, 100])
    assert -1 in pixels and 0 in pixels and 100 in pixels
    assert 10 < len(pixels) <= 19 and max(pixels) < 192
    assert target_pixels([]) == [-1]
    assert OBJECTS_SPEC.partition_by == ("hpx",)
