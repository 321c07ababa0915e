"""Simulate nights of ZTF/LSST alerts into a directory or onto Kafka topics.

    ./spark-submit.sh simulate --out DIR | --kafka HOST:PORT [--seed N] [--objects N] [--nights N]
                               [--surveys ztf,lsst] [--corrupt-fraction F] [--lsst-schema 9.0|10.0]

Defaults come from the ``simulate:`` section of conf/lenga.yaml (``--conf FILE`` / ``--set
simulate.key=value``); command-line options win. Prints the counts the pipeline must reproduce.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace

from lenga.config import add_config_arguments, load_config
from lenga.io.kafka import publish
from lenga.sim.night import SimAlert, SimConfig, expected_counts, simulate, write_directory

# Print progress every this many messages when no progress-bar library is installed.
PROGRESS_EVERY = 1000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", help="write one .avro file per message into this directory")
    target.add_argument("--kafka", metavar="HOST:PORT", help="publish to Kafka at these bootstrap servers")
    parser.add_argument("--seed", type=int, help="random seed (same seed: byte-identical messages)")
    parser.add_argument("--objects", type=int, help="objects per survey")
    parser.add_argument("--nights", type=int, help="number of alert nights")
    parser.add_argument("--surveys", help="comma-separated subset of ztf,lsst")
    parser.add_argument("--corrupt-fraction", type=float, help="fraction of extra deliberately broken messages")
    parser.add_argument("--lsst-schema", choices=["9.0", "10.0"], help="LSST alert schema version")
    return parser.parse_args(argv)


def sim_config(args: argparse.Namespace) -> SimConfig:
    """conf/lenga.yaml's ``simulate:`` section, overridden by the command-line options given."""
    values = dict(load_config(args.conf, args.overrides).simulate)
    cli = {
        "seed": args.seed,
        "n_objects": args.objects,
        "n_nights": args.nights,
        "surveys": args.surveys,
        "corrupt_fraction": args.corrupt_fraction,
        "lsst_schema": args.lsst_schema,
    }
    values.update({k: v for k, v in cli.items() if v is not None})
    return SimConfig.from_dict(values)


def _progress(alerts: Iterable[SimAlert]) -> Iterator[SimAlert]:
    """tqdm's bar when tqdm is installed, else a line every PROGRESS_EVERY messages on stderr."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        yield from tqdm(alerts, unit="msg", desc="simulate")
        return
    start = time.perf_counter()
    n = 0
    for n, alert in enumerate(alerts, 1):
        if n % PROGRESS_EVERY == 0:
            print(f"[simulate] {n} messages, {n / (time.perf_counter() - start):.0f}/s", file=sys.stderr)
        yield alert


def main(argv=None) -> dict:
    args = parse_args(argv)
    config = sim_config(args)
    alerts: list[SimAlert] = []

    def keep(stream: Iterable[SimAlert]) -> Iterator[SimAlert]:
        for alert in stream:
            yield alert
            # Only the truth is needed for the counts: drop the payload so memory stays flat.
            alerts.append(replace(alert, value=b""))

    start = time.perf_counter()
    stream = keep(_progress(simulate(config)))
    if args.out:
        written = write_directory(stream, args.out)
    else:
        written = publish(((a.topic, a.key, a.value) for a in stream), args.kafka)
    elapsed = time.perf_counter() - start
    counts = expected_counts(alerts)
    counts["messages_written"] = written
    counts["seconds"] = round(elapsed, 2)
    counts["messages_per_second"] = round(written / elapsed, 1) if elapsed > 0 else None
    print(json.dumps(counts, indent=2))
    return counts


if __name__ == "__main__":
    main()
