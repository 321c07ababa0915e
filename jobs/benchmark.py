"""Benchmark: simulated alerts through the full current pipeline, with per-stage numbers.

    ./spark-submit.sh bench --alerts N --json FILE [--surveys ztf] [--batch 10000]

Stages, each measured on the same messages:
- ``simulate``        the simulator producing the messages (one core; not part of the pipeline)
- ``kafka_produce``   publishing them to the embedded Tansu broker
- ``decode``          ``lenga.decode.decode_record_batch`` alone, in this process (one core)
- ``kafka_read``      Spark reading the topic through the configured Kafka source (count only)
- ``read_decode``     inside the stream: Kafka → decoded, persisted micro-batch
- ``write_<table>``   inside the stream: de-duplication + Delta commit of each table
- ``step_<name>``     inside the stream: each enrichment step (the stamp classifier; ``xmatch``
                      against the demo catalog of the simulated sky, ingested first: its stars,
                      hosts and quasars plus 20,000 field sources)
- ``core_tables``     inside the stream: Kafka → the four Delta tables (read, decode, commits), steps
                      excluded (the ingest's own throughput target)
- ``core_tables_alone``  the same as a query of its own, without steps, in a fresh process (its own
                      JVM and Python workers, cold start included), run before everything else:
                      alerts over the query's wall time; ``core_tables_alone`` in the JSON also
                      has the rate over its micro-batches alone (``batches_alerts_per_s``, without
                      the query's start), latencies and peak RSS/PSS (the ingest's memory target)
- ``core_tables_beside_aggregation``  the same fresh-process query while the aggregation query
                      (curves → ``objects``, on a processing-time trigger) runs beside it in the
                      same application, on the same cores: how much the aggregation slows the
                      ingest; its JSON object adds the aggregation's catch-up time after the
                      ingest drained the topic
- ``end_to_end``      the ingest query from start to drained topic (the headline ``alerts_per_s``;
                      includes its enrichment steps: the stamp classifier, the cross-match when a
                      catalog is ingested)
- ``core_tables_warm``, ``end_to_end_warm``  the same over the micro-batches after the first, i.e.
                      the sustained rate of a running stream: the first batch also pays the start
                      of the Python workers, their imports and the JIT (run enough alerts for
                      several batches: ``--alerts 40000 --batch 10000``)
- ``aggregation``     the second query (lake → per-object light curves → ``objects`` → features →
                      light-curve classes), run after the ingest query over the same alerts, in
                      alerts/s of its own wall time; ``aggregation_phase_rows`` the one Python
                      pass computing curves, objects rows, features and classes,
                      ``aggregation_phase_objects_merge`` the MERGE, ``aggregation_step_<name>``
                      each object step's write
- ``distribution``    the third query (enriched alerts → conf/filters.yaml → Kafka topics)
- ``full_pipeline``   alerts / (ingest + aggregation + distribution wall time), the three queries
                      run one after the other (on a cluster they run side by side)

``components`` times science stages alone, outside Spark (``--no-components`` skips them):
``features`` (lenga.bench.features: curves/s, per-family CPU share, 2 processes),
``lc_classifier`` (objects/s, features excluded), ``stamp_classifier`` (stamps/s).

``xmatch`` reports the cross-match stage on its own (``lenga.bench.xmatch.measure``): new objects
of 20,000-alert batches against generated catalogs of 10^6 (broadcast) and 10^7 (partitioned) rows.

``latency_p50_s``/``latency_p95_s`` are per micro-batch (read, decode, all four commits, steps);
``peak_rss_mb`` is the peak of the summed resident memory of the driver Python, the JVM and every
Python worker during the ingest run, ``peak_pss_mb`` the peak of their summed proportional memory
(pages shared between PySpark's forked workers counted once: the memory really occupied, see
lenga.bench.monitor); ``*_full_pipeline_mb`` the same over the three queries. Numbers are alerts/s unless named otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import multiprocessing
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa

from lenga.bench.features import measure as measure_features
from lenga.bench.lc_classifier import measure as measure_lc_classifier
from lenga.bench.monitor import PeakRSS, Stopwatch, emit_report
from lenga.bench.stamps import measure as measure_stamps
from lenga.bench.xmatch import measure as measure_xmatch
from lenga.config import add_config_arguments, load_config
from lenga.curves.magstats import OBJECTS_SPEC
from lenga.decode import decode_record_batch
from lenga.io.broker import EmbeddedBroker
from lenga.io.kafka import create_topics, publish
from lenga.io.lake import open_lake
from lenga.io.session import build_session
from lenga.sim.night import SimConfig, simulate
from lenga.stream.aggregate import AggregationSettings, run_aggregation, start_aggregation
from lenga.stream.catalogs import ingest_demo_catalog
from lenga.stream.distribute import run_distribution
from lenga.stream.ingest import read_alert_stream, run_stream
from lenga.tables import TABLE_SPECS

# Simulated objects produce about this many alerts each over the benchmark's nights.
ALERTS_PER_OBJECT_GUESS = 3
DECODE_SAMPLE = 4000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--alerts", type=int, default=20000, help="number of alerts (default 20000)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--surveys", default="ztf", help="ztf, lsst or ztf,lsst (default ztf: ZTF-size alerts)")
    parser.add_argument("--batch", type=int, help="alerts per micro-batch (source.kafka.max_offsets_per_trigger)")
    parser.add_argument("--workdir", help="lake/checkpoint directory (default: a temporary one, removed)")
    parser.add_argument("--no-components", dest="components", action="store_false",
                        help="skip the stand-alone feature, light-curve and stamp classifier measures")
    parser.add_argument("--xmatch-rows", type=int, nargs="*", default=[1_000_000, 10_000_000],
                        help="catalog sizes for the cross-match stage (default 1e6 broadcast, 1e7 partitioned); "
                             "none to skip")
    return parser.parse_args(argv)


def simulated_messages(n: int, surveys: str, seed: int, topics: dict[str, str]) -> tuple[list, SimConfig]:
    """At least ``n`` valid messages (then cut to ``n``), drawing more objects until there are
    enough; with the simulation's configuration (its sky is the demo catalog's)."""
    n_objects = max(10, n // ALERTS_PER_OBJECT_GUESS // len(surveys.split(",")))
    while True:
        sim = SimConfig(seed=seed, n_objects=n_objects, n_nights=5, surveys=surveys, corrupt_fraction=0.0,
                        topics=topics)
        alerts = list(itertools.islice(simulate(sim), n))
        if len(alerts) >= n:
            return alerts, sim
        n_objects = int(n_objects * 1.5 * n / max(len(alerts), 1)) + 1


def produce_workload(n: int, surveys: str, seed: int, topics: dict[str, str], bootstrap: str) -> dict:
    """Simulate, time the decoder on one core, publish. Runs in a child process, so the measured
    driver never holds the benchmark's input (the survey, not lenga, owns those bytes)."""
    stages: dict[str, float] = {}
    with Stopwatch() as watch:
        alerts, sim = simulated_messages(n, surveys, seed, topics)
    stages["simulate"] = len(alerts) / watch.seconds
    sample = alerts[:DECODE_SAMPLE]
    batch = pa.RecordBatch.from_pydict({
        "key": [a.key for a in sample], "value": [a.value for a in sample],
        "topic": [a.topic for a in sample], "partition": [0] * len(sample), "offset": list(range(len(sample))),
        "timestamp": pa.array([0] * len(sample), pa.timestamp("us", tz="UTC")), "timestampType": [0] * len(sample),
    })
    decode_record_batch(batch.slice(0, 10))  # warm the schema caches
    with Stopwatch() as watch:
        decode_record_batch(batch)
    stages["decode_one_core"] = len(sample) / watch.seconds
    with Stopwatch() as watch:
        published = publish(((a.topic, a.key, a.value) for a in alerts), bootstrap)
    stages["kafka_produce"] = published / watch.seconds
    mean_kb = sum(len(a.value) for a in alerts) / len(alerts) / 1024
    return {"stages": stages, "published": published, "mean_alert_kb": mean_kb, "sim": sim}


def query_report(summary, memory: PeakRSS) -> dict:
    """A benchmark query run in a fresh process: its rates, latencies and the process tree's memory."""
    batches_s = sum(b.seconds for b in summary.batches)
    return {"alerts": summary.alerts_in, "wall_s": round(summary.wall_s, 2),
            "alerts_per_s": round(summary.alerts_per_s, 1), "micro_batches": len(summary.batches),
            # The micro-batches alone, without the query's start (planning, source daemons): the
            # sustained rate of a stream that runs all night.
            "batches_s": round(batches_s, 2), "batches_alerts_per_s": round(summary.alerts_in / batches_s, 1),
            "latency_p50_s": round(summary.latency(0.5), 2), "latency_p95_s": round(summary.latency(0.95), 2),
            "peak_rss_mb": round(memory.peak_mb, 1), "peak_rss_breakdown_mb": memory.breakdown_mb(),
            "peak_pss_mb": round(memory.peak_pss_mb, 1)}


def core_tables_alone(conf, overrides: list[str], settings: dict, bootstrap: str) -> dict:
    """Kafka → the four tables with no step, in this (fresh, spawned) process: its own Spark JVM and
    Python workers, so the wall time includes their start and the memory is theirs alone."""
    config = load_config(conf, overrides, settings)
    config.source.kafka.bootstrap_servers = bootstrap
    with PeakRSS() as memory:
        summary = run_stream(config, app_name="lenga-bench-core-tables", steps=[])
    return query_report(summary, memory)


def core_tables_beside_aggregation(conf, overrides: list[str], settings: dict, bootstrap: str) -> dict:
    """Issue 3's target, measured as it reads: the ingest path (Kafka → the four tables, no step)
    while the aggregation query (curves → ``objects``; its object steps, features and classes,
    are measured by ``aggregation``) runs beside it, on a processing-time trigger, in the same
    application and on the same cores. Fresh process, cold start included as in
    :func:`core_tables_alone`. ``aggregation_catch_up_s``: how long the aggregation still ran
    after the ingest had drained the topic (up to one trigger interval of waiting, then its last
    batches); ``aggregation_batches_s``: the wall time of all its micro-batches."""
    config = load_config(conf, overrides, settings)
    config.source.kafka.bootstrap_servers = bootstrap
    with PeakRSS() as memory:
        spark = build_session("lenga-bench-beside-aggregation", config.spark)
        lake = open_lake(spark, config.lake.root, config.lake.backend)
        for spec in TABLE_SPECS.values():  # the aggregation's sources must exist before the ingest's first commit
            lake.ensure(spec)
        aggregation_settings = dataclasses.replace(AggregationSettings.from_config(config), trigger="processing_time")
        aggregation, objects_writer = start_aggregation(spark, config, lake, aggregation_settings, steps=[])
        try:
            summary = run_stream(config, spark=spark, steps=[])
            with Stopwatch() as catch_up:
                aggregation.processAllAvailable()
        finally:
            aggregation.stop()
    report = query_report(summary, memory)
    report.update(aggregation_catch_up_s=round(catch_up.seconds, 2), aggregation_micro_batches=len(objects_writer.reports),
                  aggregation_batches_s=round(sum(b.seconds for b in objects_writer.reports), 2),
                  objects=lake.count(OBJECTS_SPEC.name))
    return report


def kafka_read_rate(spark, config, n: int) -> float:
    """Spark reading the whole topic (no decode, no write): the source's own ceiling."""

    counts: list[int] = []
    with tempfile.TemporaryDirectory() as checkpoint, Stopwatch() as watch:
        query = (read_alert_stream(spark, config.source).writeStream
                 .foreachBatch(lambda df, _: counts.append(df.select("offset").count()))
                 .trigger(availableNow=True).option("checkpointLocation", checkpoint).start())
        query.awaitTermination()
    if sum(counts) != n:
        raise RuntimeError(f"the Kafka source read {sum(counts)} messages, expected {n}")
    return n / watch.seconds


def run_settings(workdir: Path, batch: int | None, name: str = "") -> dict:
    """Configuration of a benchmark query: lake and checkpoint under ``workdir`` (``name`` keeps
    the core-tables query's apart), drained with AvailableNow in batches of ``batch`` alerts."""
    settings = {"lake": {"root": str(workdir / name / "lake")},
                "stream": {"checkpoint": str(workdir / name / "checkpoint"), "trigger": "available_now"}}
    if batch:
        settings["source"] = {"kafka": {"max_offsets_per_trigger": batch}}
    return settings


def main(argv=None) -> None:
    args = parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="lenga-bench-"))
    config = load_config(args.conf, args.overrides, run_settings(workdir, args.batch))
    topics = dict(zip(("ztf", "lsst"), config.source.kafka.topics, strict=False))
    stages: dict[str, float] = {}
    try:
        with EmbeddedBroker(log_dir=workdir) as broker:
            create_topics(broker.bootstrap_servers, config.source.kafka.topics, partitions=2)
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                workload = pool.submit(produce_workload, args.alerts, args.surveys,
                                       config.simulate.get("seed", 42), topics, broker.bootstrap_servers).result()
            stages.update(workload["stages"])
            published, mean_kb = workload["published"], workload["mean_alert_kb"]
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:  # a fresh process: nothing but the query
                core_alone = pool.submit(core_tables_alone, args.conf, args.overrides,
                                         run_settings(workdir, args.batch, "core_tables_alone"),
                                         broker.bootstrap_servers).result()
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                beside = pool.submit(core_tables_beside_aggregation, args.conf, args.overrides,
                                     run_settings(workdir, args.batch, "core_tables_beside_aggregation"),
                                     broker.bootstrap_servers).result()
            for name, report in (("core_tables_alone", core_alone), ("core_tables_beside_aggregation", beside)):
                if report["alerts"] != published:
                    raise RuntimeError(f"{name} took {report['alerts']} alerts, expected {published}")
                stages[name] = report["alerts_per_s"]
            config.source.kafka.bootstrap_servers = broker.bootstrap_servers

            spark = build_session("lenga-bench", config.spark)
            # The demo catalog of the simulated sky, so that the ingest's cross-match step runs.
            ingest_demo_catalog(open_lake(spark, config.lake.root, config.lake.backend), workload["sim"])
            stages["kafka_read"] = kafka_read_rate(spark, config, published)
            with PeakRSS(exclude=(broker.pid,)) as pipeline_memory:
                summary = run_stream(config, spark=spark)
                memory = pipeline_memory.snapshot()  # the ingest runs first: its peaks are those so far
                if summary.alerts_in != published:
                    raise RuntimeError(f"the stream took {summary.alerts_in} alerts, expected {published}")
                aggregated = run_aggregation(config, spark)
                distributed = run_distribution(config, spark)

        decode_s = sum(b.decode_s for b in summary.batches)
        stages["read_decode"] = summary.alerts_in / decode_s
        for table in summary.table_rows:
            seconds = sum(b.tables[table].seconds for b in summary.batches)
            stages[f"write_{table}"] = summary.alerts_in / seconds if seconds else float("inf")
        for step in sorted({name for b in summary.batches for name in b.step_seconds}):
            stages[f"step_{step}"] = summary.step_rate(step)
        stages["core_tables"] = summary.alerts_in / sum(b.decode_s + b.write_s for b in summary.batches)
        warm = summary.batches[1:]  # the first batch also starts the Python workers and their imports
        if sum(b.input_rows for b in warm):
            stages["core_tables_warm"] = sum(b.input_rows for b in warm) / sum(b.decode_s + b.write_s for b in warm)
            stages["end_to_end_warm"] = sum(b.input_rows for b in warm) / sum(b.seconds for b in warm)
        stages["end_to_end"] = summary.alerts_per_s
        stages["aggregation"] = summary.alerts_in / aggregated.wall_s
        for kind in ("phase", "step"):  # phases: the one Python pass (rows) and the MERGE; steps: their writes
            timed = [getattr(b, f"{kind}_seconds") for b in aggregated.batches]
            for name in sorted({name for seconds in timed for name in seconds}):
                seconds = sum(t.get(name, 0.0) for t in timed)
                stages[f"aggregation_{kind}_{name}"] = summary.alerts_in / seconds if seconds else float("inf")
        stages["distribution"] = summary.alerts_in / distributed.wall_s
        stages["full_pipeline"] = summary.alerts_in / (summary.wall_s + aggregated.wall_s + distributed.wall_s)
        xmatch = {}
        for rows in args.xmatch_rows:
            xmatch[f"catalog_{rows:.0e}"] = measure_xmatch(spark, n_objects=10_000, catalog_rows=rows)
        components = {}
        if args.components:
            components = {"features": measure_features(objects=1000, processes=2),
                          "lc_classifier": measure_lc_classifier(n_objects=20_000),
                          "stamp_classifier": measure_stamps(n_alerts=4000, cores=2)}
        result = {
            "alerts": summary.alerts_in,
            "surveys": args.surveys,
            "mean_alert_kb": round(mean_kb, 1),
            "micro_batches": len(summary.batches),
            "max_offsets_per_trigger": config.source.kafka.max_offsets_per_trigger,
            "wall_s": round(summary.wall_s, 2),
            "alerts_per_s": round(summary.alerts_per_s, 1),
            "stages": {k: round(v, 1) for k, v in stages.items()},
            "latency_p50_s": round(summary.latency(0.5), 2),
            "latency_p95_s": round(summary.latency(0.95), 2),
            "peak_rss_mb": round(memory.peak_mb, 1),
            "peak_rss_breakdown_mb": memory.breakdown_mb(),
            "peak_pss_mb": round(memory.peak_pss_mb, 1),
            "peak_rss_full_pipeline_mb": round(pipeline_memory.peak_mb, 1),
            "core_tables_alone": core_alone,
            "core_tables_beside_aggregation": beside,
            "peak_pss_full_pipeline_mb": round(pipeline_memory.peak_pss_mb, 1),
            "rows": summary.table_rows,
            "xmatch": xmatch,
            "aggregation": {"objects": aggregated.objects_in_lake, "wall_s": round(aggregated.wall_s, 2),
                            "micro_batches": len(aggregated.batches),
                            "rows": {t: sum(b.tables[t].rows for b in aggregated.batches if t in b.tables)
                                     for t in {t for b in aggregated.batches for t in b.tables}}},
            "distribution": {"wall_s": round(distributed.wall_s, 2), "micro_batches": len(distributed.batches),
                             "published": distributed.published()},
            "components": components,
            "spark_master": config.spark.get("spark.master"),
            "lake_backend": summary.backend,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    emit_report(result, args.json)


if __name__ == "__main__":
    main()
