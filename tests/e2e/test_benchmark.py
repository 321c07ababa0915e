"""The benchmark job runs as README.md shows it and writes the documented JSON (issue 2's interface).

A small run: it checks the report's shape and that every query took every alert, not the speed
(speed is measured by running the benchmark, never asserted in tests).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALERTS = 600
BENCH_TIMEOUT_S = 600


def test_bench_writes_the_documented_report(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [str(ROOT / "spark-submit.sh"), "bench", "--alerts", str(ALERTS), "--batch", "300", "--json", str(out),
         "--no-components", "--xmatch-rows"],
        cwd=tmp_path, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
    assert run.returncode == 0, run.stderr[-6000:]
    report = json.loads(out.read_text())

    assert {"alerts", "wall_s", "alerts_per_s", "stages", "latency_p50_s", "latency_p95_s", "peak_rss_mb"} <= set(report)
    assert report["alerts"] == ALERTS and report["micro_batches"] == 2  # exactly 300 per batch, no tail batch
    stages = report["stages"]
    for stage in ("kafka_read", "read_decode", "core_tables", "core_tables_alone", "core_tables_beside_aggregation",
                  "end_to_end", "aggregation", "distribution", "full_pipeline"):
        assert stages[stage] > 0, stage
    core = report["core_tables_alone"]
    assert core["alerts"] == ALERTS and core["micro_batches"] == 2
    assert core["batches_alerts_per_s"] >= core["alerts_per_s"] > 0  # the batches are part of the wall time
    # Its own process tree: the Spark JVM and the Python workers of that query are in the peak.
    assert core["peak_rss_breakdown_mb"]["java"] > 0 and core["peak_rss_breakdown_mb"]["python"] > 0
    assert 0 < core["peak_pss_mb"] <= core["peak_rss_mb"]
    beside = report["core_tables_beside_aggregation"]
    assert beside["alerts"] == ALERTS and beside["micro_batches"] == 2
    # The aggregation beside it caught up with every object (the ingest lake's objects).
    assert beside["aggregation_micro_batches"] >= 1 and beside["objects"] == report["aggregation"]["objects"]
    assert 0 < report["latency_p50_s"] <= report["latency_p95_s"]
