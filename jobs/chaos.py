"""Chaos runs: kill -9 the ingest, aggregation and distribution jobs at random times, restart them,
compare every table and output topic with an uninterrupted reference run (lenga/bench/chaos.py).

    ./spark-submit.sh chaos --query ingest|aggregate|distribute|all --runs 20 --kills 3 --seed 1 --json OUT
    ./spark-submit.sh chaos --query all --runs 0 --outage 60 --json OUT     the broker frozen 60 s mid-stream

Run i of a query draws its kill times from seed + i (recorded in the JSON). Exits 1 unless every
run kept the promises: tables exactly once, output topics at least once (docs/chaos.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lenga.bench.chaos import QUERIES, ChaosSettings, default_work_dir, run_chaos


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--query", choices=[*QUERIES, "all"], default="all")
    parser.add_argument("--runs", type=int, default=20, help="chaos runs per query")
    parser.add_argument("--kills", type=int, default=3, help="kill -9 per run")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first run (run i: seed + i)")
    parser.add_argument("--outage", type=float, help="then freeze the broker this many seconds mid-stream "
                        "(ingest, distribute)")
    parser.add_argument("--objects", type=int, default=ChaosSettings.objects, help="simulated objects per survey")
    parser.add_argument("--nights", type=int, default=ChaosSettings.nights)
    parser.add_argument("--alerts-per-batch", type=int, default=ChaosSettings.alerts_per_batch)
    parser.add_argument("--versions-per-batch", type=int, default=ChaosSettings.versions_per_batch)
    parser.add_argument("--work", help="working directory (default: a new temporary one)")
    parser.add_argument("--json", help="write the report here (rewritten after every run)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = ChaosSettings(Path(args.work) if args.work else default_work_dir(), objects=args.objects,
                             nights=args.nights, alerts_per_batch=args.alerts_per_batch,
                             versions_per_batch=args.versions_per_batch)
    queries = list(QUERIES) if args.query == "all" else [args.query]
    report = run_chaos(queries, args.runs, args.kills, args.seed, settings, args.outage, args.json,
                       log=lambda line: print(line, flush=True))
    summary = {q: {**entry.get("summary", {}), **({"outage_ok": entry["outage"]["ok"]} if "outage" in entry else {})}
               for q, entry in report["queries"].items()}
    print(json.dumps({"ok": report["ok"], "seconds": report["seconds"], "queries": summary}, indent=1))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
