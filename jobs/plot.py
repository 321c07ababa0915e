"""One object at a glance, as a PNG: light curve, cutouts and class probabilities.

    ./spark-submit.sh plot OBJECT_ID [--lake DIR] [--png FILE] [--alert latest|first]

Reads the lake with polars over delta-rs (no Spark): the object's detections with errors and upper
limits (magnitudes), detections and forced photometry (difference flux), the science/template/
difference stamps of its latest (or first) alert, and the latest probabilities of the stamp and
light-curve classifiers when their tables exist ("no classification" otherwise).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lenga.config import add_config_arguments, load_config
from lenga.viz.plots import object_figure
from lenga.viz.read import ALERT_CHOICES, load_object


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("object_id", help="ZTF objectId or LSST diaObjectId (as stored in the lake)")
    parser.add_argument("--lake", help="lake root (default: lake.root of the configuration)")
    parser.add_argument("--png", help="output file (default: OBJECT_ID.png)")
    parser.add_argument("--alert", choices=ALERT_CHOICES, default="latest", help="whose cutouts to show")
    return parser.parse_args(argv)


def main(argv=None) -> Path:
    args = parse_args(argv)
    lake = args.lake or load_config(args.conf, args.overrides).lake.root
    target = Path(args.png or f"{args.object_id.replace(':', '_')}.png")
    figure = object_figure(load_object(lake, args.object_id, args.alert))
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target)
    print(f"[lenga] {args.object_id}: {target.resolve()}")
    return target


if __name__ == "__main__":
    main()
