"""Score the shipped classifiers on a labelled real set.

    ./spark-submit.sh evaluate --real ../shared/data/real --json evaluation.json

The set has the layout of ``../shared/data/real`` (``labels.csv``, ``lightcurves.parquet``,
``stamps.parquet``; either data file may be absent). Writes the report (per-class recall and
precision, balanced recall, calibration) to ``--json`` and the confusion matrices as PNG files
beside it (``<json stem>_lc_top.png``, ...). Models and the classification rule come from the
configuration (``--set lc_classifier.model_dir=DIR`` scores another model). No Spark session: the
production feature and classifier functions run in this process (lenga.bench.evaluate).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lenga.bench.evaluate import evaluate_real_set, summary_lines
from lenga.config import add_config_arguments, load_config
from lenga.lc_classifier.realset import RealSetError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--real", required=True, help="directory of the labelled real set")
    parser.add_argument("--json", required=True, help="report file (PNG figures are written beside it)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    config = load_config(args.conf, args.overrides)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        report = evaluate_real_set(Path(args.real), config, out.parent / out.stem)
    except RealSetError as error:
        print(f"[lenga] error: {error}", file=sys.stderr, flush=True)
        return 2
    out.write_text(json.dumps(report, indent=1) + "\n")
    for line in summary_lines(report):
        print(f"[lenga] {line}")
    print(f"[lenga] report: {out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
