"""Throughput of the stream's cross-match step against a generated catalog (for jobs/benchmark.py).

``measure`` generates a catalog of ``catalog_rows`` sources uniform on the sky, ingests it into a
temporary lake (``ingest_catalog``, as a real catalog), then feeds ``CrossmatchStep`` micro-batches
of ``n_objects`` new objects with ``alerts_per_object`` alerts each, built in memory with the
alerts-table columns the step reads. Half of the objects sit within an arcsecond of a catalog source
so that matches are written, as in a real stream. The first batch also reads (and, under the
threshold, broadcasts) the catalog: it is reported apart, the rate is over the later batches.

On a shared machine the wall-clock rate depends on the load, so each batch's CPU seconds of the whole
application (driver, JVM, Python workers) and its Spark jobs are reported too.

    python -m lenga.bench.xmatch --objects 10000 --catalog-rows 1000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import SparkSession

from lenga.bench.monitor import CPUMeter, PeakRSS, Stopwatch
from lenga.config import load_config
from lenga.io.lake import open_lake
from lenga.io.session import build_session
from lenga.stream.catalogs import ingest_catalog, stored_catalog
from lenga.stream.steps.base import BatchContext
from lenga.stream.steps.xmatch import XMATCH, XMATCH_OBJECTS, CrossmatchStep
from lenga.xmatch.catalog import CatalogSpec
from udfs.xmatch import choose_strategy

# The benchmark catalog: Gaia-like match radius and mode.
BENCH_RADIUS_ARCSEC = 1.0
MATCHED_FRACTION = 0.5  # objects placed near a catalog source
MATCH_OFFSET_ARCSEC = 0.5  # at most this far from it
BENCH_NIGHT = 20250501


def generate_catalog(rows: int, rng: np.random.Generator) -> pa.Table:
    """``rows`` sources uniform on the sphere with an id and a magnitude."""
    return pa.table({
        "source_id": np.arange(rows, dtype=np.int64),
        "ra": rng.uniform(0.0, 360.0, rows),
        "dec": np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, rows))),
        "mag": rng.uniform(12.0, 21.0, rows).astype(np.float32),
    })


def generate_alerts(catalog: pa.Table, n_objects: int, alerts_per_object: int, batch: int,
                    rng: np.random.Generator) -> pa.Table:
    """The alerts-table columns the step reads, for ``n_objects`` objects new in ``batch``."""
    ra = rng.uniform(0.0, 360.0, n_objects)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n_objects)))
    near = rng.random(n_objects) < MATCHED_FRACTION
    sources = rng.integers(0, catalog.num_rows, int(near.sum()))
    offset = MATCH_OFFSET_ARCSEC / 3600.0 / np.sqrt(2)
    ra[near] = catalog.column("ra").to_numpy()[sources]
    dec[near] = np.clip(catalog.column("dec").to_numpy()[sources] + rng.uniform(-offset, offset, near.sum()), -90, 90)
    n = n_objects * alerts_per_object
    owner = np.repeat(np.arange(n_objects), alerts_per_object)
    missing = pa.nulls(n, pa.float32())
    return pa.table({
        "survey": pa.array(["ztf"] * n),
        "objectId": pa.array([f"B{batch}_{k}" for k in owner]),
        "ra": ra[owner], "dec": dec[owner],
        "night": pa.array(np.full(n, BENCH_NIGHT, dtype=np.int32)),
        "ssdistnr": missing, "ssmagnr": missing, "ssObjectId": pa.nulls(n, pa.int64()),
        "sgscore1": missing, "distpsnr1": missing,
    })


def measure(spark: SparkSession, n_objects: int = 10_000, catalog_rows: int = 1_000_000, alerts_per_object: int = 2,
            batches: int = 4, broadcast_max_rows: int = 2_000_000, seed: int = 0) -> dict:
    """Alerts/s and objects/s of ``CrossmatchStep`` against a generated catalog, with peak memory.

    The catalog and the lake live in a temporary directory removed at the end.
    """
    if batches < 2:
        raise ValueError("batches must be >= 2: the first one also loads the catalog")
    rng = np.random.default_rng(seed)
    workdir = Path(tempfile.mkdtemp(prefix="lenga-xmatch-bench-"))
    try:
        catalog = generate_catalog(catalog_rows, rng)
        pq.write_table(catalog, workdir / "catalog.parquet")
        spec = CatalogSpec(name="bench", path=str(workdir / "catalog.parquet"), format="parquet", ra_column="ra",
                           dec_column="dec", id_column="source_id", radius_arcsec=BENCH_RADIUS_ARCSEC,
                           mode="nearest", version="bench-1", columns=("mag",))
        lake = open_lake(spark, workdir / "lake")
        with Stopwatch() as ingest:
            ingest_catalog(lake, spec)
        step = CrossmatchStep([stored_catalog(lake, spec)], broadcast_max_rows)
        inputs = []
        for batch in range(batches):
            frame = spark.createDataFrame(generate_alerts(catalog, n_objects, alerts_per_object, batch, rng))
            inputs.append(frame.persist(StorageLevel.MEMORY_ONLY))
            inputs[-1].count()
        del catalog
        seconds, cpu, jobs = [], [], []
        tracker = spark.sparkContext.statusTracker()
        with PeakRSS() as memory:
            for batch, alerts in enumerate(inputs):
                context = BatchContext(spark, lake, "lenga-xmatch-bench", batch, {"alerts": alerts}, None)
                group = f"lenga-xmatch-bench-{batch}"
                spark.sparkContext.setJobGroup(group, f"cross-match batch {batch}")
                with CPUMeter() as meter, Stopwatch() as watch:
                    step(context)
                seconds.append(watch.seconds)
                cpu.append(meter.seconds())
                jobs.append(len(tracker.getJobIdsForGroup(group)))
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        for frame in inputs:
            frame.unpersist()
        steady = sum(seconds[1:])
        steady_cpu = [sum(c.values()) for c in cpu[1:]]
        kinds = sorted({kind for c in cpu[1:] for kind in c})
        alerts_per_batch = n_objects * alerts_per_object
        return {
            "strategy": choose_strategy(catalog_rows, broadcast_max_rows),
            "catalog_rows": catalog_rows,
            "objects_per_batch": n_objects,
            "alerts_per_batch": alerts_per_batch,
            "batches": batches,
            "ingest_s": round(ingest.seconds, 2),
            "first_batch_s": round(seconds[0], 2),
            "batch_s": [round(s, 2) for s in seconds[1:]],
            "alerts_per_s": round(alerts_per_batch * (batches - 1) / steady, 1),
            "objects_per_s": round(n_objects * (batches - 1) / steady, 1),
            "first_batch_cpu_s": round(sum(cpu[0].values()), 2),
            "batch_cpu_s": [round(c, 2) for c in steady_cpu],
            "batch_cpu_s_by_process": {k: round(sum(c.get(k, 0.0) for c in cpu[1:]) / (batches - 1), 2)
                                       for k in kinds},
            "alerts_per_cpu_s": round(alerts_per_batch * (batches - 1) / sum(steady_cpu), 1),
            "spark_jobs_per_batch": jobs[1:],
            "xmatch_rows": lake.count(XMATCH.name),
            "registry_rows": lake.count(XMATCH_OBJECTS.name),
            "peak_rss_mb": round(memory.peak_mb, 1),
            "peak_rss_breakdown_mb": memory.breakdown_mb(),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None) -> None:

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10_000, help="new objects per micro-batch")
    parser.add_argument("--alerts-per-object", type=int, default=2)
    parser.add_argument("--catalog-rows", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--broadcast-max-rows", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    spark = build_session("lenga-xmatch-bench", load_config().spark)
    started = time.perf_counter()
    result = measure(spark, args.objects, args.catalog_rows, args.alerts_per_object, args.batches,
                     args.broadcast_max_rows)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
