"""Throughput of each feature family on simulated ZTF-like light curves.

``python -m lenga.features.benchmark --objects 2000`` prints objects (light curves in g and r) per
second for every family and in total, single-threaded (``n_jobs=1``, as in one Spark task).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from lenga.features import FeatureConfig, profile
from lenga.features.simulate import ztf_like_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--min-points", type=int, default=20)
    parser.add_argument("--max-points", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    detections, non_detections = ztf_like_batch(np.random.default_rng(args.seed), args.objects,
                                                args.min_points, args.max_points)
    rates = profile(detections, non_detections, FeatureConfig())
    print(json.dumps({name: round(rate, 1) for name, rate in rates.items()}, indent=1))


if __name__ == "__main__":
    main()
