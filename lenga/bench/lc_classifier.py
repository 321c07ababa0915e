"""Inference throughput of the light-curve classifier (features excluded), for jobs/benchmark.py.

``measure()`` classifies a frame of ``n_objects`` feature rows drawn uniformly inside the training
set's 1st-99th percentile range of every feature (``feature_ranges`` in the model metadata: tree
traversal cost does not depend on the values, only on the trees), with one thread as in a Spark
task, and returns objects per second of the whole :func:`~lenga.lc_classifier.inference.classify`
(eligibility, the four models, 18 output rows per object) and of the models alone, by wall clock and
by CPU time (the CPU rate does not depend on the neighbours' load).

    python -m lenga.bench.lc_classifier [--objects 20000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lenga.lc_classifier.inference import classify
from lenga.lc_classifier.model import HierarchicalClassifier
from lenga.lc_classifier.settings import LCClassifierSettings


def synthetic_features(model: HierarchicalClassifier, n_objects: int, seed: int,
                       detection_bands: tuple[str, ...]) -> pd.DataFrame:
    """Feature rows inside the training ranges, with enough detections to be classified."""
    rng = np.random.default_rng(seed)
    ranges = model.metadata["feature_ranges"]
    columns = {name: rng.uniform(lo, hi, n_objects) if name in ranges else np.full(n_objects, np.nan)
               for name, (lo, _, hi) in ((f, ranges.get(f, (0.0, 0.0, 0.0))) for f in model.features)}
    frame = pd.DataFrame(columns)
    frame.insert(0, "survey", "ztf")
    frame.insert(1, "objectId", [f"bench{k}" for k in range(n_objects)])
    frame["feature_version"] = model.metadata["feature_version"]
    frame["night"], frame["lastmjd"], frame["ndet"] = 20250501, 60796.3, 40
    for band in detection_bands:
        frame[f"n_det_{band}"] = 20
    return frame


def _rate(func, n: int, repeat: int) -> dict[str, float]:
    best_wall = best_cpu = np.inf
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        func()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return {"wall_objects_per_s": n / best_wall, "cpu_objects_per_s": n / max(best_cpu, 1e-9)}


def measure(model_dir: str | Path | None = None, n_objects: int = 20_000, repeat: int = 3, seed: int = 0,
            settings: LCClassifierSettings | None = None) -> dict:
    """Objects per second of ``classify`` and of the models alone (best of ``repeat`` runs)."""
    settings = settings or LCClassifierSettings()
    model = HierarchicalClassifier.load(model_dir or settings.model_path, nthread=1)
    bands = tuple(settings.detection_bands)
    frame = synthetic_features(model, n_objects, seed, bands)
    x = model.matrix(frame)
    return {"objects": n_objects, "features": len(model.features), "threads": 1,
            "classify": _rate(lambda: classify(model, frame, settings.min_detections, bands), n_objects, repeat),
            "models_only": _rate(lambda: model.predict_proba(x), n_objects, repeat)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--model", type=Path, help="model directory (default: lc_classifier.model_dir)")
    args = parser.parse_args(argv)
    result = measure(args.model, args.objects)
    print(json.dumps({k: ({m: round(v) for m, v in r.items()} if isinstance(r, dict) else r)
                      for k, r in result.items()}, indent=1))


if __name__ == "__main__":
    main()
