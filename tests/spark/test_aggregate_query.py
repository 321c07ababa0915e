"""End to end: simulator → ingest query → aggregation query (RocksDB state) → ``objects`` (MERGE)."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from jobs import aggregate as aggregate_job
from lenga.config import load_config
from lenga.curves.magstats import OBJECTS, OBJECTS_SPEC, object_statistics
from lenga.curves.points import (
    CONTEXT_COLUMNS,
    CURVE_COLUMNS,
    DETECTION,
    latest_context,
    merge_curves,
    target_pixels,
)
from lenga.features import FEATURE_SCHEMA, extract_features, load_feature_config
from lenga.io.lake import open_lake
from lenga.schema import UPPER_LIMIT
from lenga.sim.night import SimConfig, simulate, write_directory
from lenga.stream.aggregate import default_steps, run_aggregation
from lenga.stream.ingest import run_stream
from udfs.curves import CURVES_SCHEMA

#: Features of a curve may differ in their last digits with the other curves of its batch (curves are
#: padded into blocks whose width depends on the batch, which changes the order of summation), and
#: an ill-conditioned harmonic fit (a supernova at a spurious period) amplifies that to ~1e-7.
FEATURES_RTOL = 1e-6


#: The objects columns compared (all but the batch that wrote the row), as stored.
OBJECT_COLUMNS = pa.schema([f for f in OBJECTS if f.name != "last_batch_id"])


def simulated():
    sim = SimConfig(seed=11, n_objects=12, n_nights=3, corrupt_fraction=0.0)
    return [a for a in simulate(sim) if not a.corrupt]


def config_for(root: Path, incoming: Path, state_ttl_days: float | None = 400.0):
    """``state_ttl_days`` picks the stateful operator (lenga.stream.aggregate): applyInPandasWithState
    with a timeout, or (None) Spark's streaming aggregation."""
    return load_config(extra={
        "source": {"kind": "files", "files": {"path": str(incoming), "max_files_per_trigger": 60}},
        "lake": {"root": str(root / "lake")},
        "stream": {"checkpoint": str(root / "checkpoints" / "stream")},
        "spark": {"spark.master": "local[2]"},
        "aggregation": {"state_ttl_days": state_ttl_days},
    })


def ingest_and_aggregate(spark, root: Path, batches: list[list], state_ttl_days: float | None = 400.0) -> list:
    """Each list of alerts is written, ingested and aggregated in its own pair of runs (restarts)."""
    incoming = root / "incoming"
    config = config_for(root, incoming, state_ttl_days)
    summaries = []
    for alerts in batches:
        write_directory(alerts, incoming)
        time.sleep(0.01)  # later files get later modification times
        run_stream(config, spark=spark, steps=[])  # the core tables only: what the aggregation reads
        summaries.append(run_aggregation(config, spark=spark))
    return summaries


def read(root: Path, table: str) -> pd.DataFrame:
    return pl.read_delta(str(root / "lake" / table)).to_pandas()


def objects(root: Path) -> pd.DataFrame:
    stored = pl.read_delta(str(root / "lake" / "objects")).to_arrow().select(OBJECT_COLUMNS.names)
    frame = stored.cast(OBJECT_COLUMNS).to_pandas()
    return frame.sort_values(["survey", "objectId"]).reset_index(drop=True)


def expected_objects(root: Path) -> pd.DataFrame:
    """The statistics computed directly (pure functions) from the ingest tables."""
    det = read(root, "detections").assign(kind=DETECTION)
    non = read(root, "non_detections").assign(candid=pd.NA, isdiffpos=pd.NA, ra=np.nan, dec=np.nan, corrected=pd.NA,
                                              stellar=pd.NA, magpsf_corr=np.nan)
    stats = object_statistics(merge_curves(det[["survey", "objectId", *CURVE_COLUMNS]],
                                           non[["survey", "objectId", *CURVE_COLUMNS]]))
    context = latest_context(read(root, "alerts"))[["survey", "objectId", *CONTEXT_COLUMNS]].astype(
        {c: "float64" for c in CONTEXT_COLUMNS})
    stats = stats.merge(context, on=["survey", "objectId"], how="left")
    stats = pa.Table.from_pandas(stats[OBJECT_COLUMNS.names], schema=OBJECT_COLUMNS, preserve_index=False).to_pandas(
        ignore_metadata=True)
    return stats.sort_values(["survey", "objectId"]).reset_index(drop=True)


def features(root: Path) -> pd.DataFrame:
    frame = read(root, "features").drop(columns=["last_batch_id"])
    return frame.sort_values(["survey", "objectId"]).reset_index(drop=True)


def expected_features(root: Path) -> pd.DataFrame:
    """The features computed directly (pure functions) from the ingest tables."""
    non = read(root, "non_detections")
    context = latest_context(read(root, "alerts")).astype({c: "float64" for c in CONTEXT_COLUMNS})
    out = extract_features(read(root, "detections"), non[non["kind"] == UPPER_LIMIT], load_feature_config(), context)
    return out.sort_values(["survey", "objectId"]).reset_index(drop=True)


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame, rtol: float = 1e-12) -> None:
    assert len(actual) == len(expected)
    for column in expected.columns:
        a, e = actual[column].to_numpy(), expected[column].to_numpy()
        if np.issubdtype(np.asarray(e).dtype, np.floating):
            np.testing.assert_allclose(a.astype(float), e.astype(float), rtol=rtol, equal_nan=True,
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
    # ALeRCE's correction flags: known for every ZTF object (its detections carry them), null for LSST
    assert table.loc[ztf, "corrected"].notna().all() and table.loc[~ztf, "corrected"].isna().all()


def test_features_match_the_ingest_tables(in_order):
    root, _, summaries = in_order
    table, expected = features(root), expected_features(root)
    assert len(expected) >= 3 and set(expected["survey"]) == {"ztf", "lsst"}  # enough history to test
    assert_same(table[FEATURE_SCHEMA.names], expected, rtol=FEATURES_RTOL)
    # the curve summary and the partition agree with the objects table
    located = table.merge(objects(root), on=["survey", "objectId"], suffixes=("", "_objects"))
    assert len(located) == len(table)
    for column in ("lastmjd", "ndet", "hpx"):
        assert (located[column] == located[f"{column}_objects"]).all(), column
    assert table["night"].between(20250101, 20300101).all()
    written = sum(b.tables["features"].rows for b in summaries[0].batches)
    assert written >= len(table) and all("features" in b.step_seconds for b in summaries[0].batches)


@pytest.fixture(scope="module")
def split(spark, tmp_path_factory, in_order):
    """The same alerts shuffled, ingested and aggregated in two halves (two restarts), by the other
    stateful operator (Spark's streaming aggregation, no TTL) than ``in_order``."""
    _, alerts, _ = in_order
    root = tmp_path_factory.mktemp("split")
    shuffled = alerts[:]
    random.Random(5).shuffle(shuffled)
    half = len(shuffled) // 2
    return root, ingest_and_aggregate(spark, root, [shuffled[:half], shuffled[half:]], state_ttl_days=None)


def test_out_of_order_and_split_across_restarts_give_the_same_objects(spark, split, in_order):
    root = in_order[0]
    split_root, summaries = split
    assert summaries[1].batches, "the second run aggregated the second half"
    assert_same(objects(split_root), objects(root))
    assert_same(features(split_root), features(root), rtol=FEATURES_RTOL)
    # Nothing new: a third aggregation run touches nothing.
    again = run_aggregation(config_for(split_root, split_root / "incoming", None), spark=spark)
    assert again.objects_updated == 0 and again.objects_in_lake == summaries[1].objects_in_lake


def test_state_lost_then_rebuilt_from_the_lake_by_the_job(split, in_order, capsys):
    root = in_order[0]
    split_root, _ = split
    # the state store is lost, and the derived tables with it: everything must come back from the
    # ingest tables (a new checkpoint replays their Delta logs from the start)
    for lost in ("checkpoints/aggregate", "lake/objects", "lake/features"):
        shutil.rmtree(split_root / lost)
    aggregate_job.main(["--lake", str(split_root / "lake"), "--checkpoint", str(split_root / "new-checkpoint")])
    assert "objects in" in capsys.readouterr().out
    assert_same(objects(split_root), objects(root))
    assert_same(features(split_root), features(root), rtol=FEATURES_RTOL)


def test_a_replayed_batch_leaves_objects_and_features_unchanged(spark, in_order):
    from lenga.stream.aggregate import ObjectsWriter

    root, _, summaries = in_order
    config = config_for(root, root / "incoming")
    lake = open_lake(spark, config.lake.root, config.lake.backend)
    writer = ObjectsWriter(lake, str(root / "checkpoints" / "aggregate"), config, default_steps(config, lake))
    before, features_before = read(root, "objects"), read(root, "features")
    victim = features_before.iloc[0]
    position = before.set_index(["survey", "objectId"]).loc[(victim["survey"], victim["objectId"])]
    n = 8  # a new curve of the victim, long enough for features
    other_curve = {"survey": victim["survey"], "objectId": victim["objectId"], "kind": [DETECTION] * n,
                   "candid": list(range(1, n + 1)), "mjd": [70000.0 + 3 * k for k in range(n)], "band": ["g"] * n,
                   "magpsf": [20.0 + 0.1 * k for k in range(n)], "sigmapsf": [0.1] * n,
                   "psfFlux": [1.0] * n, "psfFluxErr": [0.1] * n, "isdiffpos": [True] * n, "diffmaglim": [26.0] * n,
                   "ra": [float(position["meanra"])] * n, "dec": [float(position["meandec"])] * n,
                   "corrected": [False] * n, "stellar": [False] * n, "magpsf_corr": [None] * n}
    curves = spark.createDataFrame([tuple(other_curve.get(f.name) for f in CURVES_SCHEMA)], CURVES_SCHEMA)
    last = summaries[-1].batches[-1].batch_id

    writer(curves, last)  # replay of the last committed batch id: skipped
    assert writer.reports[-1].merge.skipped and writer.reports[-1].tables["features"].skipped
    for table, frame in (("objects", before), ("features", features_before)):
        pd.testing.assert_frame_equal(read(root, table).sort_values("objectId").reset_index(drop=True),
                                      frame.sort_values("objectId").reset_index(drop=True))

    writer(curves, last + 1)  # a new batch id is applied (so the checks above can fail)
    after = read(root, "objects").set_index(["survey", "objectId"])
    assert after.loc[(victim["survey"], victim["objectId"]), "lastmjd"] == 70000.0 + 3 * (n - 1)
    assert len(after) == len(before) and after.index.is_unique
    features_after = read(root, "features").set_index(["survey", "objectId", "feature_version"])
    row = features_after.loc[(victim["survey"], victim["objectId"], victim["feature_version"])]
    assert (row["ndet"], row["n_det_g"], row["last_batch_id"]) == (n, n, last + 1)
    assert row["lastmjd"] == 70000.0 + 3 * (n - 1) and row["mean_g"] == pytest.approx(20.35)
    assert len(features_after) == len(features_before) and features_after.index.is_unique


def test_merge_targets_touched_pixels_and_neighbours():
    pixels = target_pixels([0, 100])
    assert -1 in pixels and 0 in pixels and 100 in pixels
    assert 10 < len(pixels) <= 19 and max(pixels) < 192
    assert target_pixels([]) == [-1]
    assert OBJECTS_SPEC.partition_by == ("hpx",)
