"""The embedded default: a whole simulated night through lenga on this machine.

    ./spark-submit.sh demo [--lake DIR] [--objects N] [--nights N] [--seed N]

Starts the Tansu Kafka-compatible broker on a free 127.0.0.1 port, publishes simulated ZTF and LSST
alerts (a few deliberately corrupt ones included, to show the quarantine), runs the streaming job
with Trigger.AvailableNow until the topics are drained, writes the Delta lake, cross-matches every new
object with a catalog of the simulated stars, host galaxies and quasars and stamp-classifies new
objects, then runs the aggregation query (every object's light curve and statistics into `objects`,
features, light-curve classes) and the distribution query (the filters of conf/filters.yaml publish
to their Kafka topics), prints a summary and stops everything it started. Running it again adds nothing: the same seed gives the same alerts and
the lake de-duplicates them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lenga.config import add_config_arguments, load_config
from lenga.io.broker import EmbeddedBroker
from lenga.io.kafka import create_topics, publish
from lenga.io.lake import open_lake
from lenga.io.session import build_session
from lenga.sim.night import SimConfig, expected_counts, simulate
from lenga.stream.aggregate import run_aggregation
from lenga.stream.catalogs import ingest_demo_catalog
from lenga.stream.distribute import run_distribution
from lenga.stream.ingest import print_summary, run_stream


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--lake", default="./lake", help="lake root (default ./lake)")
    parser.add_argument("--objects", type=int, help="objects per survey (simulate.n_objects)")
    parser.add_argument("--nights", type=int, help="alert nights (simulate.n_nights)")
    parser.add_argument("--seed", type=int, help="simulator seed (simulate.seed)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    sim_overrides = {k: v for k, v in (("n_objects", args.objects), ("n_nights", args.nights),
                                        ("seed", args.seed)) if v is not None}
    lake = Path(args.lake).resolve()
    config = load_config(args.conf, args.overrides, {
        "lake": {"root": str(lake)},
        # A fresh broker restarts offsets at 0, so every demo run gets its own checkpoint.
        "stream": {"checkpoint": str(lake / "_checkpoints" / f"demo-{time.strftime('%Y%m%dT%H%M%S')}"),
                   "trigger": "available_now"},
        "simulate": sim_overrides,
    })
    sim = SimConfig.from_dict({**config.simulate, "topics": dict(zip(
        ("ztf", "lsst"), config.source.kafka.topics, strict=False))})
    alerts = list(simulate(sim))
    truth = expected_counts(alerts)
    with EmbeddedBroker(log_dir=lake / "_logs") as broker:
        create_topics(broker.bootstrap_servers, config.source.kafka.topics, partitions=2)
        published = publish(((a.topic, a.key, a.value) for a in alerts), broker.bootstrap_servers)
        print(f"[lenga] Tansu broker on {broker.bootstrap_servers}: published {published:,} simulated "
              f"alerts of {truth['objects']:,} objects ({truth['corrupt']} deliberately corrupt)")
        config.source.kafka.bootstrap_servers = broker.bootstrap_servers
        spark = build_session("lenga-demo", config.spark)
        ingested = ingest_demo_catalog(open_lake(spark, config.lake.root, config.lake.backend), sim)
        what = "already in the lake" if ingested.skipped else f"{ingested.report.rows_out:,} sources ingested"
        print(f"[lenga] demo catalog of the simulated stars, hosts and quasars, version {ingested.version}: {what}")
        summary = run_stream(config, spark=spark)
        print_summary(summary, published)
        aggregated = run_aggregation(config, spark)
        steps = ", ".join(f"{name} +{sum(b.tables[name].rows for b in aggregated.batches if name in b.tables):,}"
                          for name in dict.fromkeys(t for b in aggregated.batches for t in b.tables))
        print(f"[lenga] aggregation: {aggregated.objects_updated:,} object light curves updated in "
              f"{aggregated.wall_s:.1f} s ({steps or 'no object steps'}); objects table: "
              f"{aggregated.objects_in_lake:,} rows")
        distributed = run_distribution(config, spark)
        topics = ", ".join(f"{name}: {n:,}" for name, n in distributed.published().items())
        print(f"[lenga] distribution: {distributed.alerts:,} enriched alerts through the filters in "
              f"{distributed.wall_s:.1f} s; published {topics or 'nothing'} (Kafka {broker.bootstrap_servers})")
    print(f"[lenga] expected from the simulator's truth: {truth['detections']:,} unique detections, "
          f"{truth['upper_limits'] + truth['forced_photometry']:,} upper limits/forced points, "
          f"{truth['corrupt']} to quarantine")
    print(f"[lenga] explore: python -c \"import polars as pl; print(pl.read_delta('{lake}/detections'))\"")


if __name__ == "__main__":
    main()
