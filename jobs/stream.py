"""The main streaming job: Kafka (or alert files) → decode → Delta lake.

    ./spark-submit.sh stream --bootstrap HOST:PORT [--lake DIR] [--trigger processing_time]
    ./spark-submit.sh stream --files DIR [--lake DIR]

Everything else comes from conf/lenga.yaml (``--conf FILE`` / ``--set section.key=value``).
"""

from __future__ import annotations

import argparse
import sys

from lenga.config import add_config_arguments, load_config
from lenga.stream.ingest import print_summary, run_stream
from lenga.stream.preflight import preflight, run_job


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (source.kafka.bootstrap_servers)")
    parser.add_argument("--files", help="read alert files from this directory instead of Kafka")
    parser.add_argument("--lake", help="lake root directory (lake.root)")
    parser.add_argument("--checkpoint", help="checkpoint directory (stream.checkpoint)")
    parser.add_argument("--trigger", choices=["available_now", "processing_time"], help="stream.trigger")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace):
    extra: dict = {}
    if args.bootstrap:
        extra.setdefault("source", {}).setdefault("kafka", {})["bootstrap_servers"] = args.bootstrap
    if args.files:
        extra.setdefault("source", {}).update({"kind": "files", "files": {"path": args.files}})
    if args.lake:
        extra["lake"] = {"root": args.lake}
    if args.checkpoint or args.trigger:
        extra["stream"] = {k: v for k, v in (("checkpoint", args.checkpoint), ("trigger", args.trigger)) if v}
    return load_config(args.conf, args.overrides, extra)


def main(argv=None) -> None:
    config = config_from_args(parse_args(argv))
    preflight(config.lake.root, config.stream.checkpoint)
    print_summary(run_stream(config))


if __name__ == "__main__":
    sys.exit(run_job(main))
