"""End to end: simulated alerts → lake tables → distribution query → Kafka topics (real Tansu broker),
consumed with confluent-kafka and decoded with the published schemas.

The lake is written directly (decoded with lenga.decode, objects from lenga.curves.points's pure
functions, classification tables as the classifier steps write them): the ingest and aggregation
queries have their own end-to-end tests, and the distribution query only reads their tables."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from confluent_kafka import Consumer, TopicPartition
from deltalake import write_deltalake
from pyspark.sql.types import StructType

from lenga.config import load_config
from lenga.curves.magstats import OBJECTS, object_statistics
from lenga.curves.points import CONTEXT_COLUMNS, CURVE_COLUMNS, DETECTION, latest_context, merge_curves
from lenga.decode import decode_record_batch
from lenga.filters.config import FilterSettings
from lenga.filters.payloads import decode_message, field_names
from lenga.io.lake import open_lake
from lenga.sim.night import SimConfig, simulate
from lenga.stream.distribute import (
    ALERT_COLUMNS,
    ENRICHED_SCHEMA,
    enrich,
    latest_feature_maps,
    run_distribution,
    start_distribution,
)
from lenga.tables import TABLE_SPECS

# Truth class of the simulator → what the (not yet wired) classifiers would say, for the test lake.
STAMP_CLASS = {"SNIa": "SN", "RRL": "VS", "LPV": "VS", "star": "VS", "QSO": "AGN", "asteroid": "asteroid"}
LC_CLASS = {"SNIa": "Transient", "RRL": "Periodic", "LPV": "Periodic", "star": "Periodic", "QSO": "Stochastic"}
STAMP_CLASSES = ("AGN", "SN", "VS", "asteroid", "bogus")
LC_CLASSES = ("Periodic", "Stochastic", "Transient")


def filters_yaml(*filters: str) -> str:
    return "version: 1\nfilters:\n" + "".join(filters)


SN = """  - name: sn
    payload: thin
    where: stamp_class = 'SN' AND stamp_probability > 0.5
"""
PERIODIC = """  - name: periodic
    payload: lightcurve
    where: lc_class = 'Periodic' AND objects.ndet >= 2
"""


def watchlist(ra: float, dec: float) -> str:
    return f"""  - name: watch
    payload: full
    watchlist: [{{name: target, ra: {ra}, dec: {dec}, radius_arcsec: 1.5}}]
"""


def stamp_rows(alerts: pd.DataFrame, classes: dict[tuple, str]) -> pa.Table:
    """stamp_classifications rows (session-2 schema): the true class at 0.8, the others share 0.2."""
    rows = []
    for alert in alerts.itertuples():
        best = classes[(alert.survey, alert.objectId)]
        others = [c for c in STAMP_CLASSES if c != best]
        for rank, name in enumerate([best, *others], start=1):
            rows.append({"survey": alert.survey, "objectId": alert.objectId, "candid": alert.candid,
                         "night": alert.night, "mjd": alert.mjd, "classifier": "stamp_classifier",
                         "classifier_version": "1.0.0", "class_name": name,
                         "probability": 0.8 if rank == 1 else 0.05, "ranking": rank, "ingest_batch_id": 0})
    return pa.Table.from_pylist(rows).cast(pa.schema([
        ("survey", pa.string()), ("objectId", pa.string()), ("candid", pa.int64()), ("night", pa.int32()),
        ("mjd", pa.float64()), ("classifier", pa.string()), ("classifier_version", pa.string()),
        ("class_name", pa.string()), ("probability", pa.float32()), ("ranking", pa.int32()),
        ("ingest_batch_id", pa.int64())]))


def lc_rows(objects: pd.DataFrame, classes: dict[tuple, str]) -> pa.Table:
    """lc_classifications rows: an old version 0.9.0 saying Transient, and 1.0.0 with the truth."""
    rows = []
    for obj in objects.itertuples():
        truth = classes.get((obj.survey, obj.objectId))
        if truth is None:
            continue
        for version, best in (("0.9.0", "Transient"), ("1.0.0", truth)):
            others = [c for c in LC_CLASSES if c != best]
            for rank, name in enumerate([best, *others], start=1):
                rows.append({"survey": obj.survey, "objectId": obj.objectId, "night": 20250501,
                             "lastmjd": obj.lastmjd, "ndet": obj.ndet, "classifier": "lc_classifier",
                             "classifier_version": version, "level": "top", "class_name": name,
                             "probability": 0.7 if rank == 1 else 0.15, "ranking": rank, "batch_id": 0})
    return pa.Table.from_pylist(rows).cast(pa.schema([
        ("survey", pa.string()), ("objectId", pa.string()), ("night", pa.int32()), ("lastmjd", pa.float64()),
        ("ndet", pa.int64()), ("classifier", pa.string()), ("classifier_version", pa.string()),
        ("level", pa.string()), ("class_name", pa.string()), ("probability", pa.float32()),
        ("ranking", pa.int32()), ("batch_id", pa.int64())]))


def write_lake(lake_root: Path, alerts: list) -> None:
    """alerts, detections, non_detections (de-duplicated on their keys) and objects, as the ingest
    and aggregation queries write them."""
    decoded = pa.Table.from_batches([decode_record_batch(
        pa.record_batch({"value": pa.array([a.value for a in alerts], pa.binary())}), 0)])
    assert decoded["quarantine_reason"].null_count == decoded.num_rows
    tables = {"alerts": decoded.select(TABLE_SPECS["alerts"].schema.names)}
    for name in ("detections", "non_detections"):
        rows = pa.Table.from_struct_array(decoded[name].combine_chunks().flatten())
        unique = pl.from_arrow(rows).unique(subset=list(TABLE_SPECS[name].keys), keep="first", maintain_order=True)
        tables[name] = unique.to_arrow().cast(TABLE_SPECS[name].schema)
    for name, table in tables.items():
        write_deltalake(str(lake_root / name), table.cast(TABLE_SPECS[name].schema), partition_by=["night"])
    det = tables["detections"].to_pandas().assign(kind=DETECTION)
    non = tables["non_detections"].to_pandas().assign(candid=pd.NA, isdiffpos=pd.NA, ra=np.nan, dec=np.nan,
                                                      corrected=pd.NA, stellar=pd.NA, magpsf_corr=np.nan)
    stats = object_statistics(merge_curves(det[["survey", "objectId", *CURVE_COLUMNS]],
                                           non[["survey", "objectId", *CURVE_COLUMNS]]))
    context = latest_context(tables["alerts"].to_pandas())[["survey", "objectId", *CONTEXT_COLUMNS]]
    objects = stats.merge(context, on=["survey", "objectId"], how="left").assign(last_batch_id=0)
    write_deltalake(str(lake_root / "objects"),
                    pa.Table.from_pandas(objects[OBJECTS.names], preserve_index=False).cast(OBJECTS),
                    partition_by=["hpx"])


def read(root: Path, table: str) -> pd.DataFrame:
    return pl.read_delta(str(root / "lake" / table)).to_pandas()


def consume(bootstrap: str, topic: str, payload: str) -> list[tuple[bytes, dict, dict]]:
    """Every message of a topic: (key, headers, record decoded with the published schema)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "lenga-tests", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    out = []
    try:
        while True:
            messages = consumer.consume(num_messages=1000, timeout=1.5)
            if not messages:
                return out
            for message in messages:
                assert message.error() is None, message.error()
                out.append((message.key(), dict(message.headers()), decode_message(message.value(), payload)))
    finally:
        consumer.close()


def config_for(root: Path, bootstrap: str, filters_file: Path, trigger: str = "available_now"):
    return load_config(extra={
        "lake": {"root": str(root / "lake")},
        "stream": {"checkpoint": str(root / "checkpoints" / "stream"), "trigger": trigger,
                   "processing_time": "1 second"},
        "spark": {"spark.master": "local[2]"},
        "filters": {"file": str(filters_file), "bootstrap_servers": bootstrap},
    })


@pytest.fixture(scope="module")
def world(spark, kafka_broker, tmp_path_factory):
    """A lake of simulated alerts with classification tables, and one availableNow run of the
    distribution query over it."""
    root = tmp_path_factory.mktemp("distribute")
    alerts = [a for a in simulate(SimConfig(seed=5, n_objects=8, n_nights=3)) if not a.corrupt]
    write_lake(root / "lake", alerts)
    filters_file = root / "filters.yaml"
    config = config_for(root, kafka_broker.bootstrap_servers, filters_file)
    stored = read(root, "alerts")
    truth = {}
    by_candid = {(a.survey, a.candid): a.class_name for a in alerts}
    for row in stored.itertuples():
        truth[(row.survey, row.objectId)] = by_candid[(row.survey, row.candid)]
    write_deltalake(str(root / "lake" / "stamp_classifications"),
                    stamp_rows(stored, {k: STAMP_CLASS[v] for k, v in truth.items()}), partition_by=["night"])
    write_deltalake(str(root / "lake" / "lc_classifications"),
                    lc_rows(read(root, "objects"), {k: LC_CLASS[v] for k, v in truth.items() if v in LC_CLASS}),
                    partition_by=["night"])
    target = stored[stored["survey"] == "ztf"].iloc[0]
    filters_file.write_text(filters_yaml(SN, PERIODIC, watchlist(target.ra, target.dec)))
    summary = run_distribution(config, spark=spark)
    return root, config, truth, target, summary


def test_every_topic_decodes_and_holds_what_its_filter_selects(world, kafka_broker):
    root, config, truth, target, summary = world
    bootstrap = kafka_broker.bootstrap_servers
    stored = read(root, "alerts")
    objects = read(root, "objects").set_index(["survey", "objectId"])
    assert summary.alerts == len(stored)

    sn = consume(bootstrap, "lenga_sn", "thin")
    expected_sn = {(s, c) for s, o, c in zip(stored.survey, stored.objectId, stored.candid, strict=True)
                   if truth[(s, o)] == "SNIa"}
    assert expected_sn and {(r["survey"], r["candid"]) for _, _, r in sn} == expected_sn
    assert len(sn) == len(expected_sn) == summary.published()["sn"]
    for key, headers, record in sn:
        assert key == record["objectId"].encode() and headers["candid"] == str(record["candid"]).encode()
        assert set(record) == set(field_names("thin"))
        assert (record["schema_version"], record["filter"], record["stamp_class"]) == ("thin/1", "sn", "SN")
        assert record["stamp_probability"] == pytest.approx(0.8)
        assert record["stamp_probabilities"]["SN"] == pytest.approx(0.8) and len(record["stamp_probabilities"]) == 5
        # The latest light-curve version (1.0.0: Transient for SNe Ia) wins over 0.9.0.
        assert record["lc_class"] == "Transient" and record["lc_probability"] == pytest.approx(0.7)
        assert record["ndet"] == objects.loc[(record["survey"], record["objectId"]), "ndet"]
        alert = stored[(stored.survey == record["survey"]) & (stored.candid == record["candid"])].iloc[0]
        assert (record["ra"], record["dec"], record["mjd"], record["magpsf"]) == (
            alert.ra, alert.dec, alert.mjd, alert.magpsf)

    periodic = consume(bootstrap, "lenga_periodic", "lightcurve")
    detections, non_detections = read(root, "detections"), read(root, "non_detections")
    expected_periodic = {(s, c) for s, o, c in zip(stored.survey, stored.objectId, stored.candid, strict=True)
                         if LC_CLASS.get(truth[(s, o)]) == "Periodic" and objects.loc[(s, o), "ndet"] >= 2}
    assert expected_periodic and {(r["survey"], r["candid"]) for _, _, r in periodic} == expected_periodic
    for _, _, record in periodic:
        mine = detections[(detections.survey == record["survey"]) & (detections.objectId == record["objectId"])
                          & (detections.mjd <= record["mjd"])].sort_values("mjd")
        assert [d["candid"] for d in record["detections"]] == mine["candid"].tolist()
        assert record["candid"] in mine["candid"].tolist()
        np.testing.assert_array_equal([d["magpsf"] for d in record["detections"]], mine["magpsf"].to_numpy())
        limits = non_detections[(non_detections.survey == record["survey"])
                                & (non_detections.objectId == record["objectId"])
                                & (non_detections.mjd <= record["mjd"])]
        assert sorted((d["kind"], d["mjd"]) for d in record["non_detections"]) == sorted(
            zip(limits["kind"], limits["mjd"], strict=True))

    watch = consume(bootstrap, "lenga_watch", "full")
    assert {r["candid"] for _, _, r in watch} >= {target.candid}
    for _, _, record in watch:
        assert record["watchlist_target"] == "target" and record["watchlist_sep_arcsec"] <= 1.5
        alert = stored[(stored.survey == record["survey"]) & (stored.candid == record["candid"])].iloc[0]
        assert record["cutoutScience"] == alert.cutoutScience and record["cutoutDifference"] == alert.cutoutDifference
        assert record["objectId"] == target.objectId


def test_replayed_batch_republishes_only_the_same_keys_and_candids(world, kafka_broker, spark):
    """A crash after the Kafka write and before Spark's commit: the batch runs again (with the
    filters pinned for it, even though the file changed since) and sends duplicates only."""
    root, config, truth, target, summary = world
    bootstrap = kafka_broker.bootstrap_servers
    before = {t: consume(bootstrap, t, p) for t, p in (("lenga_sn", "thin"), ("lenga_periodic", "lightcurve"))}
    checkpoint = Path(FilterSettings.from_config(config).checkpoint_for(config))
    last = max(int(p.name) for p in (checkpoint / "commits").iterdir() if p.name.isdigit())
    for name in (str(last), f".{last}.crc"):  # the commit log entry and its checksum
        (checkpoint / "commits" / name).unlink()
    filters_file = Path(FilterSettings.from_config(config).file)
    filters_file.write_text(filters_yaml(SN.replace("'SN'", "'VS'"), PERIODIC))
    replay = run_distribution(config, spark=spark)
    assert [b.batch_id for b in replay.batches] == [last] and replay.batches[0].replayed
    for topic, payload in (("lenga_sn", "thin"), ("lenga_periodic", "lightcurve")):
        after = consume(bootstrap, topic, payload)
        keys_before = {(k, h["candid"]) for k, h, _ in before[topic]}
        keys_after = {(k, h["candid"]) for k, h, _ in after}
        assert keys_after == keys_before
        assert len(after) > len(before[topic])  # the replay did publish again: duplicates


def test_filter_edited_mid_stream_changes_the_next_batch(spark, kafka_broker, tmp_path, world):
    """A running query (processing-time trigger): night 1's alerts are published by filter v1; a
    broken edit is logged and v1 stays; then v2 takes effect at the next batch, without restart."""
    source_root = world[0]
    root = tmp_path
    filters_file = root / "filters.yaml"
    topic = f"lenga_edit_{int(time.time() * 1000)}"
    v1 = filters_yaml(f"  - name: edit\n    topic: {topic}\n    where: survey = 'ztf'\n")
    v2 = filters_yaml(f"  - name: edit\n    topic: {topic}\n    where: survey = 'lsst'\n")
    filters_file.write_text(v1)
    config = config_for(root, kafka_broker.bootstrap_servers, filters_file, trigger="processing_time")
    source = open_lake(spark, source_root / "lake")
    lake = open_lake(spark, root / "lake")
    spec = TABLE_SPECS["alerts"]
    alerts = source.read(spec)
    nights = sorted(r[0] for r in alerts.select("night").distinct().collect())
    assert len(nights) >= 3
    query, writer = start_distribution(spark, config, lake)

    def publish_night(index: int) -> None:
        done = len(writer.reports)
        lake.append(spec, alerts.where(alerts.night == nights[index]), "tests", index)
        deadline = time.monotonic() + 60
        while not any(r.alerts for r in writer.reports[done:]):
            assert time.monotonic() < deadline, "the distribution query did not process the new alerts"
            assert query.exception() is None, query.exception()
            time.sleep(0.2)

    try:
        publish_night(0)
        filters_file.write_text(v1.replace("survey = 'ztf'", "survey = "))  # a broken edit
        publish_night(1)
        assert "invalid predicate" in writer.reloader.last_error
        filters_file.write_text(v2)
        publish_night(2)
        assert query.isActive
    finally:
        query.stop()
    stored = read(source_root, "alerts")
    survey_night = {c: (s, n) for s, c, n in zip(stored.survey, stored.candid, stored.night, strict=True)}
    published = [survey_night[r["candid"]] for _, _, r in consume(kafka_broker.bootstrap_servers, topic, "thin")]
    expected = ([("ztf", nights[i]) for i in (0, 1) for s, n in survey_night.values() if (s, n) == ("ztf", nights[i])]
                + [("lsst", nights[2]) for s, n in survey_night.values() if (s, n) == ("lsst", nights[2])])
    assert sorted(published) == sorted(expected)
    assert writer.reloader.reloads == 1


def features_rows() -> pa.Table:
    """features rows: object A computed by 1.9.0 (batch 5) then 1.10.0 (batches 1 and 3), B once."""
    return pa.table({
        "survey": ["ztf"] * 4, "objectId": ["A", "A", "A", "B"],
        "feature_version": ["1.9.0", "1.10.0", "1.10.0", "1.10.0"], "night": [1, 1, 1, 1],
        "last_batch_id": pa.array([5, 1, 3, 2], pa.int64()),
        "Amplitude_g": [0.1, 0.2, 0.3, float("nan")], "n_obs_g": pa.array([3, 4, 5, None], pa.int32()),
        "label": ["x", "y", "z", "w"],
    })


def test_latest_feature_maps_take_the_highest_version_then_batch():
    table = latest_feature_maps(features_rows().take([3, 2, 0, 1]), ["Amplitude_g", "n_obs_g"])
    got = {o: m for o, m in zip(table["objectId"].to_pylist(), table["features"].to_pylist(maps_as_pydicts="strict"),
                                strict=True)}
    # '1.10.0' > '1.9.0' numerically; NaN and null become null (a predicate on them does not match).
    assert got == {"A": {"Amplitude_g": 0.3, "n_obs_g": 5.0}, "B": {"Amplitude_g": None, "n_obs_g": None}}


def test_enrich_builds_the_features_map_only_when_asked(spark, tmp_path):
    write_deltalake(str(tmp_path / "features"), features_rows(), partition_by=["night"])
    lake = open_lake(spark, tmp_path)
    schema = StructType([ENRICHED_SCHEMA[name] for name in ALERT_COLUMNS])
    alerts = spark.createDataFrame([{**dict.fromkeys(ALERT_COLUMNS), "survey": "ztf", "objectId": o, "candid": c,
                                     "mjd": 60000.5, "night": 1} for o, c in (("A", 1), ("C", 2))], schema)
    with_features = {r["objectId"]: r["features"] for r in enrich(lake, alerts, [1], frozenset({"features"})).collect()}
    assert with_features == {"A": {"Amplitude_g": 0.3, "n_obs_g": 5.0}, "C": None}
    assert [r["features"] for r in enrich(lake, alerts, [1], frozenset()).collect()] == [None, None]
