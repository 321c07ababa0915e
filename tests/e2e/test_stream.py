"""End to end with real components: simulator → Tansu (Kafka) → Spark stream → Delta lake."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import fastavro
import polars as pl

from lenga.config import load_config
from lenga.io.kafka import create_topics, publish
from lenga.sim import fuzz
from lenga.sim.night import SimConfig, expected_counts, simulate, write_directory
from lenga.stream.ingest import run_stream

ROOT = Path(__file__).resolve().parents[2]
#: Fuzzed messages in test_fuzzed_messages_never_stop_the_stream; docs/robustness.md runs it with
#: LENGA_FUZZ_STREAM_MESSAGES=10000.
FUZZED_MESSAGES = int(os.environ.get("LENGA_FUZZ_STREAM_MESSAGES", "300"))


def simulated(topic_prefix: str, **overrides):
    sim = SimConfig(**{"seed": 7, "n_objects": 30, "n_nights": 3, "corrupt_fraction": 0.04,
                       "topics": {"ztf": f"{topic_prefix}_ztf", "lsst": f"{topic_prefix}_lsst"}, **overrides})
    alerts = list(simulate(sim))
    return sim, alerts, expected_counts(alerts)


def stream_config(tmp_path: Path, bootstrap: str | None, topics: list[str], **stream):
    return load_config(extra={
        "source": {"kafka": {"bootstrap_servers": bootstrap, "topics": topics, "max_offsets_per_trigger": 120,
                             "min_partitions": 2}},
        "lake": {"root": str(tmp_path / "lake")},
        "stream": {"checkpoint": str(tmp_path / "checkpoint"), **stream},
        "spark": {"spark.master": "local[2]"},
    })


def table(tmp_path: Path, name: str) -> pl.DataFrame:
    return pl.read_delta(str(tmp_path / "lake" / name))


def assert_lake_matches_truth(tmp_path: Path, truth: dict) -> None:
    alerts, detections = table(tmp_path, "alerts"), table(tmp_path, "detections")
    non_detections, quarantine = table(tmp_path, "non_detections"), table(tmp_path, "quarantine")
    assert alerts.height == truth["alerts"]
    assert alerts.select("survey", "candid").n_unique() == alerts.height
    assert detections.height == truth["detections"]
    assert detections.select("survey", "candid").n_unique() == detections.height
    assert non_detections.height == truth["upper_limits"] + truth["forced_photometry"]
    assert non_detections.select("survey", "objectId", "kind", "band", "mjd").n_unique() == non_detections.height
    assert quarantine.height == truth["corrupt"]
    assert alerts["objectId"].n_unique() == truth["objects"]
    for survey, counts in truth["by_survey"].items():
        assert detections.filter(pl.col("survey") == survey).height == counts["detections"]


def test_simulated_night_lands_exactly_once(spark, kafka_broker, topic_name, tmp_path):
    sim, alerts, truth = simulated(topic_name)
    assert truth["corrupt"] > 0 and truth["detections"] > truth["alerts"]  # histories overlap
    topics = list(sim.topics.values())
    create_topics(kafka_broker.bootstrap_servers, topics, partitions=2)
    publish(((a.topic, a.key, a.value) for a in alerts), kafka_broker.bootstrap_servers)
    config = stream_config(tmp_path, kafka_broker.bootstrap_servers, topics)

    summary = run_stream(config, spark=spark)
    assert summary.alerts_in == len(alerts)
    assert len(summary.batches) >= len(alerts) // 120
    assert_lake_matches_truth(tmp_path, truth)
    quarantine = table(tmp_path, "quarantine")
    corrupt = {(a.topic, bytes(a.value)) for a in alerts if a.corrupt}
    assert {(r["topic"], bytes(r["raw"] or b"")) for r in quarantine.iter_rows(named=True)} == corrupt
    assert quarantine["reason"].null_count() == 0 and quarantine["reason"].str.len_chars().min() > 5

    # Restarting from the checkpoint with nothing new writes nothing.
    again = run_stream(config, spark=spark)
    assert again.alerts_in == 0
    assert_lake_matches_truth(tmp_path, truth)


def test_bad_messages_are_quarantined_and_neighbours_kept(spark, kafka_broker, topic_name, tmp_path):
    sim, alerts, truth = simulated(topic_name, corrupt_fraction=0.0, surveys=("ztf",), n_objects=8)
    good = alerts[0].value
    foreign = io.BytesIO()
    fastavro.writer(foreign, {"type": "record", "name": "x.y", "fields": [{"name": "a", "type": "int"}]}, [{"a": 1}])
    bad = {
        "empty": b"",
        "truncated": good[: len(good) // 3],
        "random": os.urandom(2000),
        "wrong schema": foreign.getvalue(),
        "unknown LSST schema id": b"\x00" + (4242).to_bytes(4, "big") + b"\x02\x04",
    }
    topic = sim.topics["ztf"]
    create_topics(kafka_broker.bootstrap_servers, [topic])
    messages = []
    for i, alert in enumerate(alerts):
        messages.append((topic, alert.key, alert.value))
        if i < len(bad):
            messages.append((topic, b"bad", list(bad.values())[i]))
    publish(messages, kafka_broker.bootstrap_servers)

    run_stream(stream_config(tmp_path, kafka_broker.bootstrap_servers, [topic]), spark=spark)
    quarantine = table(tmp_path, "quarantine")
    reasons = dict(zip([bytes(r or b"") for r in quarantine["raw"]], quarantine["reason"], strict=True))
    assert set(reasons) == set(bad.values())
    assert "empty" in reasons[b""]
    assert "4242" in reasons[bad["unknown LSST schema id"]]
    assert len(set(reasons.values())) >= 4  # specific reasons, not one catch-all
    assert table(tmp_path, "alerts").height == truth["alerts"]
    assert table(tmp_path, "detections").height == truth["detections"]


def test_fuzzed_messages_never_stop_the_stream(spark, kafka_broker, topic_name, tmp_path):
    """Damaged messages (lenga.sim.fuzz) between valid ones: the query finishes, every valid alert
    is stored, and every fuzzed message is an alert or a quarantine row with a reason."""
    sim, alerts, truth = simulated(topic_name, n_objects=12)
    valid = [a for a in alerts if not a.corrupt]
    fuzzed = fuzz.cases([fuzz.Seed.parse(a.value) for a in valid], FUZZED_MESSAGES, seed=17)
    topic = sim.topics["ztf"]
    create_topics(kafka_broker.bootstrap_servers, [topic], partitions=2)
    messages = [a.value for a in valid] + [c.value for c in fuzzed]
    random.Random(17).shuffle(messages)
    publish(((topic, b"fuzz", value) for value in messages), kafka_broker.bootstrap_servers)
    config = stream_config(tmp_path, kafka_broker.bootstrap_servers, [topic])
    config.source.kafka.max_offsets_per_trigger = max(120, len(messages) // 10)

    summary = run_stream(config, spark=spark)
    assert summary.alerts_in == len(messages)
    decoded = fuzz.decode_values([c.value for c in fuzzed]).to_pylist()
    fuzzed_alerts = {(r["survey"], r["candid"]) for r in decoded if r["quarantine_reason"] is None}
    stored = table(tmp_path, "alerts").select("survey", "candid").rows()
    assert {(a.survey, a.candid) for a in valid} <= set(stored)
    assert set(stored) == fuzzed_alerts | {(a.survey, a.candid) for a in valid}
    quarantine = table(tmp_path, "quarantine")
    assert quarantine.height == sum(r["quarantine_reason"] is not None for r in decoded)
    assert quarantine["reason"].null_count() == 0 and quarantine["reason"].str.len_chars().min() > 5
    print(f"fuzzed stream: {len(messages)} messages ({FUZZED_MESSAGES} fuzzed, {len(valid)} valid), "
          f"{len(stored)} alerts stored, {quarantine.height} quarantined, {len(summary.batches)} micro-batches, "
          f"{summary.wall_s:.1f} s")


def test_file_source_reads_directories_and_nightly_tarballs(spark, tmp_path):
    sim, alerts, truth = simulated("files", surveys=("ztf",), corrupt_fraction=0.0, n_objects=10)
    half = len(alerts) // 2
    write_directory(alerts[:half], tmp_path / "incoming")
    archive_dir = tmp_path / "staging"
    write_directory(alerts[half:], archive_dir)
    with tarfile.open(tmp_path / "incoming" / "ztf_public_20250501.tar.gz", "w:gz") as archive:
        for path in sorted(archive_dir.iterdir()):
            archive.add(path, arcname=path.name)
    config = stream_config(tmp_path, None, ["unused"])
    config.source.kind = "files"
    config.source.files.path = str(tmp_path / "incoming")
    summary = run_stream(config, spark=spark)
    assert summary.alerts_in == len(alerts)
    assert_lake_matches_truth(tmp_path, truth)


def _committed_batches(checkpoint: Path) -> int:
    commits = checkpoint / "commits"
    return len([p for p in commits.iterdir() if p.name.isdigit()]) if commits.is_dir() else 0


def test_kill_9_mid_stream_then_restart_loses_nothing_and_duplicates_nothing(spark, kafka_broker, topic_name,
                                                                             tmp_path):
    sim, alerts, truth = simulated(topic_name, n_objects=80)
    topics = list(sim.topics.values())
    create_topics(kafka_broker.bootstrap_servers, topics, partitions=2)
    publish(((a.topic, a.key, a.value) for a in alerts), kafka_broker.bootstrap_servers)
    per_batch = 25
    n_batches = len(alerts) // per_batch
    assert n_batches >= 5

    command = [
        sys.executable, str(ROOT / "jobs" / "stream.py"), "--bootstrap", kafka_broker.bootstrap_servers,
        "--lake", str(tmp_path / "lake"), "--checkpoint", str(tmp_path / "checkpoint"),
        "--trigger", "processing_time", "--set", "stream.processing_time=0 seconds",
        "--set", f"source.kafka.topics={topics}", "--set", f"source.kafka.max_offsets_per_trigger={per_batch}",
        "--set", "spark.spark.master=local[2]",
    ]
    with open(tmp_path / "driver.log", "wb") as log:
        driver = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 240
        try:
            while _committed_batches(tmp_path / "checkpoint") < 2:
                assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the driver committed no batch in time"
                time.sleep(0.2)
        finally:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver, its JVM and its Python workers
            driver.wait()
    killed_after = _committed_batches(tmp_path / "checkpoint")
    assert killed_after < n_batches, "the stream finished before it could be killed"

    config = stream_config(tmp_path, kafka_broker.bootstrap_servers, topics)
    run_stream(config, spark=spark)
    assert_lake_matches_truth(tmp_path, truth)


def _kafka_rows(spark, messages: list[tuple[str, bytes]], first_offset: int = 0):
    """A DataFrame with the Kafka source's columns, as foreachBatch receives it."""
    import pyarrow as pa

    return spark.createDataFrame(pa.table({
        "key": [b"k"] * len(messages), "value": [value for _, value in messages],
        "topic": [topic for topic, _ in messages], "partition": pa.array([0] * len(messages), pa.int32()),
        "offset": list(range(first_offset, first_offset + len(messages))),
        "timestamp": pa.array([0] * len(messages), pa.timestamp("us", tz="UTC")),
        "timestampType": pa.array([0] * len(messages), pa.int32()),
    }))


def test_repeated_alerts_are_stored_once_by_the_alert_files_path(spark, tmp_path):
    """A producer re-sending messages (in the same batch and in a later one): the alerts files the
    decode pass wrote are rewritten without the repeats, so every table holds each row once."""
    from lenga.io.lake import open_lake
    from lenga.stream.ingest import MicroBatchWriter
    from lenga.tables import TABLE_SPECS

    sim, alerts, truth = simulated("dup", corrupt_fraction=0.0, surveys=("ztf",), n_objects=6)
    config = stream_config(tmp_path, None, ["unused"])
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "metadata").write_text('{"id":"dup-test"}\n')
    lake = open_lake(spark, tmp_path / "lake")
    assert lake.commits_executor_files
    for spec in TABLE_SPECS.values():
        lake.ensure(spec)
    writer = MicroBatchWriter(lake, config)
    messages = [(a.topic, a.value) for a in alerts]
    half = len(messages) // 2
    assert half >= 2
    writer(_kafka_rows(spark, messages[:half] + messages[:2]), 0)  # two repeats inside the batch
    writer(_kafka_rows(spark, messages[half - 2:], first_offset=1000), 1)  # two already stored
    assert [b.input_rows for b in writer.reports] == [half + 2, len(messages) - half + 2]
    assert [b.tables["alerts"].rows for b in writer.reports] == [half, len(messages) - half]
    assert_lake_matches_truth(tmp_path, truth)
    stored = table(tmp_path, "alerts")
    assert stored["cutoutScience"].null_count() == 0 and sorted(stored["ingest_batch_id"].unique()) == [0, 1]
    writer(_kafka_rows(spark, messages[:half] + messages[:2]), 0)  # a replay of batch 0 writes nothing
    replay = writer.reports[-1].tables
    assert all(replay[name].skipped for name in ("alerts", "detections", "non_detections"))
    assert not replay["quarantine"].rows
    assert_lake_matches_truth(tmp_path, truth)
