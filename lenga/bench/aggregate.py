"""Stand-alone measure of the aggregation query (lenga.stream.aggregate), without Kafka or the ingest's
enrichment steps: simulated ZTF alerts are ingested once into a lake (files source, core tables
only), then the aggregation runs over that lake from a fresh checkpoint and fresh derived tables, as
often as asked. The workload is the benchmark's (jobs/benchmark.py: ``--alerts`` ZTF alerts of
``n_alerts / 3`` simulated objects over 5 nights, the configured seed), so the numbers compare with
its ``aggregation`` stage.

Besides the wall time, :func:`measure` reports the CPU seconds of the driver's Python, the JVM
and the Python workers (the stateful operator's cost is split between the last two), and the wall
time of each phase of the micro-batches (``ObjectsBatchReport.phase_seconds``: ``rows``, the stream
reads, the stateful operator and the one Python pass computing every table's rows; ``objects_merge``)
and of each object step (``step_seconds``: writing its rows). With ``--repeats 2`` or more, the
first run pays the JIT and the Python workers' imports (xgboost, light-curve...) of a fresh
session; the later ones reuse them, as a running stream does: compare those for the cost per batch.

    python -m lenga.bench.aggregate --alerts 20000 --repeats 3 --json /tmp/agg.json [--workdir DIR] [--no-steps]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
import time
from pathlib import Path

from lenga.bench.monitor import CPUMeter, emit_report
from lenga.config import Config, load_config
from lenga.io.session import build_session
from lenga.sim.night import SimConfig, simulate, write_directory
from lenga.stream.aggregate import AggregationSettings, run_aggregation
from lenga.stream.ingest import run_stream

#: The benchmark's simulated ZTF objects produce about this many alerts each over 5 nights.
ALERTS_PER_OBJECT = 3
SIM_NIGHTS = 5
#: Tables the aggregation writes (removed before each measured run).
DERIVED_TABLES = ("objects", "features", "lc_classifications")


def bench_config(workdir: Path, seed: int = 42) -> Config:
    return load_config(extra={
        "source": {"kind": "files", "files": {"path": str(workdir / "incoming"), "max_files_per_trigger": 10_000}},
        "lake": {"root": str(workdir / "lake")},
        "stream": {"checkpoint": str(workdir / "checkpoints" / "stream"), "trigger": "available_now"},
        "simulate": {"seed": seed},
    })


def simulated_alerts(n_alerts: int, seed: int) -> list:
    """The first ``n_alerts`` valid ZTF alerts of the benchmark's simulated sky."""

    n_objects = max(10, n_alerts // ALERTS_PER_OBJECT)
    while True:
        sim = SimConfig(seed=seed, n_objects=n_objects, n_nights=SIM_NIGHTS, surveys=("ztf",))
        alerts = list(itertools.islice(simulate(sim), n_alerts))
        if len(alerts) >= n_alerts:
            return alerts
        n_objects = int(n_objects * 1.5 * n_alerts / max(len(alerts), 1)) + 1


def prepare_lake(spark, workdir: Path, n_alerts: int, seed: int) -> int:
    """Ingest ``n_alerts`` simulated alerts into ``workdir/lake`` (core tables only), unless a
    previous call left them there; returns the alerts in the lake."""

    config = bench_config(workdir, seed)
    marker = workdir / "ingested.json"
    if marker.exists() and json.loads(marker.read_text()) == {"alerts": n_alerts, "seed": seed}:
        return n_alerts
    shutil.rmtree(workdir, ignore_errors=True)
    write_directory(simulated_alerts(n_alerts, seed), workdir / "incoming")
    summary = run_stream(config, spark=spark, steps=[])
    if summary.alerts_in != n_alerts:
        raise RuntimeError(f"ingested {summary.alerts_in} alerts, expected {n_alerts}")
    marker.write_text(json.dumps({"alerts": n_alerts, "seed": seed}))
    return n_alerts


def measure(spark, n_alerts: int = 20_000, seed: int = 42, workdir: str | None = None,
            steps: list | None = None, repeats: int = 1, state_ttl_days: float | None = None) -> dict:
    """Alerts/s of the aggregation query over a lake of ``n_alerts`` simulated ZTF alerts, with
    CPU seconds by process kind and the wall time of each phase. ``steps`` as in
    :func:`lenga.stream.aggregate.run_aggregation` (None: the default object steps, [] none); ``workdir``
    keeps the ingested lake between calls (default: a temporary directory, removed);
    ``state_ttl_days`` set runs the expiring operator (applyInPandasWithState) instead of Spark's
    streaming aggregation."""

    base = Path(workdir or tempfile.mkdtemp(prefix="lenga-aggbench-"))
    try:
        prepare_lake(spark, base, n_alerts, seed)
        config = bench_config(base, seed)
        runs = []
        for _ in range(repeats):
            for table in DERIVED_TABLES:
                shutil.rmtree(base / "lake" / table, ignore_errors=True)
            checkpoint = base / "checkpoints" / "aggregate"
            shutil.rmtree(checkpoint, ignore_errors=True)
            settings = AggregationSettings.from_config(config)
            settings.checkpoint = str(checkpoint)
            settings.state_ttl_days = state_ttl_days
            with CPUMeter() as meter:
                summary = run_aggregation(config, spark, settings, steps)
            used = meter.seconds()
            phases: dict[str, float] = {}
            for batch in summary.batches:
                for name, seconds in {**batch.phase_seconds, **batch.step_seconds}.items():
                    phases[name] = round(phases.get(name, 0.0) + seconds, 2)
            runs.append({"alerts_per_s": round(n_alerts / summary.wall_s, 1), "wall_s": round(summary.wall_s, 2),
                         "cpu_s": used, "cpu_s_total": round(sum(used.values()), 2),
                         "micro_batches": len(summary.batches), "objects": summary.objects_in_lake,
                         "objects_updated": summary.objects_updated, "phase_s": phases})
        best = min(runs, key=lambda r: r["wall_s"])
        return {"alerts": n_alerts, "state_ttl_days": settings.state_ttl_days, **best, "runs": runs, "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
    finally:
        if not workdir:
            shutil.rmtree(base, ignore_errors=True)


def main(argv=None) -> None:

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", help="keep the ingested lake here between runs")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-steps", dest="steps", action="store_const", const=[], default=None,
                        help="the objects table only (no features, no light-curve classifier)")
    parser.add_argument("--state-ttl-days", type=float,
                        help="expire state after N days (applyInPandasWithState); default: no expiry")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    spark = build_session("lenga-aggregation-bench", load_config().spark)
    result = measure(spark, args.alerts, args.seed, args.workdir, args.steps, args.repeats, args.state_ttl_days)
    emit_report(result, args.json)


if __name__ == "__main__":
    main()
