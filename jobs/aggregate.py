"""The aggregation job: the lake's detections and non-detections → per-object light curves → ``objects``,
then the object steps (``features``; see lenga.stream.aggregate.default_steps).

    ./spark-submit.sh aggregate [--lake DIR] [--checkpoint DIR] [--trigger processing_time]
    ./spark-submit.sh aggregate --checkpoint NEW_DIR      after losing the state: replays the lake

Runs beside (``--trigger processing_time``) or after (default: available_now) the ingest job; see
lenga.stream.aggregate for the design. Everything else comes from conf/lenga.yaml (feature settings:
conf/features.yaml, overridable with ``--set features.<key>=<value>``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from lenga.config import add_config_arguments, load_config
from lenga.stream.aggregate import AggregationSettings, run_aggregation
from lenga.stream.preflight import preflight, run_job


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--lake", help="lake root directory (lake.root)")
    parser.add_argument("--checkpoint", help="checkpoint of the aggregation query (default: beside the stream's)")
    parser.add_argument("--trigger", choices=["available_now", "processing_time"],
                        help="default: stream.trigger")
    parser.add_argument("--state-ttl-days", type=float, help="expire curves untouched that long (default: never, the faster operator)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    config = load_config(args.conf, args.overrides, {"lake": {"root": args.lake}} if args.lake else None)
    settings = AggregationSettings.from_config(config)
    changes = {k: v for k, v in (("checkpoint", args.checkpoint), ("trigger", args.trigger),
                                 ("state_ttl_days", args.state_ttl_days)) if v is not None}
    settings = dataclasses.replace(settings, **changes)
    preflight(config.lake.root, settings.checkpoint_for(config))
    summary = run_aggregation(config, settings=settings)
    written = {}
    for batch in summary.batches:
        for table, result in batch.tables.items():
            written[table] = written.get(table, 0) + result.rows
    steps = "".join(f", {table} rows written: {rows:,}" for table, rows in written.items())
    print(f"[lenga] aggregation: {len(summary.batches)} micro-batches, {summary.objects_updated:,} object "
          f"updates in {summary.wall_s:.1f} s; objects in {summary.lake_root}: {summary.objects_in_lake:,}{steps}")


if __name__ == "__main__":
    sys.exit(run_job(main))
