"""Throughput of feature extraction on simulated ZTF-like light curves (g and r, 20-200 points).

``python -m lenga.features.benchmark --objects 1000`` prints objects per second of every stage
(``prepare``, each feature family, ``assemble``, ``total``) by CPU time and by wall clock, in one
process with ``n_jobs=1`` as in one Spark task, and names the slowest family. ``--processes 2``
then also runs ``extract_features`` in that many processes at once, each on its own batch, as Spark
runs one task per core, and reports their combined objects per wall-clock second.

The machine is shared: the CPU rates do not depend on the neighbours' load, the wall rates do, so
the load average at the start is printed with them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time

import numpy as np

from lenga.features import FAMILIES, FeatureConfig, extract_features, profile
from lenga.features.simulate import ztf_like_batch


def _extract_worker(args: tuple[int, int, int, int], barrier, results) -> None:
    """One process: simulate its batch, wait for the others, then time ``extract_features``."""
    seed, objects, min_points, max_points = args
    detections, non_detections = ztf_like_batch(np.random.default_rng(seed), objects, min_points, max_points)
    config = FeatureConfig()
    barrier.wait()
    cpu, start = time.process_time(), time.perf_counter()
    extract_features(detections, non_detections, config)
    results.put((start, time.perf_counter(), time.process_time() - cpu))


def parallel_rate(processes: int, objects: int, min_points: int, max_points: int, seed: int) -> dict[str, float]:
    """Objects per wall-clock second of ``processes`` concurrent ``extract_features`` calls."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_extract_worker, args=((seed + k, objects, min_points, max_points),
                                                             barrier, results)) for k in range(processes)]
    for worker in workers:
        worker.start()
    runs = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
        if worker.exitcode:
            raise RuntimeError(f"benchmark worker failed with exit code {worker.exitcode}")
    wall = max(end for _, end, _ in runs) - min(start for start, _, _ in runs)
    return {"processes": processes, "objects": processes * objects,
            "wall_objects_per_s": processes * objects / wall,
            "cpu_objects_per_s_per_process": objects / float(np.mean([cpu for _, _, cpu in runs]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1000, help="objects per process")
    parser.add_argument("--min-points", type=int, default=20)
    parser.add_argument("--max-points", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=1, help="also run this many processes at once")
    args = parser.parse_args()
    detections, non_detections = ztf_like_batch(np.random.default_rng(args.seed), args.objects,
                                                args.min_points, args.max_points)
    report: dict = {"load_average_1min": os.getloadavg()[0]}
    rates = profile(detections, non_detections, FeatureConfig())
    report["objects_per_s"] = {stage: {kind: round(rate, 1) for kind, rate in by.items()} for stage, by in rates.items()}
    report["slowest_family"] = min(FAMILIES, key=lambda name: rates[name]["cpu"])
    if args.processes > 1:
        report["parallel"] = {k: round(v, 1) for k, v in parallel_rate(
            args.processes, args.objects, args.min_points, args.max_points, args.seed).items()}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
