"""Fuzz the decoder: damaged ZTF and LSST messages beside clean ones (lenga.sim.fuzz).

    ./spark-submit.sh fuzz --cases 100000 --seed 1 --json OUT [--chunk 200] [--deadline 120] [--no-real]

Mutates the simulator's alerts and the real packets under ../shared/data (when present), decodes
them in chunks, each in a child process under a deadline, and prints (and writes to ``--json``)
cases, exceptions, hung chunks, the share of rejected messages with a reason, clean alerts whose
row changed (valid alerts lost) and cases/s. Exits 1 when the decoder contract was broken.
docs/robustness.md has the figures of a run.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from lenga.sim import fuzz

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000, help="number of messages to decode")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed: same messages)")
    parser.add_argument("--chunk", type=int, default=200, help="messages decoded together as one batch")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds a chunk may take before it is a hang")
    parser.add_argument("--no-real", action="store_true", help="only simulated seeds, not ../shared/data")
    parser.add_argument("--json", help="write the report to this file")
    args = parser.parse_args(argv)

    seeds = fuzz.simulated_seeds() + ([] if args.no_real else fuzz.real_seeds(SHARED_DATA))
    report = fuzz.run(args.cases, args.seed, seeds, args.chunk, args.deadline,
                      progress=lambda r: r.cases % 5000 < args.chunk and print(
                          f"{r.cases} cases, {len(r.exceptions)} exceptions, {len(r.hangs)} hangs",
                          file=sys.stderr, flush=True))
    summary = {"command": "./spark-submit.sh fuzz " + " ".join(argv if argv is not None else sys.argv[1:]),
               "date": datetime.now(UTC).isoformat(timespec="seconds"), "seeds": len(seeds), **report.summary()}
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if (summary["exceptions"] or summary["hung_chunks"] or summary["valid_alerts_lost"] or summary["wrong_row_counts"]
            or report.rejected_without_reason):
        sys.exit(1)
    return summary


if __name__ == "__main__":
    main()
