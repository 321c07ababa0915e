"""Batch reclassification of objects already in the lake (nightly cron, orchestrator, new model).

    ./spark-submit.sh reclassify --nights 20250510 20250512        every object detected those nights
    ./spark-submit.sh reclassify --night-range 20250501 20250531
    ./spark-submit.sh reclassify --objects ztf:ZTF25aaaaaaa lsst:3000000000000000042
    ./spark-submit.sh reclassify --nights 20250510 --set lc_classifier.model_dir=models/lc_classifier_v2

Rebuilds the selected objects' light curves from the lake, recomputes their features and both
classifiers with the models the configuration names, and appends the new rows (lenga.stream.reclassify).
Re-running it writes nothing new; a new model version appears beside the old rows.
"""

from __future__ import annotations

import argparse
import sys

from lenga.config import add_config_arguments, load_config
from lenga.io.session import build_session
from lenga.night import night_range
from lenga.stream.preflight import preflight, run_job
from lenga.stream.reclassify import reclassify


def parse_object(text: str) -> tuple[str, str]:
    survey, sep, object_id = text.partition(":")
    if not sep or survey not in ("ztf", "lsst") or not object_id:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SURVEY:OBJECT_ID with SURVEY ztf or lsst")
    return survey, object_id


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--lake", help="lake root directory (lake.root)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--nights", type=int, nargs="+", help="nights yyyymmdd (lenga.night)")
    which.add_argument("--night-range", type=int, nargs=2, metavar=("FIRST", "LAST"), help="inclusive")
    which.add_argument("--objects", type=parse_object, nargs="+", help="SURVEY:OBJECT_ID ...")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    config = load_config(args.conf, args.overrides, {"lake": {"root": args.lake}} if args.lake else None)
    nights = night_range(*args.night_range) if args.night_range else args.nights
    preflight(config.lake.root, None)
    spark = build_session("lenga-reclassify", config.spark)
    report = reclassify(config, spark, nights=nights, objects=args.objects)
    written = ", ".join(f"{name} +{report.written(name):,}" for name in report.tables)
    print(f"[lenga] reclassified {report.objects:,} objects (batch {report.batch_id}) in {report.seconds:.1f} s: "
          f"{written}")


if __name__ == "__main__":
    sys.exit(run_job(main))
