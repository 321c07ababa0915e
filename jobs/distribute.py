"""The distribution job: new alerts in the lake → user filters (conf/filters.yaml) → Kafka topics.

    ./spark-submit.sh distribute --bootstrap HOST:PORT [--lake DIR] [--filters FILE] [--trigger processing_time]
    ./spark-submit.sh distribute --bootstrap HOST:PORT --schema-registry http://HOST:8081

Runs beside (``--trigger processing_time``) or after (default: stream.trigger) the ingest and
aggregation jobs; edit the filters file while it runs and the next micro-batch uses it. See
lenga.stream.distribute for the design and lenga/filters/schemas/ for the output schemas.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from lenga.config import add_config_arguments, load_config
from lenga.filters.config import FilterSettings
from lenga.stream.distribute import run_distribution
from lenga.stream.preflight import preflight, run_job


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--lake", help="lake root directory (lake.root)")
    parser.add_argument("--bootstrap", help="Kafka for the output topics (filters.bootstrap_servers)")
    parser.add_argument("--filters", help="filters file (filters.file; default conf/filters.yaml)")
    parser.add_argument("--schema-registry", help="schema registry URL: Confluent wire format (filters.schema_registry_url)")
    parser.add_argument("--checkpoint", help="checkpoint of the distribution query (default: beside the stream's)")
    parser.add_argument("--trigger", choices=["available_now", "processing_time"], help="default: stream.trigger")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    config = load_config(args.conf, args.overrides, {"lake": {"root": args.lake}} if args.lake else None)
    settings = FilterSettings.from_config(config)
    changes = {k: v for k, v in (("bootstrap_servers", args.bootstrap), ("file", args.filters),
                                 ("schema_registry_url", args.schema_registry), ("checkpoint", args.checkpoint),
                                 ("trigger", args.trigger)) if v is not None}
    settings = dataclasses.replace(settings, **changes)
    preflight(config.lake.root, settings.checkpoint_for(config))
    summary = run_distribution(config, settings=settings)
    published = ", ".join(f"{name}: {n:,}" for name, n in summary.published().items()) or "nothing"
    print(f"[lenga] distribution: {len(summary.batches)} micro-batches, {summary.alerts:,} alerts in "
          f"{summary.wall_s:.1f} s; published {published}")


if __name__ == "__main__":
    sys.exit(run_job(main))
