"""Throughput of the aggregation query and of feature extraction: :func:`measure`.

``python -m lenga.bench.features --objects 1000 --processes 2 [--sim-objects 300]`` prints:

* ``features``: objects (light curves) per second of every stage of ``extract_features``
  (``prepare``, each feature family, ``assemble``, ``total``) on simulated ZTF-like curves (g and
  r, 20-200 points each), by CPU time and by wall clock, in one process with ``n_jobs=1`` as in
  one Spark task, each family's share of the CPU time, and the slowest family;
* ``parallel``: ``extract_features`` in ``--processes`` processes at once, each on its own batch,
  as Spark runs one task per core: their combined objects per wall-clock second;
* ``aggregation`` (with ``--sim-objects``, needs Spark): the simulator's alerts of that many objects
  per survey are ingested into a scratch lake (not timed), then the aggregation query runs over
  them twice from fresh checkpoints: alone (``steps=[]``: alerts/s of the aggregation itself) and
  with the features step (its curves/s inside Spark, MERGE included). CPU seconds of the whole
  process tree (driver, JVM, Python workers) are reported beside the wall clock.

The machine is shared: the CPU rates do not depend on the neighbours' load, the wall rates do, so
the load average at the start is printed with them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from lenga.bench.monitor import CPUMeter
from lenga.config import load_config
from lenga.features import FAMILIES, FeatureConfig, extract_features, profile
from lenga.features.simulate import ztf_like_batch
from lenga.io.lake import open_lake
from lenga.io.session import build_session
from lenga.sim.night import SimConfig, simulate, write_directory
from lenga.stream.aggregate import AggregationSettings, run_aggregation
from lenga.stream.ingest import run_stream
from lenga.stream.steps.features import build_step


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


def feature_rates(objects: int, min_points: int, max_points: int, seed: int) -> dict:
    """Objects/s of every stage of ``extract_features`` in this process, each family's share of
    the CPU time, and the slowest family."""
    detections, non_detections = ztf_like_batch(np.random.default_rng(seed), objects, min_points, max_points)
    rates = profile(detections, non_detections, FeatureConfig())
    total_cpu = 1.0 / rates["total"]["cpu"]
    return {
        "objects": objects, "points_per_band": [min_points, max_points],
        "objects_per_s": {stage: {kind: round(rate, 1) for kind, rate in by.items()} for stage, by in rates.items()},
        "cpu_share": {stage: round(1.0 / rates[stage]["cpu"] / total_cpu, 3) for stage in rates if stage != "total"},
        "slowest_family": min(FAMILIES, key=lambda name: rates[name]["cpu"]),
    }


def aggregation_rates(spark, sim_objects: int, nights: int, seed: int, workdir: Path) -> dict:
    """The aggregation query over simulated alerts, alone then with the features step (see module doc)."""

    alerts = [a for a in simulate(SimConfig(seed=seed, n_objects=sim_objects, n_nights=nights)) if not a.corrupt]
    write_directory(alerts, workdir / "incoming")
    config = load_config(extra={
        "source": {"kind": "files", "files": {"path": str(workdir / "incoming")}},
        "lake": {"root": str(workdir / "lake")},
        "stream": {"checkpoint": str(workdir / "checkpoints" / "stream"), "trigger": "available_now"},
    })
    ingested = run_stream(config, spark=spark, steps=[])
    settings = AggregationSettings.from_config(config)
    lake = open_lake(spark, config.lake.root, config.lake.backend)
    runs = {}
    for name, steps in (("alone", []), ("with_features", [build_step(config, lake)])):
        checkpoint = str(workdir / "checkpoints" / f"aggregate-{name}")
        with CPUMeter() as meter:
            summary = run_aggregation(config, spark, dataclasses.replace(settings, checkpoint=checkpoint), steps)
        runs[name] = (summary, meter.total())
    alone, alone_cpu = runs["alone"]
    with_features, features_cpu = runs["with_features"]
    step_s = sum(b.step_seconds.get("features", 0.0) for b in with_features.batches)
    curves = sum(b.tables["features"].rows for b in with_features.batches if "features" in b.tables)
    return {
        "alerts": ingested.alerts_in, "objects": alone.objects_in_lake, "micro_batches": len(alone.batches),
        "alerts_per_s": round(ingested.alerts_in / alone.wall_s, 1), "wall_s": round(alone.wall_s, 2),
        "cpu_s": round(alone_cpu, 2),
        "with_features": {"wall_s": round(with_features.wall_s, 2), "cpu_s": round(features_cpu, 2),
                          "feature_rows": curves, "features_step_s": round(step_s, 2),
                          "features_step_curves_per_s": round(curves / step_s, 1) if step_s else None},
    }


def measure(spark=None, objects: int = 1000, processes: int = 2, min_points: int = 20, max_points: int = 200,
            seed: int = 0, sim_objects: int = 0, sim_nights: int = 5, workdir: str | None = None) -> dict:
    """Rates (items/s) of the feature extraction and, given ``spark`` and ``sim_objects``, of the
    aggregation query alone and of the features step inside it. For jobs/benchmark.py."""
    result: dict = {"load_average_1min": round(os.getloadavg()[0], 2),
                    "features": feature_rates(objects, min_points, max_points, seed)}
    if processes > 1:
        result["parallel"] = {k: round(v, 1) for k, v in parallel_rate(processes, objects, min_points, max_points,
                                                                        seed).items()}
    if spark is not None and sim_objects:
        with tempfile.TemporaryDirectory(dir=workdir) as scratch:
            result["aggregation"] = aggregation_rates(spark, sim_objects, sim_nights, seed, Path(scratch))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1000, help="objects per process")
    parser.add_argument("--min-points", type=int, default=20)
    parser.add_argument("--max-points", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=1, help="also run this many processes at once")
    parser.add_argument("--sim-objects", type=int, default=0,
                        help="also time the aggregation query on the simulator's alerts of this many objects per survey")
    parser.add_argument("--sim-nights", type=int, default=5)
    args = parser.parse_args()
    spark = None
    if args.sim_objects:

        spark = build_session("lenga-features-bench", load_config().spark)
    print(json.dumps(measure(spark, args.objects, args.processes, args.min_points, args.max_points, args.seed,
                             args.sim_objects, args.sim_nights), indent=1))


if __name__ == "__main__":
    main()
